//! Inside every crate of the workspace, modules depend on each other one way:
//! no two sibling modules (at any level) reach into each other, directly or
//! around a circle. Read from the sources: a module depends on another when
//! one of its files names a path into it (`use crate::a::b`, `super::x`,
//! `crate::a::f()`); comments and `#[cfg(test)]` modules do not count. A
//! child naming its parent's items, and a parent its children's, is how a
//! module is built, not a dependency between siblings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use cargo_metadata::MetadataCommand;

/// A module by its path in the crate (`["isolation", "link"]`).
type ModPath = Vec<String>;

#[test]
fn no_crate_has_a_cycle_between_sibling_modules() {
    let metadata = MetadataCommand::new()
        .manifest_path(orch_e2e::workspace_root().join("Cargo.toml"))
        .no_deps()
        .exec()
        .expect("cargo metadata runs");
    let mut cycles = Vec::new();
    let mut crates = 0;
    for package in metadata.workspace_packages() {
        for target in &package.targets {
            if !target.is_lib() && !target.is_bin() {
                continue;
            }
            let root = target.src_path.as_std_path();
            crates += 1;
            for cycle in sibling_cycles(root) {
                cycles.push(format!("{} ({}): {cycle}", package.name, target.name));
            }
        }
    }
    assert!(crates > 10, "only {crates} crates found");
    assert!(
        cycles.is_empty(),
        "sibling modules that depend on each other (move what both need into a module \
         of its own, or pass it in):\n{}",
        cycles.join("\n")
    );
}

/// The cycles among sibling modules of the crate whose root file is `root`,
/// each described with the references that make it.
fn sibling_cycles(root: &Path) -> Vec<String> {
    let files = module_files(root);
    let modules: BTreeSet<ModPath> = files.keys().cloned().collect();
    let mut edges: BTreeSet<(ModPath, ModPath)> = BTreeSet::new();
    for (module, text) in &files {
        for path in referenced_paths(text) {
            if let Some(target) = resolve(module, &path, &modules)
                && &target != module
            {
                edges.insert((module.clone(), target));
            }
        }
    }
    let mut found = Vec::new();
    let parents: BTreeSet<ModPath> = modules
        .iter()
        .filter(|m| !m.is_empty())
        .map(|m| m[..m.len() - 1].to_vec())
        .collect();
    for parent in parents {
        let child_of = |m: &ModPath| -> Option<ModPath> {
            (m.len() > parent.len() && m.starts_with(&parent)).then(|| m[..=parent.len()].to_vec())
        };
        let mut graph: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
        let mut why: BTreeMap<(ModPath, ModPath), Vec<String>> = BTreeMap::new();
        for (from, to) in &edges {
            if let (Some(a), Some(b)) = (child_of(from), child_of(to))
                && a != b
            {
                graph.entry(a.clone()).or_default().insert(b.clone());
                why.entry((a, b)).or_default().push(format!(
                    "{} -> {}",
                    from.join("::"),
                    to.join("::")
                ));
            }
        }
        for component in strongly_connected(&graph) {
            let names: Vec<String> = component.iter().map(|m| m.join("::")).collect();
            let reasons: Vec<String> = why
                .iter()
                .filter(|((a, b), _)| component.contains(a) && component.contains(b))
                .flat_map(|(_, r)| r.clone())
                .collect();
            found.push(format!("{} ({})", names.join(", "), reasons.join("; ")));
        }
    }
    found
}

/// Every module file of the crate, by module path, without its comments and
/// test-only code; modules declared `#[cfg(test)]` are left out.
fn module_files(root: &Path) -> BTreeMap<ModPath, String> {
    let dir = root.parent().expect("a source folder");
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder)
            .expect("a source folder")
            .flatten()
        {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let module = module_path(dir, root, &path);
                let text = std::fs::read_to_string(&path).expect("a source file");
                files.insert(module, text);
            }
        }
    }
    let test_only: Vec<ModPath> = files
        .iter()
        .flat_map(|(module, text)| {
            test_modules(text).into_iter().map(move |name| {
                let mut path = module.clone();
                path.push(name);
                path
            })
        })
        .collect();
    files.retain(|module, _| !test_only.iter().any(|t| module.starts_with(t)));
    for text in files.values_mut() {
        *text = without_tests(&without_comments(text));
    }
    files
}

