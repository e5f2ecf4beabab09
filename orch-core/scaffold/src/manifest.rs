//! Reading and editing `Cargo.toml` files with `toml_edit`, so every comment,
//! blank line and the order of keys survive: the workspace's `members`, its
//! `[workspace.dependencies]`, and a package's library name.

use std::path::{Path, PathBuf};

use toml_edit::{Array, DocumentMut, Item, Table, Value};

use super::ScaffoldError;
use super::glob;

/// How the workspace's patterns treat a folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Membership {
    /// A `members` pattern includes it (the pattern).
    Covered(String),
    /// An `exclude` pattern leaves it out (the pattern).
    Excluded(String),
    /// No pattern names it: it needs a `members` entry.
    Missing,
}

/// The workspace `Cargo.toml`, parsed for editing.
pub(crate) struct WorkspaceManifest {
    path: PathBuf,
    original: String,
    doc: DocumentMut,
}

impl WorkspaceManifest {
    /// Reads `root/Cargo.toml`, which must have a `[workspace]` table.
    pub(crate) fn read(root: &Path) -> Result<Self, ScaffoldError> {
        let path = root.join("Cargo.toml");
        let original = std::fs::read_to_string(&path)
            .map_err(|e| ScaffoldError::io(format!("cannot read {}", path.display()), e))?;
        let doc: DocumentMut = original.parse().map_err(|e: toml_edit::TomlError| {
            ScaffoldError::file(
                &path,
                format!("is not valid TOML: {}", e.to_string().trim_end()),
                "fix the syntax at the place shown, then run the command again",
            )
        })?;
        if !doc.get("workspace").is_some_and(Item::is_table_like) {
            return Err(ScaffoldError::file(
                &path,
                "has no [workspace] table",
                "modules live in a cargo workspace: create one with `cargo orch init <dir>`, \
                 or add `[workspace]` with `members = [\"modules-backend/*\"]`",
            ));
        }
        Ok(Self {
            path,
            original,
            doc,
        })
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `relative` (a `/`-separated folder under the root) is a member.
    pub(crate) fn membership(&self, relative: &str) -> Membership {
        let patterns = |key: &str| -> Vec<String> {
            self.workspace()
                .and_then(|w| w.get(key))
                .and_then(Item::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        // An explicit `members` entry wins over `exclude`; a pattern does not.
        let members = patterns("members");
        if let Some(exact) = members
            .iter()
            .find(|m| glob::matches(m, relative) && !m.contains(['*', '?']))
        {
            return Membership::Covered(exact.clone());
        }
        if let Some(excluded) = patterns("exclude")
            .into_iter()
            .find(|e| glob::matches(e, relative))
        {
            return Membership::Excluded(excluded);
        }
        match members.into_iter().find(|m| glob::matches(m, relative)) {
            Some(pattern) => Membership::Covered(pattern),
            None => Membership::Missing,
        }
    }

    /// Appends `relative` to `workspace.members`, formatted like the entries
    /// already there.
    pub(crate) fn add_member(&mut self, relative: &str) -> Result<(), ScaffoldError> {
        let path = self.path.clone();
        let workspace = self.workspace_mut()?;
        let members = workspace
            .entry("members")
            .or_insert_with(|| Item::Value(Value::Array(Array::new())));
        let Some(members) = members.as_array_mut() else {
            return Err(ScaffoldError::file(
                &path,
                "`workspace.members` is not an array",
                "write it as `members = [\"modules-backend/*\"]`",
            ));
        };
        let (prefix, suffix) = new_entry_decor(members);
        let mut value = Value::from(relative);
        value.decor_mut().set_prefix(prefix);
        value.decor_mut().set_suffix(suffix);
        members.push_formatted(value);
        Ok(())
    }

    /// Whether `[workspace.dependencies]` has `name`.
    pub(crate) fn has_dependency(&self, name: &str) -> bool {
        self.workspace()
            .and_then(|w| w.get("dependencies"))
            .and_then(Item::as_table_like)
            .is_some_and(|deps| deps.contains_key(name))
    }

    /// Adds `name = <value>` (TOML text, e.g. `{ version = "1" }`) to
    /// `[workspace.dependencies]`, creating the table when missing.
    pub(crate) fn add_dependency(&mut self, name: &str, value: &str) -> Result<(), ScaffoldError> {
        let parsed: Value = value.parse().map_err(|e: toml_edit::TomlError| {
            ScaffoldError::file(
                &self.path,
                format!("cannot add `{name} = {value}`: {e}"),
                "this is a bug in cargo-orch; add the dependency by hand",
            )
        })?;
        let path = self.path.clone();
        let workspace = self.workspace_mut()?;
        let deps = workspace.entry("dependencies").or_insert_with(|| {
            let mut table = Table::new();
            table.set_implicit(false);
            Item::Table(table)
        });
        let Some(deps) = deps.as_table_like_mut() else {
            return Err(ScaffoldError::file(
                &path,
                "`workspace.dependencies` is not a table",
                "write it as a `[workspace.dependencies]` table",
            ));
        };
        deps.insert(name, Item::Value(parsed));
        Ok(())
    }

    /// Whether the text would change.
    pub(crate) fn is_changed(&self) -> bool {
        self.text() != self.original
    }

    /// The (edited) file's text.
    pub(crate) fn text(&self) -> String {
        self.doc.to_string()
    }

    fn workspace(&self) -> Option<&dyn toml_edit::TableLike> {
        self.doc.get("workspace").and_then(Item::as_table_like)
    }

    fn workspace_mut(&mut self) -> Result<&mut dyn toml_edit::TableLike, ScaffoldError> {
        let path = self.path.clone();
        self.doc
            .get_mut("workspace")
            .and_then(Item::as_table_like_mut)
            .ok_or_else(|| {
                ScaffoldError::file(
                    &path,
                    "has no [workspace] table",
                    "add a `[workspace]` table",
                )
            })
    }
}

/// The prefix and suffix of an entry appended to `array`, so it looks like
/// the entries already there; clears the last entry's suffix, which moves to the
/// new entry (without a trailing comma, the whitespace before `]` is the last
/// entry's suffix, and a comment there must stay before the comma).
fn new_entry_decor(array: &mut Array) -> (String, String) {
    let only_one = array.len() == 1;
    let Some(last) = array.len().checked_sub(1).and_then(|i| array.get_mut(i)) else {
        return (String::new(), String::new());
    };
    let text = |raw: Option<&toml_edit::RawString>| {
        raw.and_then(|r| r.as_str()).unwrap_or_default().to_owned()
    };
    let last_prefix = text(last.decor().prefix());
    let last_suffix = text(last.decor().suffix());
    last.decor_mut().set_suffix("");
    // The last entry's indentation, without a comment that followed the comma
    // before it (toml_edit keeps that comment in the prefix).
    let indentation = match last_prefix.rfind('\n') {
        Some(newline) => last_prefix[newline..].to_owned(),
        // A single entry on the line of `[` has no prefix: separate with a space.
        None if only_one => " ".to_owned(),
        None => last_prefix,
    };
    match last_suffix.rfind('\n') {
        Some(newline) => (
            format!("{}{indentation}", &last_suffix[..newline]),
            last_suffix[newline..].to_owned(),
        ),
        None => (indentation, last_suffix),
    }
}

/// The library name of the package in `package_dir`: its `[lib] name`, else
/// the package name with `-` written `_` (cargo's default). An unreadable
/// manifest gives the default.
pub fn lib_name(package_dir: &Path, package: &str) -> String {
    std::fs::read_to_string(package_dir.join("Cargo.toml"))
        .ok()
        .and_then(|text| text.parse::<DocumentMut>().ok())
        .and_then(|doc| {
            doc.get("lib")
                .and_then(|lib| lib.get("name"))
                .and_then(Item::as_str)
                .map(String::from)
        })
        .unwrap_or_else(|| package.replace('-', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO_STYLE: &str = r#"[workspace]
resolver = "3"
# the members, in build order
members = [
    "cargo-orch",
    "modules-backend/*",   # every module
    "xtask",
]
exclude = ["modules-backend/old-*"]

[workspace.dependencies]
orch-sdk = { path = "orch-core/sdk", version = "0.1.0" }
"#;

    fn manifest(text: &str) -> (tempfile::TempDir, WorkspaceManifest) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), text).unwrap();
        let manifest = WorkspaceManifest::read(dir.path()).unwrap();
        (dir, manifest)
    }

    #[test]
    fn predicts_membership_from_members_and_exclude() {
        let (_dir, m) = manifest(REPO_STYLE);
        assert_eq!(
            m.membership("modules-backend/mod-x"),
            Membership::Covered("modules-backend/*".into())
        );
        assert_eq!(
            m.membership("modules-backend/old-x"),
            Membership::Excluded("modules-backend/old-*".into())
        );
        assert_eq!(m.membership("extra/mod-x"), Membership::Missing);
        assert_eq!(m.membership("xtask"), Membership::Covered("xtask".into()));
    }

    #[test]
    fn adds_a_member_keeping_comments_order_and_layout() {
        let (_dir, mut m) = manifest(REPO_STYLE);
        assert!(!m.is_changed());
        m.add_member("extra/mod-x").unwrap();
        let expected = REPO_STYLE.replace(
            "    \"xtask\",\n]",
            "    \"xtask\",\n    \"extra/mod-x\",\n]",
        );
        assert_eq!(m.text(), expected);
        assert!(m.is_changed());

        let (_dir, mut m) = manifest("[workspace]\nmembers = [\"a\", \"b\"] # two\n");
        m.add_member("c").unwrap();
        assert_eq!(
            m.text(),
            "[workspace]\nmembers = [\"a\", \"b\", \"c\"] # two\n"
        );

        let (_dir, mut m) = manifest("[workspace]\nmembers = [\"a\"]\n");
        m.add_member("c").unwrap();
        assert_eq!(m.text(), "[workspace]\nmembers = [\"a\", \"c\"]\n");

        let (_dir, mut m) = manifest("[workspace]\nmembers = [\n  \"a\"\n]\n");
        m.add_member("c").unwrap();
        assert_eq!(m.text(), "[workspace]\nmembers = [\n  \"a\",\n  \"c\"\n]\n");

        let (_dir, mut m) =
            manifest("[workspace]\nmembers = [\n  \"a\", # first\n  \"b\" # last\n]\n");
        m.add_member("c").unwrap();
        assert_eq!(
            m.text(),
            "[workspace]\nmembers = [\n  \"a\", # first\n  \"b\", # last\n  \"c\"\n]\n"
        );

        let (_dir, mut m) = manifest("[workspace]\nresolver = \"3\"\n");
        m.add_member("c").unwrap();
        assert_eq!(
            m.text(),
            "[workspace]\nresolver = \"3\"\nmembers = [\"c\"]\n"
        );
    }

    #[test]
    fn adds_missing_workspace_dependencies() {
        let (_dir, mut m) = manifest(REPO_STYLE);
        assert!(m.has_dependency("orch-sdk"));
        assert!(!m.has_dependency("serde"));
        m.add_dependency("serde", r#"{ version = "1", features = ["derive"] }"#)
            .unwrap();
        assert!(m.text().ends_with(
            "orch-sdk = { path = \"orch-core/sdk\", version = \"0.1.0\" }\n\
             serde = { version = \"1\", features = [\"derive\"] }\n"
        ));

        let (_dir, mut m) =
            manifest("# top\n[workspace]\nmembers = []\n\n[profile.dev]\ndebug = 1\n");
        m.add_dependency("orch-sdk", "\"0.1.0\"").unwrap();
        let text = m.text();
        assert!(
            text.starts_with("# top\n[workspace]\nmembers = []\n"),
            "{text}"
        );
        assert!(
            text.contains("[workspace.dependencies]\norch-sdk = \"0.1.0\"\n"),
            "{text}"
        );
        assert!(text.contains("[profile.dev]\ndebug = 1\n"), "{text}");
        assert!(text.parse::<DocumentMut>().is_ok());
    }

    #[test]
    fn refuses_a_manifest_without_a_workspace_or_with_bad_syntax() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Cargo.toml"), "[package]\nname = \"x\"\n").unwrap();
        let error = WorkspaceManifest::read(dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("has no [workspace] table"), "{error}");
        assert!(error.contains("cargo orch init"), "{error}");

        std::fs::write(dir.path().join("Cargo.toml"), "[workspace\nmembers = [\n").unwrap();
        let error = WorkspaceManifest::read(dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("is not valid TOML"), "{error}");
        assert!(error.contains("Cargo.toml"), "{error}");
    }

    #[test]
    fn reads_the_library_name() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(lib_name(dir.path(), "mod-x"), "mod_x");
        std::fs::write(
            dir.path().join("Cargo.toml"),
            "[package]\nname = \"mod-x\"\n[lib]\nname = \"custom\"\n",
        )
        .unwrap();
        assert_eq!(lib_name(dir.path(), "mod-x"), "custom");
    }
}
