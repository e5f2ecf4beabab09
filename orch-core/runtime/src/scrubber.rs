//! The secret scrubber: every value the configuration holds as a secret
//! (secret-looking keys, `${SECRET_VAR}` expansions, URL passwords) is
//! replaced by `***` wherever it appears: in log lines (console and file),
//! in what the host's stdout and stderr carry (see
//! `orch_process::console`), in system events and in `cargo orch check`'s
//! report. Each secret is also searched in the forms formatting gives it: JSON
//! and Debug escaping (`"pa\"ss"`), and percent-encoding in URLs. The set only
//! grows while the process runs: an edit of modules.yaml adds the new values,
//! and an old one a module may still hold stays scrubbed.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use aho_corasick::{AhoCorasick, MatchKind};

/// What a secret is replaced with.
const MASK: &str = "***";

/// Secrets shorter than this are not scrubbed: masking every "on" or "1"
/// would garble ordinary text.
const MIN_LEN: usize = 4;

/// At most this many forms are kept, so a config that churns secrets cannot
/// grow the scrubber without bound.
const MAX_FORMS: usize = 10_000;

/// Replaces known secret values with `***`; cheap to clone, shared by every
/// writer that needs it.
#[derive(Clone, Default)]
pub struct SecretScrubber {
    inner: Arc<RwLock<Forms>>,
}

#[derive(Default)]
struct Forms {
    /// Every form of every secret, unique.
    forms: Vec<String>,
    /// One automaton over all of them (leftmost-longest, so a secret that
    /// contains another is masked whole); `None` when there are none.
    matcher: Option<AhoCorasick>,
}

impl SecretScrubber {
    /// Replaces the set of secrets with `secrets`.
    pub fn set_secrets(&self, secrets: &[String]) {
        self.update(secrets, true);
    }

    /// Adds `secrets` to the set (a configuration edited while running).
    pub fn add_secrets(&self, secrets: &[String]) {
        self.update(secrets, false);
    }

    fn update(&self, secrets: &[String], replace: bool) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if replace {
            inner.forms.clear();
        }
        let before = inner.forms.len();
        for secret in secrets.iter().filter(|s| s.chars().count() >= MIN_LEN) {
            for form in forms_of(secret) {
                if inner.forms.len() < MAX_FORMS && !inner.forms.contains(&form) {
                    inner.forms.push(form);
                }
            }
        }
        if replace || inner.forms.len() != before {
            inner.matcher = (!inner.forms.is_empty())
                .then(|| {
                    AhoCorasick::builder()
                        .match_kind(MatchKind::LeftmostLongest)
                        .build(&inner.forms)
                        .ok()
                })
                .flatten();
        }
    }

    /// `text` with every secret replaced by `***`.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        match &inner.matcher {
            Some(matcher) if matcher.is_match(text) => {
                let masks = vec![MASK; inner.forms.len()];
                Cow::Owned(matcher.replace_all(text, &masks))
            }
            _ => Cow::Borrowed(text),
        }
    }
}

/// The forms `secret` may take in output: as it is, JSON- and Debug-escaped
/// (without the quotes), percent-encoded and percent-decoded.
fn forms_of(secret: &str) -> Vec<String> {
    let mut forms = vec![secret.to_owned()];
    let json = serde_json::to_string(secret).unwrap_or_default();
    let debug = format!("{secret:?}");
    for quoted in [json, debug] {
        if let Some(inner) = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')) {
            forms.push(inner.to_owned());
        }
    }
    forms.push(percent_encode(secret));
    if let Some(decoded) = percent_decode(secret) {
        forms.push(decoded);
    }
    forms.sort();
    forms.dedup();
    forms.retain(|form| form.chars().count() >= MIN_LEN);
    forms
}

/// `text` with every byte outside the URL-unreserved set percent-encoded.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// `text` with its `%XX` escapes decoded, if it has any and the result is
/// UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return None;
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_every_secret_longest_first() {
        let scrubber = SecretScrubber::default();
        scrubber.set_secrets(&["hunter2-long".into(), "hunter2".into(), "abc".into()]);
        assert_eq!(
            scrubber.scrub("token=hunter2-long pw=hunter2 short=abc"),
            "token=*** pw=*** short=abc"
        );
        assert!(matches!(scrubber.scrub("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn escaped_and_encoded_forms_are_scrubbed_too() {
        let scrubber = SecretScrubber::default();
        scrubber.set_secrets(&["pa\"ss\\wörd".into(), "p%40ss-word".into()]);
        let json = serde_json::json!({"password": "pa\"ss\\wörd"}).to_string();
        assert_eq!(scrubber.scrub(&json), r#"{"password":"***"}"#);
        let debug = format!("{:?}", ("pa\"ss\\wörd",));
        assert_eq!(scrubber.scrub(&debug), r#"("***",)"#);
        assert_eq!(
            scrubber.scrub("url=amqp://u:pa%22ss%5Cw%C3%B6rd@mq decoded=p@ss-word raw=p%40ss-word"),
            "url=amqp://u:***@mq decoded=*** raw=***"
        );
    }

    #[test]
    fn added_secrets_join_the_old_ones() {
        let scrubber = SecretScrubber::default();
        scrubber.set_secrets(&["first-secret".into()]);
        scrubber.add_secrets(&["second-secret".into()]);
        assert_eq!(scrubber.scrub("first-secret second-secret"), "*** ***");
        scrubber.set_secrets(&[]);
        assert_eq!(scrubber.scrub("first-secret"), "first-secret");
    }
}
