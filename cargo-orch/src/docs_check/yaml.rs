//! Loading configuration text through `orch_config`, as `cargo orch run`
//! does: a documented YAML block, or a probe of which keys the parser accepts.

use std::path::{Path, PathBuf};

use orch_config::workspace::{Workspace, WorkspacePackage};
use orch_config::{ConfigError, ConfigErrors};

/// Which file a block is, from its first line (`# config/main.yaml`,
/// `# config/prod/modules.yaml: the prod overlay`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `main.yaml` or `modules.yaml`.
    pub file: &'static str,
    /// The environment whose overlay it is, if any.
    pub environment: Option<String>,
}

impl Target {
    /// The target the block's first line names; why not otherwise.
    pub fn of(text: &str) -> Result<Target, String> {
        let first = text.lines().next().unwrap_or_default().trim();
        let named = first
            .strip_prefix("# ")
            .map(|rest| rest.split([':', ' ']).next().unwrap_or_default())
            .unwrap_or_default();
        let parts: Vec<&str> = named.split('/').collect();
        let file = match parts.last() {
            Some(&"main.yaml") => "main.yaml",
            Some(&"modules.yaml") => "modules.yaml",
            _ => {
                return Err(format!(
                    "its first line is `{first}`: a ```yaml block starts with `# config/main.yaml` \
                     or `# config/modules.yaml` (or `# config/<env>/...` for an environment's \
                     overlay), or is marked ```yaml ignore"
                ));
            }
        };
        match parts.as_slice() {
            ["config", _] => Ok(Target {
                file,
                environment: None,
            }),
            ["config", env, _] => Ok(Target {
                file,
                environment: Some((*env).to_owned()),
            }),
            _ => Err(format!(
                "`{named}`: name `config/{file}` or `config/<env>/{file}`"
            )),
        }
    }
}

/// The values the docs' `${VAR}`s without a default get.
fn doc_var(name: &str) -> Option<String> {
    match name {
        "ALERT_URL" => Some("https://alerts.example.invalid/hook/T000".to_owned()),
        "NATS_PASSWORD" | "NATS_TOKEN" => Some("doc-secret-value".to_owned()),
        _ => None,
    }
}

/// Loads `text` as the file `target` in a temporary workspace, with a minimal
/// counterpart; every configuration error, or `Ok`.
pub fn load_block(text: &str, target: &Target) -> Result<(), ConfigErrors> {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let root = dir.path();
    let config = root.join("config");
    let names = module_names(text);
    let placed = match &target.environment {
        Some(env) => config.join(env).join(target.file),
        None => config.join(target.file),
    };
    write(&placed, text);
    if target.file == "main.yaml" || target.environment.is_some() {
        let base: String = match (target.file, &target.environment) {
            ("modules.yaml", Some(_)) => names.iter().fold("modules:\n".to_owned(), |all, name| {
                all + &format!("  - name: {name}\n")
            }),
            _ => "modules: []\n".to_owned(),
        };
        write(&config.join("modules.yaml"), &base);
    }
    for file in named_files(text) {
        write(&root.join(file), "");
    }
    let workspace = workspace(root, &names, &paths(text));
    orch_config::load_layered_with_vars(
        &config,
        target.environment.as_deref(),
        &workspace,
        &doc_var,
    )
    .map(|_| ())
}

/// Loads a `main.yaml` (with an empty `modules.yaml`) or a `modules.yaml`.
pub fn load_text(file: &'static str, text: &str) -> Result<(), ConfigErrors> {
    load_block(
        text,
        &Target {
            file,
            environment: None,
        },
    )
}

/// One error as `line:column: message (hint)`, the line counted in the block.
pub fn describe(error: &ConfigError, first_line: usize) -> String {
    let place = match (error.line, error.column) {
        (Some(line), Some(column)) => {
            format!("line {} col {column}", first_line + line as usize)
        }
        (Some(line), None) => format!("line {}", first_line + line as usize),
        _ => "file".to_owned(),
    };
    let message = error.message.lines().next().unwrap_or_default();
    format!("{place}: {message} (hint: {})", error.hint)
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("a parent folder")).expect("folders");
    std::fs::write(path, text).expect("write");
}

