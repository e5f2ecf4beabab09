//! Why scaffolding failed: what is wrong, and a hint for the fix.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use orch_cargo::WorkspaceError;
use orch_config::ConfigErrors;

/// A failure of `cargo orch new` or `cargo orch init`.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The module name breaks a rule.
    #[error(
        "`{name}` is not a valid module name: {rule}\n  hint: use `{suggestion}` instead: `cargo orch new {suggestion}`"
    )]
    InvalidName {
        /// The name given.
        name: String,
        /// The rule it breaks.
        rule: String,
        /// A valid name close to it.
        suggestion: String,
    },
    /// No template of that name (and kind).
    #[error(
        "unknown template `{name}`\n  hint: the templates are: {available}; `cargo orch new --list-templates` describes them"
    )]
    UnknownTemplate {
        /// The name given.
        name: String,
        /// The templates there are, comma-separated.
        available: String,
    },
    /// A folder, package or module of that name, or a file to create, exists.
    #[error("{what}\n  hint: {hint}")]
    AlreadyExists {
        /// What exists, and where.
        what: String,
        /// What to do instead.
        hint: String,
    },
    /// The module folder would be outside the workspace.
    #[error(
        "{} is outside the workspace {}\n  hint: a module lives inside its workspace: give a --path under {}, or create a workspace there with `cargo orch init`",
        path.display(),
        root.display(),
        root.display()
    )]
    OutsideWorkspace {
        /// The folder asked for.
        path: PathBuf,
        /// The workspace root.
        root: PathBuf,
    },
    /// A file to read or edit is invalid or has an unexpected shape.
    #[error("{}: {message}\n  hint: {hint}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// The configuration does not validate.
    #[error("{context}:\n{errors}\n  hint: {hint}")]
    Config {
        /// When it was checked (before or after the change).
        context: String,
        /// Every problem, with file, line and column.
        errors: ConfigErrors,
        /// What to do.
        hint: String,
    },
    /// `cargo metadata` failed, or the new package is not what cargo sees.
    #[error("{0}")]
    Workspace(#[from] WorkspaceError),
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A template shipped with the tool is broken (a bug in cargo-orch).
    #[error("template `{template}` is broken: {message} (a bug in cargo-orch's templates/)")]
    Template {
        /// The template.
        template: String,
        /// What is wrong.
        message: String,
    },
    /// A step failed after files were written; the changes were undone.
    #[error("{cause}\n{}", undo_report(leftovers))]
    Undone {
        /// The failure.
        cause: Box<ScaffoldError>,
        /// The changes that could not be undone (empty: all were).
        leftovers: Vec<String>,
    },
}

impl ScaffoldError {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// A problem with a file.
    pub fn file(path: &Path, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::File {
            path: path.to_path_buf(),
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// Whether the request itself cannot be carried out as given (a usage or
    /// configuration error, exit code 2), rather than the tool failing (exit 1).
    pub fn is_usage(&self) -> bool {
        match self {
            Self::InvalidName { .. }
            | Self::UnknownTemplate { .. }
            | Self::AlreadyExists { .. }
            | Self::OutsideWorkspace { .. }
            | Self::Config { .. } => true,
            Self::Undone { cause, .. } => cause.is_usage(),
            _ => false,
        }
    }

    /// The failure itself, under any [`ScaffoldError::Undone`].
    pub fn root_cause(&self) -> &ScaffoldError {
        match self {
            Self::Undone { cause, .. } => cause.root_cause(),
            other => other,
        }
    }
}

fn undo_report(leftovers: &[String]) -> String {
    if leftovers.is_empty() {
        return "nothing was changed: every file created or edited was removed or restored".into();
    }
    let mut text = "some changes could not be undone; fix them by hand:".to_owned();
    for leftover in leftovers {
        let _ = write!(text, "\n  - {leftover}");
    }
    text
}
