//! Turning raw, located YAML values into typed settings, collecting every
//! problem instead of stopping at the first.

use std::time::Duration;

use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use super::error::ConfigError;
use super::source::Source;
use super::variables::{EnvError, Expander};

/// Checks the values of one file: expands `${VAR}`s, converts, and records errors.
pub(crate) struct Checker<'a> {
    /// The file being checked.
    pub src: &'a Source,
    /// `${VAR}` expansion (collects secret variable values).
    pub env: Expander<'a>,
    /// Every problem found so far.
    pub errors: Vec<ConfigError>,
    /// Values of secret-looking keys, to scrub from logs.
    pub secrets: Vec<String>,
}

impl<'a> Checker<'a> {
    /// A checker for `src`, reading variables through `lookup`.
    pub fn new(src: &'a Source, lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self {
            src,
            env: Expander::new(lookup),
            errors: Vec::new(),
            secrets: Vec::new(),
        }
    }

    /// Records an error at `location`.
    pub fn error(
        &mut self,
        location: &Location,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let error = self.src.error_at(location, message, hint);
        self.errors.push(error);
    }

    /// Records an expansion error, placed at its `${...}` after the first of
    /// `locations` whose file holds it.
    fn env_error(&mut self, locations: &[Location], error: EnvError) {
        let error = self
            .src
            .error_near(&error.needle, locations, error.message, error.hint);
        self.errors.push(error);
    }

    /// The expanded string, or `None` (error recorded).
    pub fn string(&mut self, raw: &Spanned<String>) -> Option<String> {
        match self.env.expand(&raw.value) {
            Ok(text) => Some(text),
            Err(error) => {
                self.env_error(&[raw.referenced], error);
                None
            }
        }
    }

    /// `raw` with every string inside expanded; errors recorded, strings kept as written.
    pub fn json(&mut self, raw: &Spanned<Value>) -> Value {
        self.json_layered(raw, None)
    }

    /// [`Checker::json`] for a value merged from an overlay (`raw`'s place)
    /// and its base (`base`): an expansion error is placed in the overlay's
    /// text when it is there, in the base's otherwise.
    pub fn json_layered(&mut self, raw: &Spanned<Value>, base: Option<&Location>) -> Value {
        let mut value = raw.value.clone();
        let mut errors = Vec::new();
        self.env.expand_json(&mut value, &mut errors);
        let places: Vec<Location> = std::iter::once(raw.referenced)
            .chain(base.copied())
            .collect();
        for error in errors {
            self.env_error(&places, error);
        }
        value
    }

    /// A whole number setting named `key`, from `min` to `max`.
    pub fn number_in(
        &mut self,
        key: &str,
        raw: Option<&Spanned<Value>>,
        (min, max): (u64, u64),
        default: u64,
    ) -> u64 {
        let Some(raw) = raw else { return default };
        let value = self.json(raw);
        let number = match &value {
            Value::Number(n) => n.as_u64(),
            Value::String(text) => text.trim().parse::<u64>().ok(),
            _ => None,
        };
        match number {
            Some(n) if (min..=max).contains(&n) => n,
            _ => {
                self.error(
                    &raw.referenced,
                    format!(
                        "`{key}` must be a whole number from {min} to {max}, found {}",
                        show(&value)
                    ),
                    format!("write for example `{key}: {default}`"),
                );
                default
            }
        }
    }

    /// An optional string setting: its expanded value, or `default`.
    pub fn text(&mut self, raw: Option<&Spanned<String>>, default: &str) -> String {
        raw.and_then(|raw| self.string(raw))
            .unwrap_or_else(|| default.to_owned())
    }

    /// A non-empty string setting named `key`.
    pub fn non_empty_text(
        &mut self,
        key: &str,
        raw: Option<&Spanned<String>>,
        default: &str,
    ) -> String {
        let text = self.text(raw, default);
        match raw {
            Some(raw) if text.trim().is_empty() => {
                self.error(
                    &raw.referenced,
                    format!("`{key}` is empty"),
                    format!(
                        "give `{key}` a value or remove the line to use the default `{default}`"
                    ),
                );
                default.to_owned()
            }
            _ => text,
        }
    }

    /// A boolean setting named `key` (`true`/`false`, also from `${VAR}`).
    pub fn boolean(&mut self, key: &str, raw: Option<&Spanned<Value>>, default: bool) -> bool {
        let Some(raw) = raw else { return default };
        let value = self.json(raw);
        let parsed = match &value {
            Value::Bool(b) => Some(*b),
            Value::String(text) => parse_bool(text),
            _ => None,
        };
        parsed.unwrap_or_else(|| {
            self.error(
                &raw.referenced,
                format!("`{key}` must be true or false, found {}", show(&value)),
                format!("write `{key}: true` or `{key}: false`"),
            );
            default
        })
    }

    /// A whole number setting named `key`, at least 1.
    pub fn count<T: TryFrom<u64>>(
        &mut self,
        key: &str,
        raw: Option<&Spanned<Value>>,
        default: T,
    ) -> T {
        let Some(raw) = raw else { return default };
        let value = self.json(raw);
        let number = match &value {
            Value::Number(n) => n.as_u64(),
            Value::String(text) => text.trim().parse::<u64>().ok(),
            _ => None,
        };
        match number.filter(|&n| n > 0).map(T::try_from) {
            Some(Ok(n)) => n,
            _ => {
                self.error(
                    &raw.referenced,
                    format!(
                        "`{key}` must be a whole number of at least 1, found {}",
                        show(&value)
                    ),
                    format!("write for example `{key}: 4`"),
                );
                default
            }
        }
    }

    /// A fraction setting named `key`, in `[0, 1)`.
    pub fn fraction(&mut self, key: &str, raw: Option<&Spanned<Value>>, default: f64) -> f64 {
        let Some(raw) = raw else { return default };
        let value = self.json(raw);
        let number = match &value {
            Value::Number(n) => n.as_f64(),
            Value::String(text) => text.trim().parse::<f64>().ok(),
            _ => None,
        };
        match number {
            Some(f) if (0.0..1.0).contains(&f) => f,
            _ => {
                self.error(
                    &raw.referenced,
                    format!(
                        "`{key}` must be a number from 0 up to (not including) 1, found {}",
                        show(&value)
                    ),
                    format!("write for example `{key}: 0.2` (20%)"),
                );
                default
            }
        }
    }

    /// A non-zero duration setting named `key` (`250ms`, `5s`, `2m`, or seconds).
    pub fn duration(
        &mut self,
        key: &str,
        raw: Option<&Spanned<Value>>,
        default: Duration,
    ) -> Duration {
        let Some(raw) = raw else { return default };
        let value = self.json(raw);
        match orch_sdk::duration::from_json(&value) {
            Ok(d) if d.is_zero() => {
                self.error(
                    &raw.referenced,
                    format!("`{key}` is zero"),
                    format!("a zero duration can never be met; write for example `{key}: 5s`"),
                );
                default
            }
            Ok(d) => d,
            Err(reason) => {
                self.error(
                    &raw.referenced,
                    format!("`{key}`: {reason}"),
                    "a duration is a number with a unit (ms, s, m or h), or a plain number of seconds",
                );
                default
            }
        }
    }
}

/// `true`/`false` (also `yes`/`no`, `on`/`off`) in any case.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Some(true),
        "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// A value as quoted in messages: `` `soon` ``, `a list`, `nothing`.
pub(crate) fn show(value: &Value) -> String {
    match value {
        Value::Null => "nothing".to_owned(),
        Value::String(text) => format!("`{text}`"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
        other => format!("`{other}`"),
    }
}