/// The module path of `file` in the crate rooted at `root` in `dir`.
fn module_path(dir: &Path, root: &Path, file: &Path) -> ModPath {
    if file == root {
        return Vec::new();
    }
    let relative: PathBuf = file.strip_prefix(dir).expect("inside").with_extension("");
    let mut parts: ModPath = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The names of the child modules `text` declares under `#[cfg(test)]`.
fn test_modules(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("#[cfg(test)]") {
        rest = &rest[at + "#[cfg(test)]".len()..];
        let declaration = rest.trim_start();
        let declaration = declaration
            .strip_prefix("pub(crate) ")
            .or_else(|| declaration.strip_prefix("pub(super) "))
            .or_else(|| declaration.strip_prefix("pub "))
            .unwrap_or(declaration);
        if let Some(after) = declaration.strip_prefix("mod ") {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if after[name.len()..].trim_start().starts_with(';') {
                names.push(name);
            }
        }
    }
    names
}

/// `text` without `//` comments (doc comments included).
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` up to its first inline `#[cfg(test)] mod ... {` (test modules sit
/// at the end of a file).
fn without_tests(text: &str) -> String {
    let mut end = text.len();
    let mut from = 0;
    while let Some(at) = text[from..].find("#[cfg(test)]") {
        let start = from + at;
        let after = text[start + "#[cfg(test)]".len()..].trim_start();
        if after.starts_with("mod ") && after.split('\n').next().is_some_and(|l| l.contains('{')) {
            end = start;
            break;
        }
        from = start + 1;
    }
    text[..end].to_owned()
}

/// Every path in `text` that starts at `crate`, `super` or `self`, with the
/// items of a `use ...::{a, b::c}` group each as a path of their own.
fn referenced_paths(text: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let bytes = text.as_bytes();
    let at = |i: usize, what: &[u8]| bytes[i..].starts_with(what);
    let mut index = 0;
    while index < bytes.len() {
        let starts_word = index == 0 || !is_ident(bytes[index - 1]);
        let head = [&b"crate::"[..], b"super::", b"self::"]
            .into_iter()
            .any(|h| at(index, h));
        if !(head && starts_word) {
            index += 1;
            continue;
        }
        // Only ASCII from here to `end`: slicing the text there is safe.
        let mut end = index;
        while end < bytes.len() && (is_ident(bytes[end]) || at(end, b"::")) {
            end += if at(end, b"::") { 2 } else { 1 };
        }
        let path: Vec<String> = text[index..end]
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if at(end, b"{")
            && let Some(close) = bytes[end..].iter().position(|&b| b == b'}')
        {
            for item in text[end + 1..end + close].split(',') {
                let first = item.trim().split("::").next().unwrap_or_default();
                if first
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                {
                    let mut full = path.clone();
                    full.push(first.to_owned());
                    paths.push(full);
                }
            }
        }
        paths.push(path);
        index = end.max(index + 1);
    }
    paths
}

fn is_ident(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// The module `path` (seen from `from`) lands in: the longest prefix of it
/// that is a module of the crate.
fn resolve(from: &ModPath, path: &[String], modules: &BTreeSet<ModPath>) -> Option<ModPath> {
    let (mut base, mut rest): (ModPath, &[String]) = match path.first()?.as_str() {
        "crate" => (Vec::new(), &path[1..]),
        "self" => (from.clone(), &path[1..]),
        "super" => (from.clone(), path),
        _ => return None,
    };
    while rest.first().is_some_and(|s| s == "super") {
        base.pop();
        rest = &rest[1..];
    }
    let mut best = base.clone();
    for segment in rest {
        base.push(segment.clone());
        if modules.contains(&base) {
            best = base.clone();
        } else {
            break;
        }
    }
    Some(best)
}

/// The components of `graph` with more than one node (Tarjan's algorithm).
fn strongly_connected(graph: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<BTreeSet<ModPath>> {
    struct State<'g> {
        graph: &'g BTreeMap<ModPath, BTreeSet<ModPath>>,
        index: BTreeMap<&'g ModPath, usize>,
        low: BTreeMap<&'g ModPath, usize>,
        stack: Vec<&'g ModPath>,
        on_stack: BTreeSet<&'g ModPath>,
        found: Vec<BTreeSet<ModPath>>,
    }
    fn visit<'g>(s: &mut State<'g>, node: &'g ModPath) {
        let n = s.index.len();
        s.index.insert(node, n);
        s.low.insert(node, n);
        s.stack.push(node);
        s.on_stack.insert(node);
        for next in s.graph.get(node).into_iter().flatten() {
            if !s.index.contains_key(next) {
                visit(s, next);
                let low = s.low[node].min(s.low[next]);
                s.low.insert(node, low);
            } else if s.on_stack.contains(next) {
                let low = s.low[node].min(s.index[next]);
                s.low.insert(node, low);
            }
        }
        if s.low[node] == s.index[node] {
            let mut component = BTreeSet::new();
            while let Some(top) = s.stack.pop() {
                s.on_stack.remove(top);
                component.insert(top.clone());
                if top == node {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node) {
            visit(&mut state, node);
        }
    }
    state.found
}

#[test]
fn a_cycle_between_siblings_is_found_and_a_parent_child_pair_is_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let src = dir.path();
    std::fs::write(
        src.join("lib.rs"),
        "mod a;\nmod b;\nmod c;\n#[cfg(test)]\nmod t;\nuse crate::a::X;\n",
    )
    .expect("lib");
    std::fs::write(src.join("a.rs"), "use crate::b::Y;\nmod inner;\n").expect("a");
    std::fs::create_dir(src.join("a")).expect("a/");
    std::fs::write(
        src.join("a/inner.rs"),
        "use super::super::a::Z; // use crate::c::W;\n",
    )
    .expect("inner");
    std::fs::write(src.join("b.rs"), "pub fn f() { crate::a::g(); }\n").expect("b");
    std::fs::write(
        src.join("c.rs"),
        "/// [`crate::a`]\nuse crate::{b::Q, a};\n#[cfg(test)]\nmod tests {\n use crate::a::T;\n}\n",
    )
    .expect("c");
    std::fs::write(src.join("t.rs"), "use crate::c::V;\n").expect("t");
    let cycles = sibling_cycles(&src.join("lib.rs"));
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    assert!(cycles[0].starts_with("a, b ("), "{cycles:?}");
    std::fs::write(src.join("b.rs"), "pub fn f() {}\n").expect("b");
    assert!(sibling_cycles(&src.join("lib.rs")).is_empty());
}
