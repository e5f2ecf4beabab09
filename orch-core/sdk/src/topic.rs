//! Topic names and subscription patterns, shared by the host's bus and the test host.
//!
//! A topic is dot-separated tokens of letters, digits, `_` and `-` (`test.ping`).
//! A pattern may use `*` for exactly one token and `>` as its last token for one or
//! more remaining tokens (`module.*`, `sensor.>`). A topic or pattern is at
//! most [`MAX_TOPIC_BYTES`] long. Errors show a topic escaped and cut, since
//! it may come from a peer.

/// The longest topic or pattern, in bytes.
pub const MAX_TOPIC_BYTES: usize = 256;

/// Checks a topic that is published: no wildcards.
pub fn validate_topic(topic: &str) -> Result<(), String> {
    validate(topic, false)
}

/// The namespaces only the host publishes in: `app.*`, `module.*`, `bridge.*`.
pub const RESERVED_NAMESPACES: &[&str] = &["app", "module", "bridge"];

/// Checks a topic a module publishes: a valid topic outside the host's
/// reserved namespaces (the host's own events could otherwise be forged).
pub fn validate_module_topic(topic: &str) -> Result<(), String> {
    validate_topic(topic)?;
    let first = topic.split('.').next().unwrap_or_default();
    if RESERVED_NAMESPACES.contains(&first) {
        return Err(format!(
            "'{topic}' is in the host's reserved namespace '{first}.*': only the host \
             publishes there; publish on a topic of your own (such as 'mymodule.{}')",
            topic.split_once('.').map_or(topic, |(_, rest)| rest)
        ));
    }
    Ok(())
}

/// Whether every topic that `requested` (a topic or a pattern) matches is
/// also matched by `declared`: `sensor.>` covers `sensor.temp` and
/// `sensor.*.raw`; `sensor.*` does not cover `sensor.>`.
pub fn covers(declared: &str, requested: &str) -> bool {
    let declared: Vec<&str> = declared.split('.').collect();
    let requested: Vec<&str> = requested.split('.').collect();
    for (index, token) in declared.iter().enumerate() {
        if *token == ">" {
            return requested.len() > index;
        }
        match requested.get(index) {
            None | Some(&">") => return false,
            Some(&"*") if *token != "*" => return false,
            Some(other) if *token != "*" && token != other => return false,
            Some(_) => {}
        }
    }
    requested.len() == declared.len()
}

/// Checks a subscription pattern.
pub fn validate_pattern(pattern: &str) -> Result<(), String> {
    validate(pattern, true)
}

/// Whether `pattern` contains a wildcard token.
pub fn is_pattern(pattern: &str) -> bool {
    pattern.split('.').any(|t| t == "*" || t == ">")
}

fn validate(topic: &str, allow_wildcards: bool) -> Result<(), String> {
    if topic.is_empty() {
        return Err("a topic must not be empty; write for example `test.ping`".into());
    }
    if topic.len() > MAX_TOPIC_BYTES {
        return Err(format!(
            "topic '{}' is {} bytes, more than {MAX_TOPIC_BYTES}; use a shorter name",
            shown(topic),
            topic.len()
        ));
    }
    let mut tokens = topic.split('.').peekable();
    while let Some(token) = tokens.next() {
        let last = tokens.peek().is_none();
        let wildcard = token == "*" || (token == ">" && last);
        if wildcard && allow_wildcards {
            continue;
        }
        if wildcard || token == ">" {
            return Err(if allow_wildcards {
                format!(
                    "topic pattern '{}': `>` may only be the last token",
                    shown(topic)
                )
            } else {
                format!(
                    "topic '{}' has a wildcard; publish on a concrete topic",
                    shown(topic)
                )
            });
        }
        if token.is_empty() {
            return Err(format!(
                "topic '{}' has an empty token; tokens are separated by single dots",
                shown(topic)
            ));
        }
        if let Some(bad) = token
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(format!(
                "topic '{}' contains {bad:?}; use letters, digits, `_`, `-` and dots",
                shown(topic)
            ));
        }
    }
    Ok(())
}

/// `topic` as an error shows it: control and other unusual characters
/// escaped, cut after 64 characters.
fn shown(topic: &str) -> String {
    let mut text: String = topic
        .chars()
        .take(64)
        .flat_map(char::escape_debug)
        .collect();
    if topic.chars().nth(64).is_some() {
        text.push_str("...");
    }
    text
}

/// Can some topic match both patterns (`*` one token, `>` one or more at
/// the end)? Two exact topics overlap when they are equal.
pub fn overlap(a: &str, b: &str) -> bool {
    let a: Vec<&str> = a.split('.').collect();
    let b: Vec<&str> = b.split('.').collect();
    tokens_overlap(&a, &b)
}

