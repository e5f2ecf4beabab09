//! Matching a folder against the `members` and `exclude` patterns of a
//! workspace `Cargo.toml` (the subset of glob syntax cargo workspaces use):
//! `*` matches any characters inside one path component, `?` one character,
//! `**` any number of whole components; everything else is literal.
//!
//! This only predicts membership, to decide whether a new package needs its own
//! `members` entry; `cargo metadata` has the last word afterwards.

/// Whether the relative, `/`-separated `path` matches `pattern`.
pub(crate) fn matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = components(pattern);
    let path: Vec<&str> = components(path);
    match_components(&pattern, &path)
}

/// The components of a relative path, without empty and `.` ones.
fn components(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

fn match_components(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| match_components(rest, &path[skip..])),
        Some((first, rest)) => match path.split_first() {
            Some((component, path_rest)) => {
                match_component(first.as_bytes(), component.as_bytes())
                    && match_components(rest, path_rest)
            }
            None => false,
        },
    }
}

fn match_component(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| match_component(rest, &text[skip..])),
        Some((b'?', rest)) => !text.is_empty() && match_component(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && match_component(rest, &text[1..]),
    }
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
