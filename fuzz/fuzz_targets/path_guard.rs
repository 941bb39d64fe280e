//! The path guard, `path_guard::Rules::check`, on any request path.
//!
//! Input: a byte that picks one of three rule sets and the case mode (bit 7), then the
//! path.
//!
//! Properties: nothing panics; `Ambiguous` only for a path holding `\`, NUL, or an
//! escape of `/`, `\`, NUL or `%`; and the one that matters: a path the guard lets
//! through for a visitor who is not signed in (`Open`) is served from a path outside
//! every required area by each origin modelled here, independently of the guard's own
//! code: (a) decode every escape once, resolve dot segments, collapse slashes; (b) the
//! same reading `\` as `/` (IIS); (c) `;params` cut from each segment first (Tomcat);
//! (d) decode twice; (e) cut at NUL after decoding.

#![no_main]

use keycard::path_guard::{Rules, Verdict};
use libfuzzer_sys::fuzz_target;

const SETS: [(&str, &str); 3] = [
    ("/admin, /api/", "/api/public/, /login"),
    ("/", "/static/, /login"),
    ("/account/, /.well-known/secret", "/account/login"),
];

fn list(text: &str) -> Vec<String> {
    text.split(',').map(|p| p.trim().to_owned()).collect()
}

/// Every `%XX` decoded once (invalid UTF-8 read lossily).
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hexval = |c: u8| char::from(c).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hexval(b[i + 1]), hexval(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Dot segments resolved, empty segments dropped.
fn served(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

fn covered(prefixes: &[String], path: &str, fold: bool) -> bool {
    let (path, fold_p) = match fold {
        true => (path.to_ascii_lowercase(), true),
        false => (path.to_owned(), false),
    };
    prefixes.iter().any(|p| {
        let p = p.trim_end_matches('/');
        let p = if fold_p { p.to_ascii_lowercase() } else { p.to_owned() };
        path == p || path.starts_with(&format!("{p}/"))
    })
}

fuzz_target!(|data: &[u8]| {
    let [pick, rest @ ..] = data else {
        return;
    };
    let Ok(raw) = std::str::from_utf8(rest) else {
        return;
    };
    let (require, public) = SETS[usize::from(*pick & 0x7f) % SETS.len()];
    let fold = pick & 0x80 != 0;
    let (require, public) = (list(require), list(public));
    let rules = Rules::new(require.clone(), public.clone(), fold);
    let verdict = rules.check(raw);

    if verdict == Verdict::Ambiguous {
        let lower = raw.to_ascii_lowercase();
        assert!(
            raw.contains(['\\', '\0'])
                || ["%2f", "%5c", "%00", "%25"].iter().any(|e| lower.contains(e)),
            "ambiguous without an ambiguous spelling: {raw:?}"
        );
    }
    if verdict != Verdict::Open {
        return;
    }
    let once = decode(raw);
    let models = [
        ("a", served(&once)),
        ("b", served(&once.replace('\\', "/"))),
        (
            "c",
            served(&decode(
                &raw.split('/')
                    .map(|s| s.split(';').next().unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join("/"),
            )),
        ),
        ("d", served(&decode(&once).replace('\\', "/"))),
        ("e", served(once.split('\0').next().unwrap_or(""))),
    ];
    for (model, path) in models {
        let required = covered(&require, &path, fold) && !covered(&public, &path, fold);
        assert!(
            !required,
            "{raw:?} was let through, but origin model {model} serves {path:?}, a required path"
        );
    }
});
