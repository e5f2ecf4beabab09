//! `cargo orch new`: a module from a template, added to the workspace and
//! declared in `config/modules.yaml`, all or nothing.
//!
//! First everything that can be checked without writing (the name, the
//! template, the folder, the packages, the workspace `Cargo.toml`); then, in one
//! [`FileTransaction`]: the module's files, the workspace `Cargo.toml` edit when
//! needed, a `cargo metadata` check that cargo sees the new cdylib package, and
//! the `modules.yaml` entry (the file is validated before and after the append).
//! Any failure undoes every change.

use std::path::{Path, PathBuf};

use super::manifest::{Membership, WorkspaceManifest};
use super::template::{self, TemplateKind};
use super::transaction::FileTransaction;
use super::{ScaffoldError, module_values, name, paths, registry, sdk};
use orch_config as config;
use orch_config::workspace::Workspace;

/// What `cargo orch new` was asked for.
#[derive(Debug, Clone)]
pub struct NewModule {
    /// The module's name, also its package name.
    pub name: String,
    /// The template's name (`basic`, `producer`, `consumer`).
    pub template: String,
    /// The module's folder, absolute or relative to `cwd`; by default
    /// `modules-backend/<name>` under the workspace root.
    pub path: Option<PathBuf>,
    /// The folder relative paths start from.
    pub cwd: PathBuf,
    /// Whether to declare the module in `modules.yaml`.
    pub register: bool,
    /// The folder of `modules.yaml`, absolute or relative to the workspace root.
    pub config_dir: PathBuf,
}

/// How the new package became a workspace member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// A `members` pattern of `Cargo.toml` already covered its folder.
    Covered(String),
    /// Its folder was added to `members`.
    Added(String),
}

/// What [`create_module`] did.
#[derive(Debug, Clone)]
pub struct CreatedModule {
    /// The module's name.
    pub name: String,
    /// The template it came from.
    pub template: String,
    /// Its folder.
    pub dir: PathBuf,
    /// The files written, in order.
    pub files: Vec<PathBuf>,
    /// How it became a workspace member.
    pub member: MemberChange,
    /// `[workspace.dependencies]` entries added to the workspace `Cargo.toml`.
    pub dependencies_added: Vec<String>,
    /// The `modules.yaml` that declares it, unless `register` was false.
    pub registered_in: Option<PathBuf>,
}

/// Everything decided before the first write.
struct Plan {
    name: String,
    template: String,
    root: PathBuf,
    dir: PathBuf,
    files: Vec<(PathBuf, String)>,
    manifest: WorkspaceManifest,
    member: MemberChange,
    dependencies_added: Vec<String>,
    config_lines: String,
    modules_dir: Option<PathBuf>,
}

/// Creates the module `request` describes in `workspace`; on any failure every
/// file created or edited is restored and the error says so.
pub fn create_module(
    workspace: &Workspace,
    request: &NewModule,
) -> Result<CreatedModule, ScaffoldError> {
    let plan = plan(workspace, request)?;
    let mut tx = FileTransaction::new();
    match apply(&mut tx, &plan) {
        Ok(registered_in) => {
            let files = tx.created_files().iter().map(|p| p.to_path_buf()).collect();
            tx.commit();
            Ok(CreatedModule {
                name: plan.name,
                template: plan.template,
                dir: plan.dir,
                files,
                member: plan.member,
                dependencies_added: plan.dependencies_added,
                registered_in,
            })
        }
        Err(cause) => Err(ScaffoldError::Undone {
            cause: Box::new(cause),
            leftovers: tx.rollback(),
        }),
    }
}

