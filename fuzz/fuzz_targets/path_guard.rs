//! The path guard, `path_guard::Rules::check`, on any request path.
//!
//! Input: a byte that picks one of three rule sets and the case mode of the public
//! prefixes (bit 7), then the path.
//!
//! Properties: nothing panics; `Ambiguous` only for a path holding `\`, NUL, or an
//! escape of `/`, `\`, NUL or `%`; and the one that matters: a path the guard lets
//! through for a visitor who is not signed in (`Open`) is served from a path outside
//! every required area by each origin modelled here, independently of the guard's own
//! code. Routers on segments: (a) decode every escape once, resolve dot segments,
//! collapse slashes; (b) the same reading `\` as `/` (IIS); (c) `;params` cut from each
//! segment first (Tomcat); (d) decode twice; (e) cut at NUL after decoding; (f) (a)
//! without regard to case (Express, koa-router, ASP.NET Core). (g) nginx: (a) with the
//! trailing slash kept, a required prefix a raw prefix (`location /admin`). PHP front
//! controllers, routing on `PATH_INFO`, the rest of (a) after (h) the first or (i) the
//! last segment ending in `.php` (`php -S`, and nginx's greedy
//! `fastcgi_split_path_info`), unless a public prefix covers the script. (j) CodeIgniter:
//! a query that starts with `/`, up to its first `&`, decoded, as the path. Every model
//! splits the query off at the first `?`. A public prefix is read on segments in every
//! model, in exact case unless bit 7 says otherwise: a model that knew less of the
//! public areas would require less.

#![no_main]

use keycard::http::path_guard::{Rules, Verdict};
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

/// Whether a prefix covers `path` on a segment boundary.
fn covered(prefixes: &[String], path: &str, fold: bool) -> bool {
    let path = if fold { path.to_ascii_lowercase() } else { path.to_owned() };
    prefixes.iter().any(|p| {
        let p = p.trim_end_matches('/');
        let p = if fold { p.to_ascii_lowercase() } else { p.to_owned() };
        path == p || path.starts_with(&format!("{p}/"))
    })
}

/// Whether a public prefix covers `path`: on a segment boundary or before `;params`
/// (`/login;jsessionid=…` is the login page).
fn public_covers(prefixes: &[String], path: &str, fold: bool) -> bool {
    covered(prefixes, path.split(';').next().unwrap_or(""), fold)
}

/// Whether `path` starts with a prefix, byte for byte (nginx's prefix `location`).
fn starts(prefixes: &[String], path: &str) -> bool {
    prefixes.iter().any(|p| path.starts_with(p.as_str()))
}

/// nginx's normalised URI: dot segments resolved, slashes merged, a trailing slash kept.
fn nginx_uri(decoded: &str) -> String {
    let path = served(decoded);
    match decoded.ends_with('/') && path != "/" {
        true => format!("{path}/"),
        false => path,
    }
}

/// `PATH_INFO` of the served `path`: the rest after the first (`last: false`) or the
/// last segment ending in `.php`, when there is a rest.
fn path_info(path: &str, last: bool) -> Option<String> {
    let segments: Vec<&str> = path.split('/').collect();
    let mut scripts = (0..segments.len()).filter(|&i| segments[i].ends_with(".php"));
    let i = match last {
        true => scripts.next_back()?,
        false => scripts.next()?,
    };
    (i + 1 < segments.len()).then(|| format!("/{}", segments[i + 1..].join("/")))
}

/// How a model's router matches a required prefix.
#[derive(Clone, Copy)]
enum Routes {
    /// On segment boundaries, in the case of the public prefixes.
    Segments,
    /// On segment boundaries, without regard to case.
    AnyCase,
    /// As a raw prefix, in exact case.
    Raw,
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
    // Servers split the query off at the first `?` before they read the path.
    let (path_part, query) = raw.split_once('?').unwrap_or((raw, ""));
    let raw = path_part;
    let once = decode(raw);
    let plain = served(&once);
    let mut models = vec![
        ("a", plain.clone(), Routes::Segments),
        ("b", served(&once.replace('\\', "/")), Routes::Segments),
        (
            "c",
            served(&decode(
                &raw.split('/')
                    .map(|s| s.split(';').next().unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join("/"),
            )),
            Routes::Segments,
        ),
        ("d", served(&decode(&once).replace('\\', "/")), Routes::Segments),
        ("e", served(once.split('\0').next().unwrap_or("")), Routes::Segments),
        ("f", plain.clone(), Routes::AnyCase),
        ("g", nginx_uri(&once), Routes::Raw),
    ];
    // A script below a public prefix is the public area's, whatever follows it.
    if !public_covers(&public, &plain, fold) {
        for (model, last) in [("h", false), ("i", true)] {
            if let Some(info) = path_info(&plain, last) {
                models.push((model, info, Routes::Segments));
            }
        }
    }
    if query.starts_with('/') {
        let routed = query.split('&').next().unwrap_or("");
        models.push(("j", served(&decode(routed)), Routes::Segments));
    }
    for (model, path, routes) in models {
        let routed = match routes {
            Routes::Segments => covered(&require, &path, fold),
            Routes::AnyCase => covered(&require, &path, true),
            Routes::Raw => starts(&require, &path),
        };
        let required = routed && !public_covers(&public, &path, fold);
        assert!(
            !required,
            "{raw:?} was let through, but origin model {model} serves {path:?}, a required path"
        );
    }
});