fn tokens_overlap(a: &[&str], b: &[&str]) -> bool {
    match (a.split_first(), b.split_first()) {
        (None, None) => true,
        (Some((&">", _)), _) => !b.is_empty(),
        (_, Some((&">", _))) => !a.is_empty(),
        (Some((x, a_rest)), Some((y, b_rest))) => {
            (*x == "*" || *y == "*" || x == y) && tokens_overlap(a_rest, b_rest)
        }
        _ => false,
    }
}

/// Whether `topic` matches `pattern`.
pub fn matches(pattern: &str, topic: &str) -> bool {
    let mut pattern_tokens = pattern.split('.');
    let mut topic_tokens = topic.split('.');
    loop {
        match (pattern_tokens.next(), topic_tokens.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(p), Some(t)) if p == t => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_pattern_covers_what_it_matches_and_no_more() {
        assert!(covers("sensor.>", "sensor.temp"));
        assert!(covers("sensor.>", "sensor.*.raw"));
        assert!(covers("sensor.>", "sensor.>"));
        assert!(!covers("sensor.>", "sensor"));
        assert!(covers("sensor.*", "sensor.temp"));
        assert!(covers("sensor.*", "sensor.*"));
        assert!(!covers("sensor.*", "sensor.>"));
        assert!(!covers("sensor.*", "sensor.a.b"));
        assert!(covers("test.ping", "test.ping"));
        assert!(!covers("test.ping", "test.*"));
        assert!(!covers("test.ping", "test.pong"));
    }

    #[test]
    fn modules_may_not_publish_in_the_hosts_namespaces() {
        for topic in ["app.shutdown", "module.crashed", "bridge.connected"] {
            let error = validate_module_topic(topic).unwrap_err();
            assert!(error.contains("reserved namespace"), "{error}");
        }
        assert!(validate_module_topic("apps.x").is_ok());
        assert!(validate_module_topic("sensor.module.x").is_ok());
        assert!(
            validate_module_topic("app")
                .unwrap_err()
                .contains("reserved")
        );
    }

    #[test]
    fn validates_topics() {
        assert!(validate_topic("test.ping").is_ok());
        assert!(validate_topic("a-b.c_d.1").is_ok());
        assert!(validate_topic("").is_err());
        assert!(validate_topic("a..b").is_err());
        assert!(validate_topic("a.*").is_err());
        assert!(validate_topic("a b").is_err());
        assert!(validate_pattern("a.*.c").is_ok());
        assert!(validate_pattern("a.>").is_ok());
        assert!(validate_pattern("a.>.c").is_err());
    }

    #[test]
    fn matches_wildcards() {
        assert!(matches("test.ping", "test.ping"));
        assert!(!matches("test.ping", "test.pong"));
        assert!(matches("module.*", "module.error"));
        assert!(!matches("module.*", "module.error.x"));
        assert!(!matches("module.*", "module"));
        assert!(matches("sensor.>", "sensor.a.b"));
        assert!(!matches("sensor.>", "sensor"));
        assert!(!matches("a.b", "a.b.c"));
    }

    #[test]
    fn a_topic_is_capped_and_shown_escaped() {
        let long = "a".repeat(MAX_TOPIC_BYTES + 1);
        assert!(validate_topic(&long).unwrap_err().contains("more than 256"));
        assert!(validate_topic(&"a".repeat(MAX_TOPIC_BYTES)).is_ok());
        let error = validate_topic("a\u{1b}[2J\nforged").unwrap_err();
        assert!(!error.chars().any(char::is_control), "{error:?}");
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// Strings made mostly of the characters topics are made of.
        fn topicish() -> impl Strategy<Value = String> {
            proptest::string::string_regex("[a-c0-9_*>. \\x1b\\n\\-]{0,12}").expect("a regex")
        }

        proptest! {
            #[test]
            fn any_text_is_a_topic_or_a_clear_refusal(
                text in prop_oneof![any::<String>(), topicish()]
            ) {
                for checked in [validate_topic(&text), validate_pattern(&text), validate_module_topic(&text)] {
                    if let Err(e) = checked {
                        prop_assert!(!e.chars().any(char::is_control), "{:?}", e);
                        prop_assert!(e.len() < 1_024);
                    }
                }
            }

            #[test]
            fn a_valid_topic_is_plain_and_matches_itself(text in topicish()) {
                if validate_topic(&text).is_ok() {
                    prop_assert!(text.len() <= MAX_TOPIC_BYTES);
                    prop_assert!(!is_pattern(&text));
                    prop_assert!(validate_pattern(&text).is_ok());
                    prop_assert!(matches(&text, &text));
                    prop_assert!(covers(&text, &text));
                }
            }

            #[test]
            fn a_pattern_covers_a_topic_exactly_when_it_matches_it(pattern in topicish(), topic in topicish()) {
                if validate_pattern(&pattern).is_ok() && validate_topic(&topic).is_ok() {
                    prop_assert_eq!(covers(&pattern, &topic), matches(&pattern, &topic));
                }
            }
        }
    }
}
