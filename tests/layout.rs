//! The crate's shape: no import circle among its modules.
//!
//! Dependencies point one way (leaves, then policy, then configuration, then the
//! exchange, then the drivers), so a module that imports from a module that imports it
//! back holds a piece of code in the wrong file. This reads every `crate::…` path in
//! `src/` (test code aside: a test may reach anywhere) and fails on a circle, naming it.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The crate's top-level module a file belongs to (`src/exchange/users_flow.rs` is
/// `exchange`), or `None` for the crate root and for test-only files.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    let stem = file.file_stem()?.to_str()?;
    let test_only = name == "testing" || stem == "tests" || stem.ends_with("_tests");
    (name != "lib" && !test_only).then(|| name.to_owned())
}

/// The code of `text` before its `#[cfg(test)]` test module, if any.
fn without_tests(text: &str) -> &str {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.trim() == "#[cfg(test)]" && text[at + line.len()..].trim_start().starts_with("mod ")
        {
            return &text[..at];
        }
        at += line.len();
    }
    text
}

/// The top-level modules that the code of `text` names as `crate::<module>`. Comment
/// lines are not code: a doc link is no import.
fn imports(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| format!("{l}\n"))
        .collect();
    code.match_indices("crate::")
        .map(|(i, m)| &code[i + m.len()..])
        .map(|rest| {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            rest[..end].to_owned()
        })
        .filter(|m| !m.is_empty() && m.chars().next().unwrap().is_ascii_lowercase())
        .collect()
}

/// Each top-level module and the modules it imports from.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        let text = fs::read_to_string(&file).unwrap();
        let targets = imports(without_tests(&text));
        let entry = graph.entry(module.clone()).or_default();
        entry.extend(targets.into_iter().filter(|t| *t != module));
    }
    graph
}

/// A circle in `graph`, as the modules along it, if there is one.
fn find_circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.to_owned());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_imports_from_a_module_that_imports_it_back() {
    let graph = graph();
    assert!(graph.contains_key("exchange") && graph.contains_key("config"));
    assert!(
        graph["exchange"].contains("session"),
        "the reader sees imports"
    );
    if let Some(circle) = find_circle(&graph) {
        panic!("an import circle: {}", circle.join(" -> "));
    }
}

#[test]
fn a_circle_is_found_and_named() {
    let g = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (a, b) in edges {
            g.entry((*a).into()).or_default().insert((*b).into());
            g.entry((*b).into()).or_default();
        }
        g
    };
    assert_eq!(
        find_circle(&g(&[
            ("config", "guards"),
            ("guards", "headers"),
            ("guards", "config")
        ])),
        Some(vec!["config".into(), "guards".into(), "config".into()])
    );
    assert_eq!(
        find_circle(&g(&[("exchange", "session"), ("session", "keys")])),
        None
    );
    let code = "use crate::keys::{self, KeySet};\n/// [`crate::session`]\nfn f() { crate::users::is_handle(); }\n\
                #[cfg(test)]\nmod tests {\n    use crate::testing::config;\n}\n";
    assert_eq!(
        imports(without_tests(code)),
        BTreeSet::from(["keys".into(), "users".into()])
    );
}
