//! The tokens and topic patterns `bridge.nats` settings are made of, checked
//! the same way in every part of the section.

use serde_saphyr::Spanned;

use super::check::Checker;

/// A name token (`node`, `stream`, `durable`, a bucket, a group): letters,
/// digits, `-` and `_`; `None` when empty (a `${VAR:-}` left unset: the
/// default applies) or refused.
pub(crate) fn name_token(c: &mut Checker, key: &str, raw: &Spanned<String>) -> Option<String> {
    let text = c.string(raw)?;
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
    {
        return Some(text.to_owned());
    }
    c.error(
        &raw.referenced,
        format!(
            "`{key}` may hold letters, digits, `-` and `_` only, found `{}`",
            text.escape_debug()
        ),
        "it names this orchestrator in message ids and in the broker: write for example `edge-1`",
    );
    None
}

/// `export` / `import` / `ask`: topic patterns.
pub(crate) fn patterns(c: &mut Checker, key: &str, raw: Option<&[Spanned<String>]>) -> Vec<String> {
    let mut patterns = Vec::new();
    for entry in raw.unwrap_or_default() {
        let Some(text) = c.string(entry) else {
            continue;
        };
        let text = text.trim();
        match orch_sdk::topic::validate_pattern(text) {
            Ok(()) if is_reserved_only(text) => c.error(
                &entry.referenced,
                format!("`{key}` entry `{text}` is in a namespace the host keeps for itself"),
                "app.*, module.* and bridge.* events stay on the node that published them; \
                 bridge the application's own topics",
            ),
            Ok(()) => patterns.push(text.to_owned()),
            Err(reason) => c.error(
                &entry.referenced,
                format!(
                    "`{key}` entry `{}` is not a topic pattern: {reason}",
                    text.escape_debug()
                ),
                "a pattern is dot-separated tokens; `*` matches one token, `>` the rest",
            ),
        }
    }
    patterns
}

/// Whether `pattern` matches only topics of the host's namespaces.
fn is_reserved_only(pattern: &str) -> bool {
    let first = pattern.split('.').next().unwrap_or_default();
    orch_sdk::topic::RESERVED_NAMESPACES.contains(&first)
}
