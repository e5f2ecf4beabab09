//! The templates embedded at compile time (see `build.rs` and
//! `templates/README.md`): their metadata from `template.toml`, their files,
//! and rendering them with placeholder values.

use toml_edit::{DocumentMut, Item};

use super::ScaffoldError;
use super::render::render;

// `EMBEDDED`: (template, relative path, contents) for every template file.
include!(concat!(env!("OUT_DIR"), "/templates.rs"));

/// The metadata file of a template folder (read, never rendered).
const METADATA: &str = "template.toml";

/// What a template creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateKind {
    /// A module (`cargo orch new`).
    Module,
    /// A workspace (`cargo orch init`).
    Workspace,
}

/// One file of a template, before rendering.
#[derive(Debug, Clone, Copy)]
pub struct TemplateFile {
    /// Relative path, `/`-separated; may hold placeholders.
    pub path: &'static str,
    /// Contents; may hold placeholders.
    pub contents: &'static str,
}

/// An embedded template.
#[derive(Debug, Clone)]
pub struct Template {
    /// Its folder name under `templates/`.
    pub name: &'static str,
    /// What it creates.
    pub kind: TemplateKind,
    /// One line for `--list-templates`.
    pub description: String,
    /// The `[workspace.dependencies]` its `Cargo.toml` uses.
    pub workspace_dependencies: Vec<String>,
    /// YAML lines for the `config:` of the module's `modules.yaml` entry.
    pub config: String,
    /// The files to render (not `template.toml`).
    pub files: Vec<TemplateFile>,
}

/// A file rendered for a destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedFile {
    /// Relative path, `/`-separated.
    pub path: String,
    /// Contents.
    pub contents: String,
}

impl Template {
    /// Renders every file (paths and contents) with `values`.
    pub fn render(&self, values: &[(&str, &str)]) -> Result<Vec<RenderedFile>, ScaffoldError> {
        self.files
            .iter()
            .map(|file| {
                Ok(RenderedFile {
                    path: render(file.path, values).map_err(|e| self.broken(file.path, e))?,
                    contents: render(file.contents, values)
                        .map_err(|e| self.broken(file.path, e))?,
                })
            })
            .collect()
    }

    /// The `config:` lines for `modules.yaml`, rendered with `values`.
    pub fn render_config(&self, values: &[(&str, &str)]) -> Result<String, ScaffoldError> {
        render(&self.config, values).map_err(|e| self.broken(METADATA, e))
    }

    fn broken(&self, file: &str, error: impl std::fmt::Display) -> ScaffoldError {
        ScaffoldError::Template {
            template: self.name.to_owned(),
            message: format!("{file}: {error}"),
        }
    }
}

/// Every embedded template, sorted by name.
pub fn all() -> Result<Vec<Template>, ScaffoldError> {
    let mut names: Vec<&'static str> = EMBEDDED.iter().map(|(t, _, _)| *t).collect();
    names.dedup();
    names.into_iter().map(load).collect()
}

/// The templates of `kind`.
pub fn of_kind(kind: TemplateKind) -> Result<Vec<Template>, ScaffoldError> {
    Ok(all()?.into_iter().filter(|t| t.kind == kind).collect())
}

/// The template `name` of `kind`, or an error listing those there are.
pub fn find(name: &str, kind: TemplateKind) -> Result<Template, ScaffoldError> {
    let templates = of_kind(kind)?;
    let names: Vec<&str> = templates.iter().map(|t| t.name).collect();
    let available = names.join(", ");
    templates
        .into_iter()
        .find(|t| t.name == name)
        .ok_or_else(|| ScaffoldError::UnknownTemplate {
            name: name.to_owned(),
            available,
        })
}