/// The checks that need no writing, and the rendered files.
fn plan(workspace: &Workspace, request: &NewModule) -> Result<Plan, ScaffoldError> {
    let name = request.name.as_str();
    name::validate(name).map_err(|invalid| ScaffoldError::InvalidName {
        name: name.to_owned(),
        rule: invalid.rule,
        suggestion: invalid.suggestion,
    })?;
    let template = template::find(&request.template, TemplateKind::Module)?;

    let root = paths::canonical_prefix(&workspace.root);
    let asked = match &request.path {
        Some(path) => paths::normalize(&request.cwd.join(path)),
        None => root.join("modules-backend").join(name),
    };
    let dir = paths::canonical_prefix(&asked);
    let Some(relative) = paths::relative_to(&root, &dir) else {
        if dir == root {
            return Err(ScaffoldError::AlreadyExists {
                what: format!("{} is the workspace root itself", dir.display()),
                hint: format!(
                    "give --path a new folder for the module, e.g. modules-backend/{name}"
                ),
            });
        }
        return Err(ScaffoldError::OutsideWorkspace { path: dir, root });
    };
    if dir.starts_with(paths::canonical_prefix(&workspace.target_dir)) {
        return Err(ScaffoldError::file(
            &dir,
            "is inside cargo's target folder, which `cargo clean` deletes",
            format!("choose a folder for sources, e.g. modules-backend/{name}"),
        ));
    }
    check_packages(workspace, name)?;
    check_folder(&dir, &relative)?;

    let mut manifest = WorkspaceManifest::read(&root)?;
    let member = match manifest.membership(&relative) {
        Membership::Covered(pattern) => MemberChange::Covered(pattern),
        Membership::Excluded(pattern) => {
            return Err(ScaffoldError::file(
                manifest.path(),
                format!(
                    "`{relative}` is left out of the workspace by its `exclude` pattern \"{pattern}\""
                ),
                "remove it from `exclude`, or choose another --path",
            ));
        }
        Membership::Missing => {
            manifest.add_member(&relative)?;
            MemberChange::Added(relative.clone())
        }
    };
    let mut dependencies_added = Vec::new();
    for dependency in &template.workspace_dependencies {
        if !manifest.has_dependency(dependency) {
            manifest.add_dependency(dependency, &default_dependency(template.name, dependency)?)?;
            dependencies_added.push(dependency.clone());
        }
    }

    let owned = module_values(name);
    let values: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let with_hack = manifest.has_dependency(WORKSPACE_HACK);
    let files = template
        .render(&values)?
        .into_iter()
        .map(|file| {
            let contents = if with_hack && file.path == "Cargo.toml" {
                add_workspace_hack(&file.contents).map_err(|e| ScaffoldError::Template {
                    template: template.name.to_owned(),
                    message: format!("its Cargo.toml is not valid TOML: {e}"),
                })?
            } else {
                file.contents
            };
            Ok((dir.join(&file.path), contents))
        })
        .collect::<Result<_, ScaffoldError>>()?;
    let config_lines = template.render_config(&values)?;
    Ok(Plan {
        name: name.to_owned(),
        template: template.name.to_owned(),
        root: root.clone(),
        dir,
        files,
        manifest,
        member,
        dependencies_added,
        config_lines,
        modules_dir: request.register.then(|| root.join(&request.config_dir)),
    })
}

/// The module folder must be new (or an empty folder).
fn check_folder(dir: &Path, relative: &str) -> Result<(), ScaffoldError> {
    if dir.is_file() {
        return Err(ScaffoldError::AlreadyExists {
            what: format!("{relative} already exists as a file ({})", dir.display()),
            hint: "choose another name, or another --path".into(),
        });
    }
    let not_empty = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
    if not_empty {
        return Err(ScaffoldError::AlreadyExists {
            what: format!(
                "the folder {relative} already exists and is not empty ({})",
                dir.display()
            ),
            hint: "choose another name, or another --path; nothing in an existing folder is overwritten"
                .into(),
        });
    }
    Ok(())
}

/// No workspace package may have the name, or build the same library file.
fn check_packages(workspace: &Workspace, name: &str) -> Result<(), ScaffoldError> {
    let ident = name::crate_ident(name);
    if let Some(package) = workspace
        .packages
        .iter()
        .find(|p| p.name == name || name::crate_ident(&p.name) == ident)
    {
        let what = if package.name == name {
            format!(
                "a package named `{name}` already exists in the workspace ({})",
                package.manifest_dir.display()
            )
        } else {
            format!(
                "the package `{}` ({}) would build the same library `{ident}` as `{name}`",
                package.name,
                package.manifest_dir.display()
            )
        };
        return Err(ScaffoldError::AlreadyExists {
            what,
            hint: "choose another name".into(),
        });
    }
    Ok(())
}

/// The workspace-hack crate (see `orch-core/workspace-hack`): in a workspace
/// that has one, a new module depends on it too, so that its builds reuse the
/// dependency builds of the rest of the workspace (the workspace-hack pattern;
/// `cargo hakari manage-deps` does the same).
const WORKSPACE_HACK: &str = "orch-workspace-hack";

/// `manifest` (a module's Cargo.toml) with `orch-workspace-hack.workspace = true`
/// under `[dependencies]`, comments and layout kept.
fn add_workspace_hack(manifest: &str) -> Result<String, toml_edit::TomlError> {
    let mut document: toml_edit::DocumentMut = manifest.parse()?;
    let mut dependency = toml_edit::Table::new();
    dependency.set_dotted(true);
    dependency["workspace"] = toml_edit::value(true);
    document["dependencies"][WORKSPACE_HACK] = toml_edit::Item::Table(dependency);
    Ok(document.to_string())
}

