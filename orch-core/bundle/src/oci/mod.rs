//! A bundle as an OCI image layout that container tools load as it is
//! (`skopeo`, `podman`, `umoci`, containerd): one uncompressed layer holding
//! a root filesystem, an image config, a manifest and the layout's index.
//!
//! - [`layer`]: the layer's reproducible tar writer (files and folders).
//! - [`image`]: the config, manifest and index JSON, the target's platform.
//! - [`layout`]: the layout folder written to disk; the check that an
//!   existing folder is a layout that may be replaced.
//!
//! What goes into the root filesystem is the caller's choice (cargo-orch
//! collects the host binary and the libraries it links).

pub mod image;
pub mod layer;
pub mod layout;

pub use image::{Image, Platform};
pub use layer::{Content, LayerEntry};
pub use layout::{Written, check_replaceable, write_layout};
