//! One configuration file: its text, parsing, and turning positions and
//! serde-saphyr errors into [`ConfigError`]s.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_saphyr::{Location, MessageFormatter, UserMessageFormatter};

use super::error::ConfigError;
use super::suggest::did_you_mean;

/// The text of a configuration file and the path it was read from; with an
/// environment, also the overlay file layered over it.
///
/// The overlay is parsed with `offset` blank lines before it (see
/// [`Source::parse_overlay`]), so its values' locations have lines after every
/// line of the base file: line `offset + k` is the overlay's line `k`. Every
/// error and every look-up by line goes through [`Source::place`], which
/// finds the file and its own line.
pub(crate) struct Source {
    /// The path as given (config folder joined with the file name).
    pub path: PathBuf,
    /// The file's content (the base file's only, never the overlay's).
    pub text: String,
    /// The environment's overlay of this file, once layered.
    overlay: Option<Layer>,
}

/// An overlay file and where its lines start.
struct Layer {
    /// The base file's line count: location line `offset + k` is line `k` here.
    offset: u64,
    /// The overlay file itself.
    source: Box<Source>,
}

impl Source {
    /// Reads `path`; `Ok(None)` when the file does not exist.
    pub fn read(path: &Path) -> Result<Option<Self>, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Some(Self::new(path, text))),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(ConfigError::new(
                path,
                format!("cannot read the file: {error}"),
                "check that the file is readable UTF-8 text",
            )),
        }
    }

    /// The file at `path` holding `text`, without an overlay.
    pub fn new(path: &Path, text: String) -> Self {
        Self {
            path: path.to_path_buf(),
            text,
            overlay: None,
        }
    }

    /// Parses the whole file; `Ok(None)` when it holds no YAML document (empty
    /// or only comments). Syntax and type errors are one error for the file.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<Option<T>, ConfigError> {
        serde_saphyr::from_str::<Option<T>>(&self.text).map_err(|error| self.yaml_error(&error))
    }

    /// This file with `overlay` layered over it: locations of values parsed
    /// by [`Source::parse_overlay`] are placed in the overlay file.
    pub fn with_overlay(mut self, overlay: Source) -> Self {
        self.overlay = Some(Layer {
            offset: self.line_count(),
            source: Box::new(overlay),
        });
        self
    }

    /// Parses `overlay`, a file to layer over this one, so that its
    /// locations come after this file's lines (see [`Source`]). A syntax or
    /// type error is reported in the overlay file with its own line, column
    /// and snippet.
    pub fn parse_overlay<T: DeserializeOwned>(
        &self,
        overlay: &Source,
    ) -> Result<Option<T>, ConfigError> {
        let text = overlay
            .text
            .strip_prefix('\u{feff}')
            .unwrap_or(&overlay.text);
        let blank_lines = usize::try_from(self.line_count()).unwrap_or(usize::MAX);
        let padded = format!("{}{text}", "\n".repeat(blank_lines));
        serde_saphyr::from_str::<Option<T>>(&padded).map_err(|shifted| {
            // The same document alone fails the same way, placed and quoted
            // in the overlay's own lines.
            match overlay.parse::<T>() {
                Err(error) => error,
                Ok(_) => self.clone_with(overlay).yaml_error(&shifted),
            }
        })
    }

    /// This file's path and text with `overlay` layered over it (for placing
    /// an error of the overlay parsed with its offset).
    fn clone_with(&self, overlay: &Source) -> Source {
        Source::new(&self.path, self.text.clone())
            .with_overlay(Source::new(&overlay.path, overlay.text.clone()))
    }

    /// The lines of the file as YAML counts them (`\n`, `\r\n` and a lone
    /// `\r` each end one), an unterminated last line included.
    fn line_count(&self) -> u64 {
        let text = self.text.as_bytes();
        let breaks = text
            .iter()
            .enumerate()
            .filter(|&(i, &byte)| {
                byte == b'\n' || (byte == b'\r' && text.get(i + 1) != Some(&b'\n'))
            })
            .count();
        let unterminated = text.last().is_some_and(|&b| b != b'\n' && b != b'\r');
        u64::try_from(breaks + usize::from(unterminated)).unwrap_or(u64::MAX)
    }

    /// An error at `location` (a [`Location::UNKNOWN`] one gives no line).
    pub fn error_at(
        &self,
        location: &Location,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ConfigError {
        let (line, column) = position(location);
        match line {
            Some(line) => {
                let (file, line) = self.place(u64::from(line));
                let line = u32::try_from(line).ok();
                ConfigError::new(&file.path, message, hint).at(line, column)
            }
            None => ConfigError::new(&self.path, message, hint),
        }
    }

    /// The line of `location` in its own file (the overlay's or the base's),
    /// for messages that mention a line.
    pub fn line_in_file(&self, location: &Location) -> u64 {
        self.place(location.line()).1
    }

    /// The file that location line `line` is in, and the line in that file:
    /// the overlay's for a line after the base file's, the base file's otherwise.
    fn place(&self, line: u64) -> (&Source, u64) {
        match &self.overlay {
            Some(layer) if line > layer.offset => (&layer.source, line - layer.offset),
            _ => (self, line),
        }
    }

    /// An error at the first `needle` found from a location's line on, in
    /// that location's file (a value merged from an overlay and its base, a
    /// module's `config`, has a location in each): the first location whose
    /// file holds `needle` from there on wins; the first location itself
    /// otherwise.
    pub fn error_near(
        &self,
        needle: &str,
        locations: &[Location],
        message: impl Into<String>,
        hint: impl Into<String>,
    ) -> ConfigError {
        let found = locations.iter().find_map(|location| {
            let (file, line) = self.place(location.line());
            Some((file, file.find(needle, line)?))
        });
        match (found, locations.first()) {
            (Some((file, (line, column))), _) => {
                ConfigError::new(&file.path, message, hint).at(Some(line), Some(column))
            }
            (None, Some(location)) => self.error_at(location, message, hint),
            (None, None) => ConfigError::new(&self.path, message, hint),
        }
    }

    /// Line and column (1-based, in characters) of the first `needle` on or
    /// after line `from_line` of this file's own text.
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
