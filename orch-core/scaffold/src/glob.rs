//! Matching a folder against the `members` and `exclude` patterns of a
//! workspace `Cargo.toml`, as cargo reads them: `*` matches any characters
//! inside one path component, `?` one character, `**` any number of whole
//! components.
//!
//! This only predicts membership, to decide whether a new package needs its own
//! `members` entry; `cargo metadata` has the last word afterwards.

/// Whether the relative, `/`-separated `path` matches `pattern`, with the
/// `glob` crate (the one cargo itself uses for `members`): `*` and `?` never
/// cross a `/`.
pub(crate) fn matches(pattern: &str, path: &str) -> bool {
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: false,
    };
    glob::Pattern::new(&normalized(pattern))
        .is_ok_and(|pattern| pattern.matches_with(&normalized(path), options))
}

/// A relative path without empty and `.` components (`./a//b/` is `a/b`).
fn normalized(path: &str) -> String {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_cargo_member_patterns() {
        assert!(matches("modules-backend/*", "modules-backend/mod-x"));
        assert!(!matches("modules-backend/*", "modules-backend/a/b"));
        assert!(!matches("modules-backend/*", "modules-backend"));
        assert!(matches("./modules-backend/mod-x/", "modules-backend/mod-x"));
        assert!(matches("mods/mod-?", "mods/mod-x"));
        assert!(!matches("mods/mod-?", "mods/mod-xy"));
        assert!(matches("crates/**", "crates/a/b"));
        assert!(matches("**/mod-x", "a/b/mod-x"));
        assert!(matches("mod-*-sensor", "mod-temp-sensor"));
        assert!(!matches("xtask", "tests/xtask"));
    }
}
