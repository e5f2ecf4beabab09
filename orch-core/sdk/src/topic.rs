//! Topic names and subscription patterns, shared by the host's bus and the test host.
//!
//! A topic is dot-separated tokens of letters, digits, `_` and `-` (`test.ping`).
//! A pattern may use `*` for exactly one token and `>` as its last token for one or
//! more remaining tokens (`module.*`, `sensor.>`).

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
    let tokens: Vec<&str> = topic.split('.').collect();
    for (index, token) in tokens.iter().enumerate() {
        let wildcard = *token == "*" || (*token == ">" && index == tokens.len() - 1);
        if wildcard && allow_wildcards {
            continue;
        }
        if wildcard || *token == ">" {
            return Err(if allow_wildcards {
                format!("topic pattern '{topic}': `>` may only be the last token")
            } else {
                format!("topic '{topic}' has a wildcard; publish on a concrete topic")
            });
        }
        if token.is_empty() {
            return Err(format!(
                "topic '{topic}' has an empty token; tokens are separated by single dots"
            ));
        }
        if let Some(bad) = token
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(format!(
                "topic '{topic}' contains {bad:?}; use letters, digits, `_`, `-` and dots"
            ));
        }
    }
    Ok(())
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
}
