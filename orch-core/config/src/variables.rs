//! `${VAR}` and `${VAR:-default}` expansion in configuration strings, and the
//! workspace `.env` file.
//!
//! Expansion runs on parsed string values, never on the YAML text, so a value
//! holding a newline or `: ` cannot inject YAML. `$${` is a literal `${`.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use super::error::ConfigError;
use super::redact::{MIN_SECRET_LEN, is_secret_key};

/// Why a string could not be expanded, and the text to look for to place it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvError {
    /// The start of the faulty reference as written (`${NAME`), to find its line.
    pub needle: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// Expands references with an environment lookup and remembers the values of
/// secret-looking variables (`${DB_PASSWORD}`) so logs can be scrubbed of them.
pub(crate) struct Expander<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    /// Values taken from secret-looking variables.
    pub secrets: Vec<String>,
}

impl<'a> Expander<'a> {
    /// An expander reading variables through `lookup`.
    pub fn new(lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            lookup,
            secrets: Vec::new(),
        }
    }

    /// `text` with every reference replaced; the first bad reference is an error.
    pub fn expand(&mut self, text: &str) -> Result<String, EnvError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(dollar) = rest.find('$') {
            out.push_str(&rest[..dollar]);
            let tail = &rest[dollar..];
            if let Some(after) = tail.strip_prefix("$${") {
                out.push_str("${");
                rest = after;
            } else if let Some(body) = tail.strip_prefix("${") {
                let end = body.find('}').ok_or_else(|| unclosed(tail))?;
                out.push_str(&self.resolve(&body[..end])?);
                rest = &body[end + 1..];
            } else {
                out.push('$');
                rest = &tail[1..];
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Expands every string inside `value`, in place, pushing one error per bad string.
    pub fn expand_json(&mut self, value: &mut Value, errors: &mut Vec<EnvError>) {
        match value {
            Value::String(text) => match self.expand(text) {
                Ok(expanded) => *text = expanded,
                Err(error) => errors.push(error),
            },
            Value::Array(items) => items
                .iter_mut()
                .for_each(|item| self.expand_json(item, errors)),
            Value::Object(map) => map
                .values_mut()
                .for_each(|item| self.expand_json(item, errors)),
            _ => {}
        }
    }

    /// The value of one reference body: `NAME` or `NAME:-default`.
    fn resolve(&mut self, body: &str) -> Result<String, EnvError> {
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (body, None),
        };
        if !is_variable_name(name) {
            return Err(bad_name(body));
        }
        match ((self.lookup)(name), default) {
            (Some(value), Some(default)) if value.is_empty() => Ok(default.to_owned()),
            (Some(value), _) => {
                self.remember_if_secret(name, &value);
                Ok(value)
            }
            (None, Some(default)) => Ok(default.to_owned()),
            (None, None) => Err(unset(name)),
        }
    }

    fn remember_if_secret(&mut self, name: &str, value: &str) {
        if is_secret_key(name) && value.chars().count() >= MIN_SECRET_LEN {
            self.secrets.push(value.to_owned());
        }
    }
}

/// The names of the variables `text` refers to (`${NAME}` and
/// `${NAME:-default}`), each once, in order; `$${` escapes are skipped.
pub(crate) fn referenced_variables(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        let tail = &rest[dollar..];
        if let Some(after) = tail.strip_prefix("$${") {
            rest = after;
        } else if let Some(body) = tail.strip_prefix("${") {
            let end = body.find('}').unwrap_or(body.len());
            let name = body[..end].split(":-").next().unwrap_or_default();
            if is_variable_name(name) && !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
            rest = &body[end..];
        } else {
            rest = &tail[1..];
        }
    }
    names
}

/// `NAME` as in shells: ASCII letters, digits and `_`, not starting with a digit.
fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn unset(name: &str) -> EnvError {
    EnvError {
        needle: format!("${{{name}"),
        message: format!("environment variable `{name}` is not set"),
        hint: format!(
            "set {name} in the environment or in the workspace .env file, \
             or write ${{{name}:-default}}"
        ),
    }
}

fn bad_name(body: &str) -> EnvError {
    EnvError {
        needle: format!("${{{body}"),
        message: format!("`${{{body}}}` is not a valid variable reference"),
        hint: "write ${NAME} or ${NAME:-default}, NAME made of ASCII letters, digits and `_`; \
               write $${ for a literal ${"
            .to_owned(),
    }
}

fn unclosed(tail: &str) -> EnvError {
    EnvError {
        needle: tail.lines().next().unwrap_or(tail).to_owned(),
        message: format!(
            "`{}` has no closing `}}`",
            tail.lines().next().unwrap_or(tail)
        ),
        hint: "close the reference with `}`, or write $${ for a literal ${".to_owned(),
    }
}