/// The values of `name:` and `package:` keys: the packages the block needs.
fn module_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in text.lines() {
        let line = line.trim_start().trim_start_matches("- ").trim_start();
        for key in ["name:", "package:"] {
            if let Some(value) = line.strip_prefix(key).map(plain_value)
                && !value.is_empty()
                && !names.contains(&value)
            {
                names.push(value);
            }
        }
    }
    names
}

/// The values of `path:` keys: package folders.
fn paths(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim_start().trim_start_matches("- ").trim_start();
            line.strip_prefix("path:").map(plain_value)
        })
        .filter(|value| !value.is_empty())
        .collect()
}

/// A scalar as written after a key: comment and quotes removed.
fn plain_value(rest: &str) -> String {
    let value = rest.split(" #").next().unwrap_or_default().trim();
    value.trim_matches(['"', '\'']).to_owned()
}

/// The files a block names under `ca`, `cert`, `key` and `creds`, which the
/// configuration checks exist.
fn named_files(text: &str) -> Vec<String> {
    let mut files = Vec::new();
    for key in ["ca:", "cert:", "key:", "creds:"] {
        for (at, _) in text.match_indices(key) {
            let before = text[..at].chars().next_back().unwrap_or(' ');
            if !(before.is_whitespace() || before == '{' || before == ',') {
                continue;
            }
            let value: String = text[at + key.len()..]
                .trim_start_matches(' ')
                .chars()
                .take_while(|c| !(c.is_whitespace() || *c == ',' || *c == '}'))
                .collect();
            let value = value.trim_matches(['"', '\'']).to_owned();
            if !value.is_empty() && !value.starts_with('$') {
                files.push(value);
            }
        }
    }
    files
}

/// A workspace at `root` whose cdylib packages are `names`, plus one per `paths`.
fn workspace(root: &Path, names: &[String], paths: &[String]) -> Workspace {
    let package = |name: &str, dir: PathBuf| WorkspacePackage {
        name: name.to_owned(),
        manifest_dir: dir,
        is_cdylib: true,
        lib_name: Some(name.replace('-', "_")),
        workspace_dependencies: Vec::new(),
    };
    let mut packages: Vec<WorkspacePackage> = names
        .iter()
        .map(|name| package(name, root.join("modules-backend").join(name)))
        .collect();
    for path in paths {
        let dir = root.join(path);
        std::fs::create_dir_all(&dir).expect("the package folder");
        let name = dir.file_name().map_or_else(
            || "package".to_owned(),
            |n| n.to_string_lossy().into_owned(),
        );
        packages.push(package(&name, dir));
    }
    Workspace {
        root: root.to_path_buf(),
        target_dir: root.join("target"),
        packages,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_target_from_the_first_line() {
        let main = Target::of("# config/main.yaml: the default\nx: 1\n").unwrap();
        assert_eq!((main.file, main.environment), ("main.yaml", None));
        let overlay = Target::of("# config/prod/modules.yaml\n").unwrap();
        assert_eq!(overlay.environment.as_deref(), Some("prod"));
        assert!(Target::of("modules:\n").is_err());
        assert!(Target::of("# other/main.yaml\n").is_err());
    }

    #[test]
    fn a_wrong_block_fails_with_the_configuration_error() {
        let errors = load_text(
            "modules.yaml",
            "# config/modules.yaml\nmodules:\n  - name: a\n    enabeld: true\n",
        )
        .expect_err("a typo");
        let text = describe(&errors.0[0], 10);
        assert!(
            text.starts_with("line 14 col 5: unknown key `enabeld`"),
            "{text}"
        );
        load_text("modules.yaml", "modules:\n  - name: a\n    path: x/y\n")
            .expect("a package folder named by `path` is made");
        load_text("main.yaml", "bridge:\n  nats:\n    url: nats://h:4222\n    export: [a.>]\n    tls: {ca: c/ca.pem}\n")
            .expect("files named are made");
    }
}
