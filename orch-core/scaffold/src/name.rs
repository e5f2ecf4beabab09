//! Module names: the rules a new module's name must follow (it becomes a cargo
//! package, a Rust crate and a `config/modules.yaml` entry), a valid suggestion
//! when it breaks one, and the names derived from it.

/// Longest accepted name (crates.io's limit).
pub const MAX_NAME_LEN: usize = 64;

/// Names cargo refuses for a package because they shadow a built-in library.
const RESERVED: [&str; 6] = ["std", "core", "alloc", "proc_macro", "proc-macro", "test"];

/// Rust keywords (2024 edition, reserved ones included): a crate named after
/// one could not be written in code (`use r#fn` aside).
const KEYWORDS: [&str; 52] = [
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "crate",
    "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl",
    "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref",
    "return", "self", "Self", "static", "struct", "super", "trait", "true", "try", "type",
    "typeof", "union", "unsafe", "unsized", "use", "virtual", "where", "while",
];

/// A name that breaks a rule: which one, and a valid name to use instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidName {
    /// The rule, as a sentence.
    pub rule: String,
    /// A valid name close to the one given.
    pub suggestion: String,
}

/// Checks `name` against the rules of a module name: 1 to 64 characters;
/// lowercase ASCII letters, digits, `-` and `_`; starting with a letter; not a
/// Rust keyword or a name cargo reserves (`std`, `core`, `test`, ...).
pub fn validate(name: &str) -> Result<(), InvalidName> {
    let broken = |rule: &str| InvalidName {
        rule: rule.to_owned(),
        suggestion: suggest(name),
    };
    if name.is_empty() {
        return Err(broken("a module name must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(broken(&format!(
            "a module name has at most {MAX_NAME_LEN} characters (this one has {})",
            name.chars().count()
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(broken(&format!(
            "a module name may contain only ASCII letters, digits, `-` and `_`, not {bad:?}"
        )));
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(broken(
            "a module name is lowercase (cargo package names are, by convention and for case-insensitive file systems)",
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(broken("a module name starts with a letter"));
    }
    if RESERVED.contains(&name) {
        return Err(broken(&format!(
            "`{name}` is reserved by cargo: it shadows a built-in library"
        )));
    }
    if KEYWORDS.contains(&crate_ident(name).as_str()) {
        return Err(broken(&format!(
            "`{}` is a Rust keyword, so the crate could not be named in code",
            crate_ident(name)
        )));
    }
    Ok(())
}

/// A valid name close to `name`: lowercase, other characters turned into `-`,
/// `mod-` in front when it does not start with a letter or is reserved.
pub fn suggest(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches(|c| c == '-' || c == '_');
    let mut suggestion = if trimmed.is_empty() {
        "mod-new".to_owned()
    } else if !trimmed.starts_with(|c: char| c.is_ascii_alphabetic())
        || RESERVED.contains(&trimmed)
        || KEYWORDS.contains(&crate_ident(trimmed).as_str())
    {
        format!("mod-{trimmed}")
    } else {
        trimmed.to_owned()
    };
    suggestion.truncate(MAX_NAME_LEN);
    let end = suggestion.trim_end_matches(['-', '_']).len();
    suggestion.truncate(end);
    suggestion
}

/// The crate's name in Rust code: `mod-x` is `mod_x`.
pub fn crate_ident(name: &str) -> String {
    name.replace('-', "_")
}

/// The module's type name in UpperCamelCase: `mod-weather_station` is
/// `ModWeatherStation`.
pub fn type_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_cargo_style_names() {
        for name in ["mod-x", "mod_weather", "a", "sensor2", "x-1-y"] {
            assert_eq!(validate(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn each_rule_is_named_with_a_valid_suggestion() {
        let cases = [
            ("", "must not be empty", "mod-new"),
            ("Mod-X", "lowercase", "mod-x"),
            ("my module!", "not ' '", "my-module"),
            ("1st-module", "starts with a letter", "mod-1st-module"),
            ("-x", "starts with a letter", "x"),
            ("test", "reserved by cargo", "mod-test"),
            ("fn", "Rust keyword", "mod-fn"),
            ("mod", "Rust keyword", "mod-mod"),
            ("caf\u{e9}", "not '\u{e9}'", "caf"),
        ];
        for (name, rule, suggestion) in cases {
            let error = validate(name).expect_err(name);
            assert!(error.rule.contains(rule), "{name}: {}", error.rule);
            assert_eq!(error.suggestion, suggestion, "{name}");
            assert_eq!(validate(&error.suggestion), Ok(()), "{name}");
        }
        let long = "a".repeat(MAX_NAME_LEN + 1);
        let error = validate(&long).expect_err("too long");
        assert!(error.rule.contains("at most 64"), "{}", error.rule);
        assert_eq!(validate(&error.suggestion), Ok(()));
    }

    #[test]
    fn derives_the_crate_and_type_names() {
        assert_eq!(crate_ident("mod-weather-station"), "mod_weather_station");
        assert_eq!(type_name("mod-weather-station"), "ModWeatherStation");
        assert_eq!(type_name("mod_x2"), "ModX2");
        assert_eq!(type_name("a"), "A");
    }
}
