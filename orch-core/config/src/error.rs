//! Configuration errors: where the problem is, what it is, and how to fix it.

use std::fmt::Write as _;
use std::path::PathBuf;

/// One problem in a configuration file.
///
/// Displays as `{file}:{line}:{column}: {message}` followed by `  hint: {hint}`;
/// the line and column are left out when unknown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}{}", self.position(), hint_line(&self.hint))]
pub struct ConfigError {
    /// The file, as given: the config folder joined with the file name.
    pub file: PathBuf,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<u32>,
    /// 1-based column (in characters), when known.
    pub column: Option<u32>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

impl ConfigError {
    /// An error about `file` as a whole (no line).
    pub(crate) fn new(
        file: impl Into<PathBuf>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            line: None,
            column: None,
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// The same error placed at `line` and `column`.
    pub(crate) fn at(mut self, line: Option<u32>, column: Option<u32>) -> Self {
        self.line = line;
        self.column = column.filter(|_| line.is_some());
        self
    }

    /// `file:line:column`, `file:line` or `file`.
    fn position(&self) -> String {
        let mut position = self.file.display().to_string();
        if let Some(line) = self.line {
            let _ = write!(position, ":{line}");
            if let Some(column) = self.column {
                let _ = write!(position, ":{column}");
            }
        }
        position
    }
}

/// `\n  hint: ...`, or nothing for an empty hint.
fn hint_line(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!("\n  hint: {hint}")
    }
}

/// Every problem found in the configuration, reported together.
///
/// Displays one block per error and, when there is more than one, a last line
/// `N configuration errors; nothing was started`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_all(&self.0))]
pub struct ConfigErrors(pub Vec<ConfigError>);

fn render_all(errors: &[ConfigError]) -> String {
    let mut text = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    if errors.len() > 1 {
        let _ = write!(
            text,
            "\n{} configuration errors; nothing was started",
            errors.len()
        );
    }
    text
}
