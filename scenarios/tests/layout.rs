//! The code's shape, checked: small files, no import circle between the scenarios crate's
//! modules, and the number of requirements written nowhere but in the catalog itself.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a source file under the checked directories may be.
const MAX_LINES: usize = 600;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `text` without `//` comments (line and doc comments; string contents are kept).
fn code_of(text: &str) -> String {
    text.lines()
        .map(|line| {
            let trimmed = line.trim_start();
            if trimmed.starts_with("//") { "" } else { line }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn no_file_in_scenarios_or_the_runtimes_is_over_600_lines() {
    let mut long = Vec::new();
    for dir in ["scenarios/src", "harness/src/runtime"] {
        for path in rust_files(&repo().join(dir)) {
            let lines = std::fs::read_to_string(&path)
                .expect("a source file")
                .lines()
                .count();
            if lines > MAX_LINES {
                long.push(format!("{} ({lines} lines)", path.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines (split the file by what its parts do):\n{}",
        long.join("\n")
    );
}

/// The top-level modules of `crate::…` paths in `code`, `use crate::{a, b::c}` groups included.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(leading_ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            found.insert(leading_ident(&item));
        } else {
            found.insert(leading_ident(rest));
        }
    }
    found.remove("");
    found
}

fn leading_ident(text: &str) -> String {
    text.trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Module → the crate's other modules it uses; `#[macro_export]` macros count as their module.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut code_of_module: BTreeMap<String, String> = BTreeMap::new();
    for path in rust_files(src) {
        let relative = path.strip_prefix(src).expect("under src");
        let first = relative.components().next().expect("a path");
        let name = Path::new(first.as_os_str())
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a UTF-8 file name")
            .to_owned();
        if ["lib", "main"].contains(&name.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("a source file");
        code_of_module
            .entry(name)
            .or_default()
            .push_str(&code_of(&text));
    }
    let mut macro_home = BTreeMap::new();
    for (module, code) in &code_of_module {
        for (at, _) in code.match_indices("macro_rules!") {
            macro_home.insert(
                leading_ident(&code[at + "macro_rules!".len()..]),
                module.clone(),
            );
        }
    }
    code_of_module
        .iter()
        .map(|(module, code)| {
            let uses = crate_paths(code)
                .into_iter()
                .map(|name| macro_home.get(&name).cloned().unwrap_or(name))
                .filter(|name| name != module && code_of_module.contains_key(name))
                .collect();
            (module.clone(), uses)
        })
        .collect()
}

/// A circle of modules in `graph`, if any (depth-first search for a back edge).
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut circle = path[start..].to_vec();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_scenarios_modules_import_each_other_without_a_circle() {
    let graph = module_graph(&repo().join("scenarios/src"));
    assert!(graph.len() > 5, "found the modules: {graph:?}");
    if let Some(circle) = find_circle(&graph) {
        panic!(
            "import circle in scenarios/src: {} (move what both need into a module below both)",
            circle.join(" → ")
        );
    }
}

#[test]
fn the_circle_finder_finds_a_circle_and_group_imports() {
    let code = "use crate::{a::X, b::{c, d}, ensure};\nfn f() { crate::c::g(); }";
    let found: Vec<String> = crate_paths(code).into_iter().collect();
    assert_eq!(found, ["a", "b", "c", "ensure"]);
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", &["b"][..]),
        ("b", &["c"][..]),
        ("c", &["a"][..]),
        ("d", &[][..]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.iter().map(|s| s.to_string()).collect()))
    .collect();
    assert_eq!(find_circle(&graph).expect("a circle"), ["a", "b", "c", "a"]);
}

#[test]
fn the_number_of_requirements_is_written_nowhere_but_in_the_catalog() {
    let count = scenarios::catalog::CATALOG.len().to_string();
    let mut found = Vec::new();
    for dir in ["scenarios/src", "harness/src"] {
        for path in rust_files(&repo().join(dir)) {
            let code = code_of(&std::fs::read_to_string(&path).expect("a source file"));
            for (n, line) in code.lines().enumerate() {
                let bytes = line.as_bytes();
                for (at, _) in line.match_indices(&count) {
                    let before = at.checked_sub(1).map(|i| bytes[i]);
                    let after = bytes.get(at + count.len()).copied();
                    let part_of_more = |b: Option<u8>| {
                        b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
                    };
                    // NB: `Ipv4Addr::new(172, 18, 0, 1)` is an address, not a count.
                    let digit = |c: char| c.is_ascii_digit();
                    let in_numbers = line[..at]
                        .strip_suffix(", ")
                        .is_some_and(|head| head.ends_with(digit))
                        || line[at + count.len()..]
                            .strip_prefix(", ")
                            .is_some_and(|rest| rest.starts_with(digit));
                    if !part_of_more(before) && !part_of_more(after) && !in_numbers {
                        found.push(format!("{}:{}: {line}", path.display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the number of requirements ({count}) written out (use CATALOG.len()):\n{}",
        found.join("\n")
    );
}
