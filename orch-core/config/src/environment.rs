//! Environments (`--env prod`): the folder `config/<env>/` whose `main.yaml`
//! and `modules.yaml` are layered over the base files.

use std::path::{Path, PathBuf};

use super::error::ConfigError;
use super::suggest::did_you_mean;

/// The files an environment folder may hold, each optional.
const OVERLAY_FILES: [&str; 2] = ["main.yaml", "modules.yaml"];

/// The environments of `config_dir`: its sub-folders holding a `main.yaml` or
/// a `modules.yaml`, by name, sorted. Unreadable folders are left out.
pub fn environments(config_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(config_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|entry| entry.path().is_dir())
        .filter(|entry| OVERLAY_FILES.iter().any(|f| entry.path().join(f).is_file()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .filter(|name| is_environment_name(name))
        .collect();
    names.sort();
    names
}

/// The folder of `environment` in `config_dir`: a plain folder name that
/// exists; an error naming the folder and the environments there otherwise.
pub(crate) fn folder(config_dir: &Path, environment: &str) -> Result<PathBuf, ConfigError> {
    if !is_environment_name(environment) {
        return Err(ConfigError::new(
            config_dir,
            format!(
                "`{}` is not an environment name",
                environment.escape_debug()
            ),
            format!(
                "an environment is a folder of {} named with ASCII letters, digits, `-` and `_` \
                 only, for example `--env prod`",
                config_dir.display()
            ),
        ));
    }
    let folder = config_dir.join(environment);
    if folder.is_dir() {
        return Ok(folder);
    }
    let message = if folder.exists() {
        format!("environment `{environment}`: this is not a folder")
    } else {
        format!("environment `{environment}` not found: the folder does not exist")
    };
    Err(ConfigError::new(
        &folder,
        message,
        known(config_dir, environment),
    ))
}

/// The hint for a missing environment: the ones that exist, with a
/// suggestion when one is close, or how to create it.
fn known(config_dir: &Path, wanted: &str) -> String {
    let existing = environments(config_dir);
    if existing.is_empty() {
        return format!(
            "{} has no environments yet: create the folder {} with a main.yaml and/or a \
             modules.yaml holding what this environment changes in the base files",
            config_dir.display(),
            config_dir.join(wanted).display()
        );
    }
    format!(
        "{}environments in {}: {} (the sub-folders holding a main.yaml or modules.yaml)",
        did_you_mean(wanted, existing.iter().map(String::as_str)),
        config_dir.display(),
        existing.join(", ")
    )
}

/// ASCII letters, digits, `-` and `_`, at least one.
fn is_environment_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_names_are_plain_folder_names() {
        for good in ["prod", "dev-2", "eu_west", "QA"] {
            assert!(is_environment_name(good), "{good}");
        }
        for bad in ["", ".", "..", "../prod", "a/b", "pr od", "prød", "a.b"] {
            assert!(!is_environment_name(bad), "{bad}");
        }
    }
}