/// The value a missing `[workspace.dependencies]` entry gets.
fn default_dependency(template: &str, dependency: &str) -> Result<String, ScaffoldError> {
    match dependency {
        "orch-sdk" => Ok(sdk::sdk_dependency()),
        "serde" => Ok(r#"{ version = "1", features = ["derive"] }"#.to_owned()),
        other => Err(ScaffoldError::Template {
            template: template.to_owned(),
            message: format!("no default for the workspace dependency `{other}`"),
        }),
    }
}

/// The writes, in order, each recorded in `tx`; returns the `modules.yaml`
/// written to.
fn apply(tx: &mut FileTransaction, plan: &Plan) -> Result<Option<PathBuf>, ScaffoldError> {
    tx.create_dir_all(&plan.dir).map_err(|e| {
        ScaffoldError::io(
            format!("cannot create the folder {}", plan.dir.display()),
            e,
        )
    })?;
    for (path, contents) in &plan.files {
        tx.create_file(path, contents.as_bytes())
            .map_err(|e| ScaffoldError::io(format!("cannot write {}", path.display()), e))?;
    }
    if plan.manifest.is_changed() {
        let path = plan.manifest.path();
        tx.edit_file(path, plan.manifest.text().as_bytes())
            .map_err(|e| ScaffoldError::io(format!("cannot edit {}", path.display()), e))?;
    }

    // cargo has the last word on membership.
    let workspace = orch_cargo::discover_workspace(&plan.root)?;
    match workspace.package(&plan.name) {
        Some(package) if package.is_cdylib => {}
        Some(_) => {
            return Err(ScaffoldError::Template {
                template: plan.template.clone(),
                message: "its Cargo.toml does not build a cdylib".into(),
            });
        }
        None => {
            return Err(ScaffoldError::file(
                plan.manifest.path(),
                format!(
                    "cargo does not see the new package `{}` as a member of the workspace",
                    plan.name
                ),
                "check `members` and `exclude` in [workspace], or choose another --path",
            ));
        }
    }

    match &plan.modules_dir {
        Some(config_dir) => register(tx, &workspace, config_dir, plan).map(Some),
        None => Ok(None),
    }
}

/// Appends the module's entry to `modules.yaml`, validated before and after.
fn register(
    tx: &mut FileTransaction,
    workspace: &Workspace,
    config_dir: &Path,
    plan: &Plan,
) -> Result<PathBuf, ScaffoldError> {
    let path = config_dir.join("modules.yaml");
    let before = config::load(config_dir, workspace).map_err(|errors| ScaffoldError::Config {
        context: format!(
            "the configuration in {} does not validate, so `{}` was not declared in it",
            config_dir.display(),
            plan.name
        ),
        errors,
        hint: "fix the errors above and run the command again, or pass --no-register to create \
               the module without declaring it"
            .into(),
    })?;
    if let Some(existing) = before.module(&plan.name) {
        return Err(ScaffoldError::AlreadyExists {
            what: format!(
                "a module named `{}` is already declared in {}:{}",
                plan.name,
                path.display(),
                existing.line
            ),
            hint: "choose another name, or remove that entry first".into(),
        });
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| ScaffoldError::io(format!("cannot read {}", path.display()), e))?;
    let appended =
        registry::append_entry(&text, &plan.name, &plan.config_lines).map_err(|why| {
            ScaffoldError::file(
                &path,
                why,
                "declare the module by hand, or pass --no-register",
            )
        })?;
    tx.edit_file(&path, appended.as_bytes())
        .map_err(|e| ScaffoldError::io(format!("cannot edit {}", path.display()), e))?;
    let after = config::load(config_dir, workspace).map_err(|errors| ScaffoldError::Config {
        context: format!(
            "declaring `{}` would leave {} invalid",
            plan.name,
            path.display()
        ),
        errors,
        hint: "the file's layout may be one the text append does not handle: declare the module \
               by hand, or pass --no-register"
            .into(),
    })?;
    match after.module(&plan.name) {
        Some(module) if module.package == plan.name => Ok(path),
        _ => Err(ScaffoldError::file(
            &path,
            format!(
                "the appended entry for `{}` is not read back as a module",
                plan.name
            ),
            "declare the module by hand, or pass --no-register",
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::fs;

    use super::*;
    use crate::{InitWorkspace, init_workspace};

    /// A fresh workspace from `cargo orch init`'s template.
    fn workspace() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        let created = init_workspace(&InitWorkspace {
            dir: "app".into(),
            cwd: dir.path().to_path_buf(),
        })
        .unwrap();
        let workspace = orch_cargo::discover_workspace(&created.root).unwrap();
        (dir, workspace)
    }

    fn request(workspace: &Workspace, name: &str, template: &str) -> NewModule {
        NewModule {
            name: name.into(),
            template: template.into(),
            path: None,
            cwd: workspace.root.clone(),
            register: true,
            config_dir: "config".into(),
        }
    }

    fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(root: &Path, dir: &Path, into: &mut BTreeMap<PathBuf, Vec<u8>>) {
            for entry in fs::read_dir(dir).unwrap().flatten() {
                let path = entry.path();
                let key = path.strip_prefix(root).unwrap().to_path_buf();
                if path.is_dir() {
                    into.insert(key, Vec::new());
                    walk(root, &path, into);
                } else {
                    into.insert(key, fs::read(&path).unwrap());
                }
            }
        }
        let mut files = BTreeMap::new();
        walk(root, root, &mut files);
        files
    }

    #[test]
    fn the_workspace_hack_is_added_with_the_comments_kept() {
        let manifest =
            "[package]\nname = \"m\"\n\n[dependencies]\n# the SDK\norch-sdk.workspace = true\n";
        let edited = add_workspace_hack(manifest).unwrap();
        assert_eq!(
            edited,
            "[package]\nname = \"m\"\n\n[dependencies]\n# the SDK\norch-sdk.workspace = true\norch-workspace-hack.workspace = true\n"
        );
    }

    #[test]
    fn creates_registers_and_needs_no_member_entry_under_the_glob() {
        let (_dir, workspace) = workspace();
        let manifest = fs::read_to_string(workspace.root.join("Cargo.toml")).unwrap();
        let created = create_module(&workspace, &request(&workspace, "mod-x", "producer")).unwrap();
        assert_eq!(
            created.member,
            MemberChange::Covered("modules-backend/*".into())
        );
        assert!(created.dependencies_added.is_empty());
        assert_eq!(created.files.len(), 4);
        assert_eq!(
            fs::read_to_string(workspace.root.join("Cargo.toml")).unwrap(),
            manifest
        );
        let modules = fs::read_to_string(workspace.root.join("config/modules.yaml")).unwrap();
        assert!(
            modules.ends_with(
                "modules:\n  - name: mod-x\n    config:\n      interval: 1s   # how often it publishes\n      topic: mod-x.tick   # where it publishes\n"
            ),
            "{modules}"
        );
        let after = orch_cargo::discover_workspace(&workspace.root).unwrap();
        let config = config::load(&workspace.root.join("config"), &after).unwrap();
        assert_eq!(config.module("mod-x").unwrap().config["interval"], "1s");
    }

    #[test]
    fn outside_the_glob_it_adds_a_member_and_missing_dependencies() {
        let (_dir, workspace) = workspace();
        let manifest_path = workspace.root.join("Cargo.toml");
        let manifest = fs::read_to_string(&manifest_path).unwrap();
        let without_serde: String = manifest
            .lines()
            .filter(|l| !l.starts_with("serde ="))
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(&manifest_path, &without_serde).unwrap();
        let mut request = request(&workspace, "mod-c", "consumer");
        request.path = Some("extra/mod-c".into());
        let created = create_module(&workspace, &request).unwrap();
        assert_eq!(created.member, MemberChange::Added("extra/mod-c".into()));
        assert_eq!(created.dependencies_added, vec!["serde".to_owned()]);
        let edited = fs::read_to_string(&manifest_path).unwrap();
        assert!(
            edited.contains("members = [\"modules-backend/*\", \"extra/mod-c\"]"),
            "{edited}"
        );
        assert!(edited.contains("serde = { version = \"1\", features = [\"derive\"] }"));
        assert!(
            edited.starts_with("# A cargo-orch workspace"),
            "comments kept: {edited}"
        );
    }

    #[test]
    fn a_failure_in_the_last_step_restores_every_file() {
        let (_dir, workspace) = workspace();
        let yaml = workspace.root.join("config/modules.yaml");
        fs::remove_file(&yaml).unwrap();
        fs::create_dir(&yaml).unwrap();
        let before = snapshot(&workspace.root);
        let mut request = request(&workspace, "mod-x", "basic");
        request.path = Some("extra/mod-x".into());
        let error = create_module(&workspace, &request).unwrap_err();
        let ScaffoldError::Undone { cause, leftovers } = &error else {
            panic!("undone expected: {error}");
        };
        assert!(leftovers.is_empty(), "{leftovers:?}");
        assert!(matches!(**cause, ScaffoldError::Config { .. }), "{cause}");
        assert!(error.is_usage());
        assert!(snapshot(&workspace.root) == before, "{error}");
    }

    #[test]
    fn an_excluded_folder_is_refused_before_anything_is_written() {
        let (_dir, workspace) = workspace();
        let manifest_path = workspace.root.join("Cargo.toml");
        let manifest = fs::read_to_string(&manifest_path).unwrap().replace(
            "members = [\"modules-backend/*\"]",
            "members = [\"modules-backend/*\"]\nexclude = [\"modules-backend/old-*\"]",
        );
        fs::write(&manifest_path, manifest).unwrap();
        let before = snapshot(&workspace.root);
        let error = create_module(&workspace, &request(&workspace, "old-x", "basic"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`exclude` pattern \"modules-backend/old-*\""),
            "{error}"
        );
        assert!(snapshot(&workspace.root) == before);
    }
}
