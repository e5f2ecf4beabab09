//! Secret detection and redaction, so module configs can be logged safely.

use serde_json::Value;

/// What a redacted value is replaced with.
const MASK: &str = "***";

/// Secrets shorter than this are not scrubbed from logs: masking every "on" or
/// "1" in the output would hide more than it protects.
pub(crate) const MIN_SECRET_LEN: usize = 4;

/// Words that make a key secret-looking, matched against whole words of the key.
const SECRET_WORDS: &[&str] = &[
    "token",
    "tokens",
    "password",
    "passwords",
    "passwd",
    "passphrase",
    "secret",
    "secrets",
    "key",
    "keys",
    "apikey",
    "credential",
    "credentials",
    "privatekey",
    "accesskey",
    "secretkey",
    "accesstoken",
    "authtoken",
];

/// Whether `key` looks like it names a secret (`api_key`, `apiKey`, `API_TOKEN`,
/// `db_password`, `private-key`), judged on its words (split on `_`, `-`, `.`
/// and camelCase), case-insensitively, so `keyboard` and `monkey` are not secret.
pub fn is_secret_key(key: &str) -> bool {
    words(key)
        .iter()
        .any(|word| SECRET_WORDS.contains(&word.as_str()))
}

/// Where the password of a URL's user info is in `text`
/// (`scheme://user:PASSWORD@host/...`), as a byte range.
fn url_password(text: &str) -> Option<std::ops::Range<usize>> {
    let authority_start = text.find("://")? + 3;
    let rest = &text[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    let user_info = &authority[..authority.rfind('@')?];
    let colon = user_info.find(':')?;
    let start = authority_start + colon + 1;
    let end = authority_start + user_info.len();
    (end > start).then_some(start..end)
}

/// `text` with the password of a URL in it masked.
fn redact_url(text: &str) -> Option<String> {
    let range = url_password(text)?;
    Some(format!(
        "{}{MASK}{}",
        &text[..range.start],
        &text[range.end..]
    ))
}

/// A copy of `value` where the value of every secret-looking key, at any depth,
/// is replaced by `"***"`, and so is the password of every URL
/// (`postgres://app:***@db`).
pub fn redact_json(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let value = if is_secret_key(key) {
                        Value::String(MASK.to_owned())
                    } else {
                        redact_json(value)
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact_json).collect()),
        Value::String(text) => Value::String(redact_url(text).unwrap_or_else(|| text.clone())),
        other => other.clone(),
    }
}

/// Pushes onto `out` every string (of at least [`MIN_SECRET_LEN`] characters)
/// held by a secret-looking key of `value`, at any depth, and the password of
/// every URL in it.
pub(crate) fn collect_secrets(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                if is_secret_key(key) {
                    collect_strings(value, out);
                } else {
                    collect_secrets(value, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| collect_secrets(item, out)),
        Value::String(text) => {
            if let Some(range) = url_password(text)
                && text[range.clone()].chars().count() >= MIN_SECRET_LEN
            {
                out.push(text[range].to_owned());
            }
        }
        _ => {}
    }
}

/// Pushes every long-enough string inside `value`.
fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(text) if text.chars().count() >= MIN_SECRET_LEN => {
            out.push(text.clone());
        }
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// The lowercase words of an identifier: `apiKey` -> `api`, `key`;
/// `HTTPToken` -> `http`, `token`; `db_password` -> `db`, `password`.
fn words(key: &str) -> Vec<String> {
    let mut words = Vec::new();
    for part in key.split(['_', '-', '.', ' ']) {
        split_camel_case(part, &mut words);
    }
    words
}

/// Splits one separator-free part on case changes and letter/digit changes.
fn split_camel_case(part: &str, words: &mut Vec<String>) {
    let chars: Vec<char> = part.chars().collect();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let previous = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1).copied();
        if !current.is_empty() && starts_word(previous, c, next) {
            words.push(std::mem::take(&mut current).to_lowercase());
        }
        current.push(c);
    }
    if !current.is_empty() {
        words.push(current.to_lowercase());
    }
}

/// Whether `c` begins a new word, given its neighbours.
fn starts_word(previous: Option<char>, c: char, next: Option<char>) -> bool {
    let Some(previous) = previous else {
        return false;
    };
    let lower_to_upper = previous.is_lowercase() && c.is_uppercase();
    let acronym_end =
        previous.is_uppercase() && c.is_uppercase() && next.is_some_and(char::is_lowercase);
    let digit_change = previous.is_ascii_digit() != c.is_ascii_digit();
    lower_to_upper || acronym_end || digit_change
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_identifiers_into_words() {
        assert_eq!(words("apiKey"), ["api", "key"]);
        assert_eq!(words("HTTPToken"), ["http", "token"]);
        assert_eq!(words("db_password"), ["db", "password"]);
        assert_eq!(words("key2"), ["key", "2"]);
        assert_eq!(words("private-key.pem"), ["private", "key", "pem"]);
    }

    #[test]
    fn recognises_secret_keys() {
        for key in [
            "token",
            "password",
            "passwd",
            "secret",
            "key",
            "apikey",
            "api_key",
            "apiKey",
            "API_TOKEN",
            "db_password",
            "dbPassword",
            "credentials",
            "private_key",
            "client-secret",
            "aws.secretKey",
        ] {
            assert!(is_secret_key(key), "{key} should be secret");
        }
        for key in [
            "keyboard",
            "monkey",
            "message",
            "publish_interval",
            "tokenizer",
            "name",
            "passage",
        ] {
            assert!(!is_secret_key(key), "{key} should not be secret");
        }
    }

    #[test]
    fn redacts_recursively() {
        let config = json!({
            "url": "postgres://db",
            "password": "hunter22",
            "nested": {"apiKey": {"inner": "x"}, "list": [{"token": 5}, {"keep": "me"}]},
        });
        assert_eq!(
            redact_json(&config),
            json!({
                "url": "postgres://db",
                "password": "***",
                "nested": {"apiKey": "***", "list": [{"token": "***"}, {"keep": "me"}]},
            })
        );
    }

    #[test]
    fn masks_and_collects_the_password_of_a_url() {
        assert_eq!(
            redact_json(&json!({"db": "postgres://app:hunter22@db:5432/x?sslmode=require"})),
            json!({"db": "postgres://app:***@db:5432/x?sslmode=require"})
        );
        for plain in [
            "postgres://app@db/x",
            "https://example.com/a:b@c",
            "nats://127.0.0.1:4222",
            "user:pw@host",
        ] {
            assert_eq!(redact_json(&json!(plain)), json!(plain), "{plain}");
        }
        let mut secrets = Vec::new();
        collect_secrets(
            &json!({"list": ["amqp://guest:p%40ss-word@mq/"], "short": "x://u:ab@h"}),
            &mut secrets,
        );
        assert_eq!(secrets, ["p%40ss-word"]);
    }

    #[test]
    fn collects_secret_strings_only() {
        let config = json!({
            "password": "hunter22",
            "key": "abc",
            "keyboard": "qwerty",
            "nested": [{"credentials": {"user": "root", "pass": "s3cr3t!"}}],
            "token": true,
        });
        let mut secrets = Vec::new();
        collect_secrets(&config, &mut secrets);
        secrets.sort();
        assert_eq!(secrets, ["hunter22", "root", "s3cr3t!"]);
    }
}
