//! Pins dependency features across the workspace (see Cargo.toml); no code.
