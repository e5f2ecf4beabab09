//! Scaffolding: `cargo orch new` (a module from a template, added to the
//! workspace and declared in `config/modules.yaml`) and `cargo orch init` (a
//! new orchestrated workspace).
//!
//! - [`template`]: the templates, embedded at compile time from `templates/`,
//!   rendered with the placeholder syntax of [`render`];
//! - [`name`]: the rules of a module name, with a valid suggestion;
//! - `manifest`: format-preserving edits of the workspace `Cargo.toml` (toml_edit);
//! - `registry`: the comment-preserving append to `modules.yaml`;
//! - [`FileTransaction`]: every file created or edited is restored when any
//!   step fails;
//! - [`create_module`] and [`init_workspace`]: the two operations.

mod error;
mod glob;
mod init;
pub mod manifest;
mod name;
mod new_module;
mod paths;
mod registry;
mod render;
mod sdk;
pub mod template;
mod transaction;

pub use error::ScaffoldError;
pub use init::{InitWorkspace, InitializedWorkspace, init_workspace};
pub use new_module::{CreatedModule, MemberChange, NewModule, create_module};
pub use template::{Template, TemplateKind};
pub use transaction::FileTransaction;

/// The placeholder values of a module template for the module `name`
/// (documented in `templates/README.md`).
pub fn module_values(name: &str) -> Vec<(&'static str, String)> {
    vec![
        ("crate_name", name.to_owned()),
        ("crate_ident", self::name::crate_ident(name)),
        ("type_name", self::name::type_name(name)),
        ("sdk_version", sdk::SDK_VERSION.to_owned()),
    ]
}

/// The placeholder values of the workspace template for a workspace in the
/// folder `folder`.
pub fn workspace_values(folder: &str) -> Vec<(&'static str, String)> {
    let suggested = self::name::suggest(folder);
    vec![
        ("workspace_name", registry::yaml_scalar(&suggested)),
        ("sdk_dependency", sdk::sdk_dependency()),
        ("orch_alias", sdk::orch_alias()),
        ("sdk_version", sdk::SDK_VERSION.to_owned()),
    ]
}
