//! `depends_on`: checking references and cycles, and the startup order.

use std::collections::{HashMap, VecDeque};

use serde_saphyr::Location;

use super::ModuleSpec;
use super::check::Checker;
use super::suggest::did_you_mean;

/// A checked entry, with the places needed for messages about it.
pub(crate) struct Declared {
    /// The module.
    pub spec: ModuleSpec,
    /// Where its name is written.
    pub name_at: Location,
    /// Where each of `spec.depends_on` is written.
    pub deps_at: Vec<Location>,
}

/// For each module, the indices (into `modules`) of the modules it depends on,
/// ignoring names not in `modules` and self-references. With duplicate names
/// the first declaration counts.
pub(crate) fn dependency_graph<'m>(modules: &[&'m ModuleSpec]) -> Vec<Vec<usize>> {
    let mut index: HashMap<&'m str, usize> = HashMap::new();
    for (i, module) in modules.iter().enumerate() {
        index.entry(module.name.as_str()).or_insert(i);
    }
    modules
        .iter()
        .enumerate()
        .map(|(i, module)| {
            module
                .depends_on
                .iter()
                .filter_map(|dep| index.get(dep.as_str()).copied())
                .filter(|&d| d != i)
                .collect()
        })
        .collect()
}

/// A stable topological order: repeatedly the earliest node whose dependencies
/// are all placed. Nodes left in a cycle follow in their original order.
pub(crate) fn stable_order(deps: &[Vec<usize>]) -> Vec<usize> {
    let mut placed = vec![false; deps.len()];
    let mut order = Vec::with_capacity(deps.len());
    while order.len() < deps.len() {
        let ready = (0..deps.len()).find(|&i| !placed[i] && deps[i].iter().all(|&d| placed[d]));
        let Some(next) = ready.or_else(|| placed.iter().position(|p| !p)) else {
            break;
        };
        placed[next] = true;
        order.push(next);
    }
    order
}

/// One cycle per group of mutually dependent nodes, each starting at the
/// group's earliest node, shortest first: `[a, b]` stands for `a -> b -> a`.
pub(crate) fn cycles(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let reach = reachability(deps);
    let mut reported = vec![false; deps.len()];
    let mut found = Vec::new();
    for start in 0..deps.len() {
        if reported[start] || !reach[start][start] {
            continue;
        }
        for (node, flag) in reported.iter_mut().enumerate() {
            *flag |= reach[start][node] && reach[node][start];
        }
        found.extend(shortest_cycle(deps, start));
    }
    found
}

/// `reach[i][j]`: a path of one or more edges leads from `i` to `j`.
fn reachability(deps: &[Vec<usize>]) -> Vec<Vec<bool>> {
    let n = deps.len();
    let mut reach = vec![vec![false; n]; n];
    for (row, targets) in reach.iter_mut().zip(deps) {
        for &target in targets {
            row[target] = true;
        }
    }
    for via in 0..n {
        let through = reach[via].clone();
        for row in reach.iter_mut().filter(|row| row[via]) {
            for (cell, &next) in row.iter_mut().zip(&through) {
                *cell |= next;
            }
        }
    }
    reach
}

/// The shortest path from `start` back to itself (breadth-first), without the
/// final return to `start`.
fn shortest_cycle(deps: &[Vec<usize>], start: usize) -> Option<Vec<usize>> {
    let mut parent: Vec<Option<usize>> = vec![None; deps.len()];
    let mut seen = vec![false; deps.len()];
    let mut queue = VecDeque::from([start]);
    seen[start] = true;
    while let Some(node) = queue.pop_front() {
        for &next in &deps[node] {
            if next == start {
                let mut path = vec![node];
                while let Some(p) = parent[path[path.len() - 1]] {
                    path.push(p);
                }
                path.reverse();
                return Some(path);
            }
            if !seen[next] {
                seen[next] = true;
                parent[next] = Some(node);
                queue.push_back(next);
            }
        }
    }
    None
}