/// The variables of the `.env` file at `path` (absent file: none), and the
/// error that stopped reading it, if any (the variables before it are kept).
/// The first definition of a name wins, as in `dotenvy`; the process
/// environment is not touched.
pub(crate) fn read_dotenv(path: &Path) -> (HashMap<String, String>, Option<ConfigError>) {
    let mut vars = HashMap::new();
    let iter = match dotenvy::from_path_iter(path) {
        Ok(iter) => iter,
        Err(error) if error.not_found() => return (vars, None),
        Err(error) => return (vars, Some(dotenv_error(path, &error))),
    };
    for item in iter {
        match item {
            Ok((name, value)) => {
                vars.entry(name).or_insert(value);
            }
            Err(error) => return (vars, Some(dotenv_error(path, &error))),
        }
    }
    (vars, None)
}

fn dotenv_error(path: &Path, error: &dotenvy::Error) -> ConfigError {
    let line = match error {
        dotenvy::Error::LineParse(text, _) => line_of(path, text),
        _ => None,
    };
    ConfigError::new(
        path,
        format!("cannot read the .env file: {error}"),
        "write one `NAME=value` per line; quote values that contain spaces or `#`",
    )
    .at(line, None)
}

/// The 1-based line of `path` that starts with `text`, if any.
fn line_of(path: &Path, text: &str) -> Option<u32> {
    let content = std::fs::read_to_string(path).ok()?;
    let first = text.lines().next()?;
    let index = content.lines().position(|line| line.starts_with(first))?;
    u32::try_from(index + 1).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        match name {
            "HOST" => Some("db.local".into()),
            "EMPTY" => Some(String::new()),
            "DB_PASSWORD" => Some("hunter22".into()),
            "INJECT" => Some("a\nb: c".into()),
            _ => None,
        }
    }

    fn expand(text: &str) -> Result<String, EnvError> {
        Expander::new(&lookup).expand(text)
    }

    #[test]
    fn expands_variables_and_defaults() {
        assert_eq!(expand("${HOST}:5432").unwrap(), "db.local:5432");
        assert_eq!(expand("${PORT:-5432}").unwrap(), "5432");
        assert_eq!(expand("${HOST:-other}").unwrap(), "db.local");
        assert_eq!(expand("${EMPTY:-fallback}").unwrap(), "fallback");
        assert_eq!(expand("${EMPTY}").unwrap(), "");
        assert_eq!(expand("${MISSING:-}").unwrap(), "");
        assert_eq!(expand("${INJECT}").unwrap(), "a\nb: c");
    }

    #[test]
    fn keeps_plain_dollars_and_escapes() {
        assert_eq!(expand("costs $5, $HOST").unwrap(), "costs $5, $HOST");
        assert_eq!(expand("$${HOST}").unwrap(), "${HOST}");
        assert_eq!(expand("$$${HOST}").unwrap(), "$${HOST}");
        assert_eq!(expand("trailing $").unwrap(), "trailing $");
    }

    #[test]
    fn reports_bad_references() {
        let error = expand("x ${MISSING} y").unwrap_err();
        assert_eq!(error.message, "environment variable `MISSING` is not set");
        assert_eq!(error.needle, "${MISSING");
        assert!(error.hint.contains("${MISSING:-default}"));
        let error = expand("${NOT CLOSED").unwrap_err();
        assert_eq!(error.message, "`${NOT CLOSED` has no closing `}`");
        let error = expand("${1BAD}").unwrap_err();
        assert_eq!(error.message, "`${1BAD}` is not a valid variable reference");
    }

    #[test]
    fn lists_referenced_variables() {
        assert_eq!(
            referenced_variables("https://${HOST}/${PATH:-x}?k=${HOST}&$${LIT}&${1BAD}"),
            ["HOST", "PATH"]
        );
        assert!(referenced_variables("plain $5").is_empty());
    }

    #[test]
    fn remembers_secret_variable_values() {
        let mut expander = Expander::new(&lookup);
        expander
            .expand("postgres://u:${DB_PASSWORD}@${HOST}")
            .unwrap();
        assert_eq!(expander.secrets, ["hunter22"]);
    }

    #[test]
    fn expands_json_strings_in_place() {
        let mut value = serde_json::json!({"a": ["${HOST}", 1, {"b": "${NOPE}"}], "c": true});
        let mut errors = Vec::new();
        Expander::new(&lookup).expand_json(&mut value, &mut errors);
        assert_eq!(
            value,
            serde_json::json!({"a": ["db.local", 1, {"b": "${NOPE}"}], "c": true})
        );
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn reads_dotenv_without_touching_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        assert!(read_dotenv(&path).0.is_empty());
        std::fs::write(&path, "# comment\nA=1\nORCH_TEST_B=\"two words\"\nA=2\n").unwrap();
        let (vars, error) = read_dotenv(&path);
        assert_eq!(error, None);
        assert_eq!(vars["A"], "1");
        assert_eq!(vars["ORCH_TEST_B"], "two words");
        assert!(std::env::var("ORCH_TEST_B").is_err());
    }
}
