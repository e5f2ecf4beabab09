//! One configuration file: its text, parsing, and turning positions and
//! serde-saphyr errors into [`ConfigError`]s.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_saphyr::{Location, MessageFormatter, UserMessageFormatter};

use super::error::ConfigError;
use super::suggest::did_you_mean;

/// The text of a configuration file and the path it was read from.
pub(crate) struct Source {
    /// The path as given (config folder joined with the file name).
    pub path: PathBuf,
    /// The file's content.
    pub text: String,
}

impl Source {
    /// Reads `path`; `Ok(None)` when the file does not exist.
    pub fn read(path: &Path) -> Result<Option<Self>, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(Self {
                path: path.to_path_buf(),
                text,
            })),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(ConfigError::new(
                path,
                format!("cannot read the file: {error}"),
                "check that the file is readable UTF-8 text",
            )),
        }
    }

    /// Parses the whole file; `Ok(None)` when it holds no YAML document (empty
    /// or only comments). Syntax and type errors are one error for the file.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<Option<T>, ConfigError> {
        serde_saphyr::from_str::<Option<T>>(&self.text).map_err(|error| self.yaml_error(&error))
    }

    /// An error at `location` (a [`Location::UNKNOWN`] one gives no line).
    pub fn error_at(
        &self,
        location: &Location,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = position(location);
        ConfigError::new(&self.path, message, hint).at(line, column)
    }

    /// An error at the first `needle` found from `location`'s line on (or from
    /// the start), falling back to `location` itself.
    pub fn error_near(
        &self,
        needle: &str,
        location: &Location,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ConfigError {
        match self.find(needle, location.line()) {
            Some((line, column)) => {
                ConfigError::new(&self.path, message, hint).at(Some(line), Some(column))
            }
            None => self.error_at(location, message, hint),
        }
    }

    /// Line and column (1-based, in characters) of the first `needle` on or
    /// after line `from_line`.
    fn find(&self, needle: &str, from_line: u64) -> Option<(u32, u32)> {
        let skip = usize::try_from(from_line.saturating_sub(1)).ok()?;
        self.text
            .lines()
            .enumerate()
            .skip(skip)
            .find_map(|(index, line)| {
                let byte = line.find(needle)?;
                let column = line[..byte].chars().count() + 1;
                Some((u32::try_from(index + 1).ok()?, u32::try_from(column).ok()?))
            })
    }

    /// A serde-saphyr error as a [`ConfigError`], keeping its source snippet.
    fn yaml_error(&self, error: &serde_saphyr::Error) -> ConfigError {
        let plain = error.without_snippet();
        let message = sanitize(&UserMessageFormatter.format_message(plain));
        let (message, hint) = match unknown_key(&message) {
            Some((key, known)) => unknown_key_message(&key, &known),
            None => (message.clone(), hint_for(&message).to_owned()),
        };
        let snippet = self.snippet(error);
        let location = error.location().unwrap_or(Location::UNKNOWN);
        self.error_at(&location, format!("{message}{snippet}"), hint)
    }

    /// serde-saphyr's rendered source excerpt (without its header lines),
    /// indented under the message, or nothing.
    fn snippet(&self, error: &serde_saphyr::Error) -> String {
        let name = self.path.display().to_string();
        let rendered = error.render_with_options(serde_saphyr::render_options! {
            formatter: &UserMessageFormatter,
            source_name: Some(name.as_str()),
        });
        rendered
            .lines()
            .skip(1)
            .filter(|line| {
                !matches!(line.trim(), "|" | "") && !line.trim_start().starts_with("-->")
            })
            .map(|line| format!("\n  {line}"))
            .collect()
    }
}

/// `(line, column)` of a location, `None`s when it is unknown.
pub(crate) fn position(location: &Location) -> (Option<u32>, Option<u32>) {
    let line = u32::try_from(location.line()).ok().filter(|&l| l > 0);
    let column = u32::try_from(location.column()).ok().filter(|&c| c > 0);
    (line, column)
}

/// Control characters from the parser's text, made visible.
fn sanitize(message: &str) -> String {
    message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The key and the keys allowed there, from serde's
/// "unknown field `x`, expected one of a, b" message.
fn unknown_key(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let known = rest
        .split_once("expected ")
        .map(|(_, list)| list.trim_start_matches("one of "))
        .unwrap_or_default()
        .split(',')
        .map(|k| k.trim().trim_matches('`').to_owned())
        .filter(|k| !k.is_empty())
        .collect();
    Some((key.to_owned(), known))
}

/// Message and hint for an unknown key, with a suggestion when one is close.
fn unknown_key_message(key: &str, known: &[String]) -> (String, String) {
    let suggestion = did_you_mean(key, known.iter().map(String::as_str));
    let mut hint = format!("{suggestion}known keys here: {}", known.join(", "));
    if known.iter().any(|k| k == "config") {
        hint.push_str("; a module's own settings go under its `config:`");
    }
    (format!("unknown key `{key}`"), hint)
}

/// A hint for the serde-saphyr messages users meet most.
fn hint_for(message: &str) -> &'static str {
    if message.contains("expected sequence start") {
        "a list is expected here: one `- item` per line, or `[a, b]`"
    } else if message.contains("expected mapping start") {
        "a mapping is expected here: `key: value` pairs indented under their parent \
         (each module entry is one, e.g. `- name: mod-example`)"
    } else if message.contains("expected string scalar") || message.contains("expected scalar") {
        "a single value is expected here, not a list or a mapping"
    } else if message.contains("flow mapping") || message.contains("flow sequence") {
        "inside `{...}` or `[...]` a value with `{`, `}`, `[`, `]` or `,` must be quoted: \
         write `{token: \"${NATS_TOKEN}\"}`, or put the keys on lines of their own"
    } else if message.contains("duplicate mapping key") {
        "each key may appear only once in a mapping; remove or merge the duplicate"
    } else {
        "fix the YAML here: indent nested keys with spaces (no tabs) by the same amount, \
         close every quote and bracket, and quote values that contain `: ` or start with `{`, `[` or `*`"
    }
}