/// Every `depends_on` names another declared module, enabled if the dependent
/// is, and enabled modules have no dependency cycle.
pub(crate) fn check_dependencies(c: &mut Checker, declared: &[Declared]) {
    let mut names: Vec<&str> = Vec::new();
    for module in declared {
        if !names.contains(&module.spec.name.as_str()) {
            names.push(&module.spec.name);
        }
    }
    for module in declared {
        for (dep, at) in module.spec.depends_on.iter().zip(&module.deps_at) {
            check_reference(c, module, dep, at, declared, &names);
        }
    }
    check_cycles(c, declared);
}

/// One `depends_on` entry of `module`.
fn check_reference(
    c: &mut Checker,
    module: &Declared,
    dep: &str,
    at: &serde_saphyr::Location,
    declared: &[Declared],
    names: &[&str],
) {
    let name = &module.spec.name;
    if dep == name {
        c.error(
            at,
            format!("module `{name}` depends on itself"),
            format!("remove `{name}` from its own `depends_on`"),
        );
        return;
    }
    match declared.iter().find(|d| d.spec.name == dep) {
        None => c.error(
            at,
            format!("module `{name}` depends on unknown module `{dep}`"),
            format!(
                "{}`depends_on` lists module names declared in this file: {}",
                did_you_mean(dep, names.iter().copied().filter(|n| n != name)),
                names.join(", ")
            ),
        ),
        Some(target) if module.spec.enabled && !target.spec.enabled => c.error(
            at,
            format!("module `{name}` depends on `{dep}`, which is disabled"),
            format!(
                "enable `{dep}` (`enabled: true`) or remove it from the `depends_on` of `{name}`"
            ),
        ),
        Some(_) => {}
    }
}

/// Enabled modules that (transitively) depend on each other.
fn check_cycles(c: &mut Checker, declared: &[Declared]) {
    let enabled: Vec<&Declared> = declared.iter().filter(|d| d.spec.enabled).collect();
    let specs: Vec<&ModuleSpec> = enabled.iter().map(|d| &d.spec).collect();
    for cycle in cycles(&dependency_graph(&specs)) {
        let first = enabled[cycle[0]];
        let second = &enabled[cycle[1 % cycle.len()]].spec.name;
        let shown: Vec<&str> = cycle
            .iter()
            .chain(std::iter::once(&cycle[0]))
            .map(|&i| enabled[i].spec.name.as_str())
            .collect();
        let at = first
            .spec
            .depends_on
            .iter()
            .position(|d| d == second)
            .map_or(first.name_at, |i| first.deps_at[i]);
        c.error(
            &at,
            format!("dependency cycle: {}", shown.join(" -> ")),
            "modules start after the modules they depend on, so a cycle can never start: remove one of these dependencies",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_stably() {
        // 0 depends on 2; 1 has no deps; 2 depends on 1.
        assert_eq!(stable_order(&[vec![2], vec![], vec![1]]), [1, 2, 0]);
        assert_eq!(stable_order(&[vec![], vec![], vec![]]), [0, 1, 2]);
        // 1 depends on 3, 3 on 0: 1 waits until 3 is placed, 2 goes before 3.
        assert_eq!(
            stable_order(&[vec![], vec![3], vec![], vec![0]]),
            [0, 2, 3, 1]
        );
    }

    #[test]
    fn finds_each_cycle_once() {
        // 0 -> 1 -> 2 -> 0, 3 -> 4 -> 3, 5 -> 0 (not in a cycle).
        let deps = [vec![1], vec![2], vec![0], vec![4], vec![3], vec![0]];
        assert_eq!(cycles(&deps), [vec![0, 1, 2], vec![3, 4]]);
        assert!(cycles(&[vec![1], vec![]]).is_empty());
    }

    #[test]
    fn cycle_order_survives_in_stable_order() {
        assert_eq!(stable_order(&[vec![1], vec![0], vec![]]), [2, 0, 1]);
    }
}
