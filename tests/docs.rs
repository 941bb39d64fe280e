//! The docs against the code: every variable keycard reads is documented in
//! `docs/configuration.md`, every variable the docs name is one keycard reads, and every
//! link between the project's Markdown files leads to a file and a heading that exist.
//!
//! [`KNOWN`] is the list the configuration's own test holds to what `Config` reads, so a
//! new setting cannot land undocumented, and a renamed one cannot stay in the docs.
#![cfg(not(target_arch = "wasm32"))]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use keycard::config::names::{is_known, KNOWN, PATTERNS};

/// Names in the docs with keycard's prefixes that are not variables: the users' Durable
/// Object binding (a binding's name, not a var), and the misspellings the docs show as
/// what keycard warns about.
const NOT_VARIABLES: [&str; 3] = ["KEYCARD_USERS", "SESSION_IDLE_TIMOUT", "ORIGIN_ULR"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The user-facing Markdown: the README, CONTRIBUTING.md and every page of `docs/`.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md"), root().join("CONTRIBUTING.md")];
    let mut pages: Vec<PathBuf> = fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    files.extend(pages);
    files
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every word of the form `SESSION_…`, `KEYCARD_…` or `ORIGIN_…` (capitals, digits and
/// underscores, not ending in `_`): what reads as a variable's name.
fn variable_names(text: &str) -> BTreeSet<String> {
    let is_name_char = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_';
    text.split(|c: char| !is_name_char(c))
        .filter(|w| {
            ["SESSION_", "KEYCARD_", "ORIGIN_"]
                .iter()
                .any(|p| w.starts_with(p) && w.len() > p.len())
                && !w.ends_with('_')
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_variable_keycard_reads_has_a_row_in_the_configuration_page() {
    let page = read(&root().join("docs/configuration.md"));
    let rows: BTreeSet<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    let missing: Vec<&str> = KNOWN
        .iter()
        .copied()
        .filter(|n| !rows.contains(n))
        .collect();
    assert!(
        missing.is_empty(),
        "not in docs/configuration.md's tables: {missing:?}"
    );
    let unread: Vec<&str> = rows
        .iter()
        .copied()
        .filter(|n| variable_names(n).contains(*n) && !KNOWN.contains(n))
        .collect();
    assert!(
        unread.is_empty(),
        "rows for variables keycard does not read: {unread:?}"
    );
}

#[test]
fn every_variable_the_docs_name_is_one_keycard_reads() {
    let mut files = markdown_files();
    files.push(root().join("wrangler.toml"));
    files.push(root().join(".dev.vars.example"));
    let mut unknown = Vec::new();
    for file in &files {
        for name in variable_names(&read(file)) {
            if !is_known(&name, &PATTERNS) && !NOT_VARIABLES.contains(&name.as_str()) {
                unknown.push(format!("{}: {name}", file.display()));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "names keycard does not read: {unknown:#?}"
    );
}

/// A heading's anchor as GitHub makes it: lower case, spaces to `-`, and every
/// character but letters, digits, `-` and `_` dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_code = false;
    let mut found = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with('#') {
            found.insert(anchor(line.trim_start_matches('#')));
        }
    }
    found
}

/// The targets of the Markdown links in `text` (`[text](target)`), outside code blocks.
fn link_targets(text: &str) -> Vec<String> {
    let mut in_code = false;
    let mut targets = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        for (i, _) in line.match_indices("](") {
            let rest = &line[i + 2..];
            if let Some(end) = rest.find(')') {
                targets.push(rest[..end].to_owned());
            }
        }
    }
    targets
}

#[test]
fn every_link_between_the_docs_leads_somewhere() {
    let mut broken = Vec::new();
    for file in markdown_files() {
        let text = read(&file);
        for target in link_targets(&text) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let dest = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            if !dest.exists() {
                broken.push(format!("{}: {target} (no such file)", file.display()));
                continue;
            }
            if !fragment.is_empty() && !anchors(&read(&dest)).contains(fragment) {
                broken.push(format!("{}: {target} (no such heading)", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links: {broken:#?}");
}

#[test]
fn anchors_are_made_as_github_makes_them() {
    assert_eq!(
        anchor(" Stores, and what Workers KV's consistency means"),
        "stores-and-what-workers-kvs-consistency-means"
    );
    assert_eq!(anchor(" The `jwt` header format"), "the-jwt-header-format");
    assert_eq!(
        anchor(" Examples: PHP, Python and Node"),
        "examples-php-python-and-node"
    );
    assert_eq!(
        variable_names("`SESSION_` and SESSION_IDLE_TIMEOUT, KEYCARD_USERS."),
        BTreeSet::from(["SESSION_IDLE_TIMEOUT".into(), "KEYCARD_USERS".into()])
    );
}