fn load(name: &'static str) -> Result<Template, ScaffoldError> {
    let broken = |message: String| ScaffoldError::Template {
        template: name.to_owned(),
        message,
    };
    let files: Vec<(&'static str, &'static str)> = EMBEDDED
        .iter()
        .filter(|(t, _, _)| *t == name)
        .map(|(_, path, contents)| (*path, *contents))
        .collect();
    let metadata = files
        .iter()
        .find(|(path, _)| *path == METADATA)
        .map(|(_, contents)| *contents)
        .ok_or_else(|| broken(format!("it has no {METADATA}")))?;
    let doc: DocumentMut = metadata
        .parse()
        .map_err(|e| broken(format!("{METADATA}: {e}")))?;
    let string = |key: &str| doc.get(key).and_then(Item::as_str).map(String::from);
    let kind = match string("kind").as_deref() {
        Some("module") => TemplateKind::Module,
        Some("workspace") => TemplateKind::Workspace,
        other => {
            return Err(broken(format!(
                "{METADATA}: `kind` must be \"module\" or \"workspace\", not {other:?}"
            )));
        }
    };
    let description =
        string("description").ok_or_else(|| broken(format!("{METADATA} has no `description`")))?;
    let workspace_dependencies = doc
        .get("workspace_dependencies")
        .and_then(Item::as_array)
        .map(|deps| {
            deps.iter()
                .filter_map(|d| d.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Ok(Template {
        name,
        kind,
        description,
        workspace_dependencies,
        config: string("config").unwrap_or_default(),
        files: files
            .into_iter()
            .filter(|(path, _)| *path != METADATA)
            .map(|(path, contents)| TemplateFile { path, contents })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{module_values, workspace_values};

    #[test]
    fn the_three_module_templates_and_the_workspace_are_embedded() {
        let modules: Vec<&str> = of_kind(TemplateKind::Module)
            .unwrap()
            .iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(modules, vec!["basic", "consumer", "io", "producer"]);
        let workspace = find("workspace", TemplateKind::Workspace).unwrap();
        assert!(
            workspace
                .files
                .iter()
                .any(|f| f.path == ".cargo/config.toml")
        );
        let error = find("workspace", TemplateKind::Module)
            .unwrap_err()
            .to_string();
        assert!(error.contains("unknown template `workspace`"), "{error}");
        assert!(error.contains("basic, consumer, io, producer"), "{error}");
    }

    /// Every placeholder of every template has a value, and every module
    /// template has what a module needs.
    #[test]
    fn every_template_renders() {
        for template in all().unwrap() {
            let owned = match template.kind {
                TemplateKind::Module => module_values("mod-weather-station"),
                TemplateKind::Workspace => workspace_values("my-app"),
            };
            let values: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let files = template.render(&values).unwrap();
            template.render_config(&values).unwrap();
            assert!(!template.description.is_empty());
            assert!(!template.description.contains('\n'), "{}", template.name);
            for file in &files {
                assert!(
                    !file.contents.contains("{{crate"),
                    "{}: {}",
                    template.name,
                    file.path
                );
            }
            if template.kind == TemplateKind::Module {
                let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
                for needed in ["Cargo.toml", "src/lib.rs", "README.md"] {
                    assert!(paths.contains(&needed), "{}: {needed}", template.name);
                }
                assert!(
                    paths.iter().any(|p| p.starts_with("tests/")),
                    "{}",
                    template.name
                );
                let manifest = &files
                    .iter()
                    .find(|f| f.path == "Cargo.toml")
                    .unwrap()
                    .contents;
                assert!(manifest.contains("name = \"mod-weather-station\""));
                assert!(manifest.contains("\"cdylib\", \"rlib\""));
                assert!(manifest.contains("orch-sdk.workspace = true"));
                assert!(
                    template
                        .workspace_dependencies
                        .contains(&"orch-sdk".to_owned())
                );
                let uses_serde = manifest.contains("serde.workspace = true");
                let declares_serde = template.workspace_dependencies.iter().any(|d| d == "serde");
                assert_eq!(uses_serde, declares_serde, "{}", template.name);
                let lib = &files
                    .iter()
                    .find(|f| f.path == "src/lib.rs")
                    .unwrap()
                    .contents;
                assert!(lib.contains("impl Module for ModWeatherStation"));
                assert!(lib.contains("orch_sdk::export_module!(ModWeatherStation);"));
            }
        }
    }
}
