//! The published http-state cookie test cases (the `parser.json` of the IETF httpstate
//! working group, as the npm package `tough-cookie@2.0.0` ships it, installed by
//! `make setup` as `tough-cookie-ietf`), fed to keycard's `Cookie` splitter where they
//! apply: each case's expected `Cookie` header (the cookies a user agent sends back) is
//! rebuilt, and for every name in it the splitter must find exactly that name's values
//! and strip exactly that name's pieces.
//!
//! keycard's own two rules for the session cookie apply on top, and are the only
//! differences allowed: a value is read up to a comma, and a double-quoted value is
//! unwrapped.

use std::path::Path;

use keycard::http::cookie_header::{strip, values, Stripped};
use serde_json::Value;

fn cases() -> Vec<Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("node_modules/tough-cookie-ietf/test/ietf_data/parser.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run `make setup` (npm install) first",
            path.display()
        )
    });
    serde_json::from_str::<Vec<Value>>(&text).expect("parser.json is a list of cases")
}

/// `(name, value)` of the cookies a case expects to be sent, in order.
fn sent(case: &Value) -> Vec<(String, String)> {
    case["sent"]
        .as_array()
        .expect("every case lists what is sent")
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (s("name"), s("value"))
        })
        .collect()
}

/// keycard's reading of a value: up to a comma, SP and HTAB trimmed, quotes unwrapped.
fn as_read(value: &str) -> &str {
    let v = value
        .split(',')
        .next()
        .unwrap_or("")
        .trim_matches([' ', '\t']);
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

#[test]
fn the_splitter_agrees_with_the_published_cases() {
    let (mut checked, mut headers) = (0, 0);
    for case in cases() {
        let cookies = sent(&case);
        if cookies.is_empty() {
            continue;
        }
        headers += 1;
        let pair = |(n, v): &(String, String)| match n.is_empty() {
            true => v.clone(),
            false => format!("{n}={v}"),
        };
        let header: Vec<String> = cookies.iter().map(pair).collect();
        let header = header.join("; ");
        for (name, _) in cookies.iter().filter(|(n, _)| !n.is_empty()) {
            let want: Vec<&str> = cookies
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| as_read(v))
                .collect();
            let got: Vec<&str> = values(&header, name).collect();
            assert_eq!(
                got, want,
                "case {}: {header:?}, name {name:?}",
                case["test"]
            );

            // Stripping: exact when no cookie holds a comma (a comma is where keycard
            // also looks for a second, joined `Cookie` line).
            if cookies.iter().any(|(_, v)| v.contains(',')) {
                continue;
            }
            let rest: Vec<String> = cookies
                .iter()
                .filter(|(n, _)| n != name)
                .map(pair)
                .collect();
            let want = match rest.is_empty() {
                true => Stripped::Empty,
                false => Stripped::Rest(rest.join("; ")),
            };
            assert_eq!(
                strip(&header, name),
                want,
                "case {}: {header:?}",
                case["test"]
            );
            checked += 1;
        }
    }
    assert!(
        headers >= 100 && checked >= 100,
        "{headers} headers, {checked} checks"
    );
}
