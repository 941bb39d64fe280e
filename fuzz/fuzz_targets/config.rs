//! Configuration: `Config::from_lookup` with fuzzed values for every variable, and
//! `config::parse_duration`.
//!
//! Input: records separated by `\0`. A record's first char picks the variable
//! (`keycard_fuzz::var_of`: `D` for `SESSION_SECRET`, `E` for `SESSION_SECRET_PREVIOUS`,
//! and so on, in the order of `VARS`), the rest is its value; the last record
//! for a variable wins.
//!
//! Properties: nothing panics; durations are 1 s to 10 years and print back; an error
//! names a known variable and never echoes a secret; an accepted config holds every
//! configuration rule of `docs/configuration.md` (timeouts in order, `__Host-` and `__Secure-` prefixes, `SameSite=None`
//! needs `Secure`, `jwt` needs `ORIGIN_SECRET`), its `Debug` shows no secret, and a
//! session created under it reads back from the cookie it issues.

#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;

use keycard::config::{self, names, Config, SameSite};
use keycard::session::Changes;
use keycard::exchange::endpoints::{self, Endpoint};
use keycard::session::{self, Loaded};
use keycard_fuzz::{read_back, var_of, Counter, SECRET_VARS, T0, VARS};
use libfuzzer_sys::fuzz_target;

const TEN_YEARS: u64 = 10 * 365 * 24 * 3600;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut env: HashMap<&'static str, &str> = HashMap::new();
    for rec in text.split('\0') {
        let mut chars = rec.chars();
        let Some(c) = chars.next() else { continue };
        let var = var_of(c);
        let value = chars.as_str();
        env.insert(var, value);
        check_duration(value);
    }

    let asked = RefCell::new(Vec::new());
    let result = Config::from_lookup(|name| {
        asked.borrow_mut().push(name.to_owned());
        env.get(name).map(|v| (*v).to_owned())
    });
    // A provider named in KEYCARD_OIDC_PROVIDERS brings its own variables
    // (KEYCARD_OIDC_<NAME>_ISSUER, ...), which the fuzzer does not set.
    for name in asked.borrow().iter() {
        assert!(
            VARS.contains(&name.as_str()) || names::is_known(name, &names::PATTERNS),
            "{name} is read but not in the fuzzer's list"
        );
    }

    let cfg = match result {
        Err(e) => {
            assert!(
                VARS.contains(&e.var),
                "error names an unknown variable {}",
                e.var
            );
            // The same config with every secret's letters and digits rotated (same
            // length, same commas and spaces, same equalities) must fail the same way
            // with the same words: an error that echoed a secret would differ.
            let rotated = Config::from_lookup(|name| {
                env.get(name).map(|v| {
                    if SECRET_VARS.contains(&name) {
                        rot(v)
                    } else {
                        (*v).to_owned()
                    }
                })
            });
            assert_eq!(
                Err(e),
                rotated.map(|_| ()),
                "a config error depends on a secret's text"
            );
            return;
        }
        Ok(cfg) => cfg,
    };
    // Accepted secrets are 32 bytes or more: none may show in Debug (unless another,
    // non-secret variable holds the same text).
    let debug = format!("{cfg:?}");
    for s in SECRET_VARS
        .iter()
        .filter_map(|v| env.get(v))
        .flat_map(|v| v.split(','))
        .map(str::trim)
    {
        if s.len() >= 32
            && env
                .iter()
                .all(|(k, v)| SECRET_VARS.contains(k) || !v.contains(s))
        {
            assert!(!debug.contains(s), "Config's Debug shows a secret");
        }
    }
    check_rules(&cfg);
    check_session_cycle(&cfg);
});

/// ROT13 on ASCII letters and ROT5 on digits; everything else unchanged.
fn rot(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' => char::from(b'a' + (c as u8 - b'a' + 13) % 26),
            'A'..='Z' => char::from(b'A' + (c as u8 - b'A' + 13) % 26),
            '0'..='9' => char::from(b'0' + (c as u8 - b'0' + 5) % 10),
            _ => c,
        })
        .collect()
}

fn check_duration(text: &str) {
    if let Ok(secs) = config::parse_duration(text) {
        assert!((1..=TEN_YEARS).contains(&secs), "{text:?} -> {secs}");
        assert_eq!(config::parse_duration(&secs.to_string()), Ok(secs));
    }
}

fn check_rules(cfg: &Config) {
    for t in [cfg.idle_timeout, cfg.absolute_timeout, cfg.refresh_after] {
        assert!((1..=TEN_YEARS).contains(&t));
    }
    assert!(cfg.refresh_after < cfg.idle_timeout);
    let c = &cfg.cookie;
    assert!(!c.name.is_empty() && c.name.len() <= 64);
    let lower = c.name.to_ascii_lowercase();
    if lower.starts_with("__host-") {
        assert!(
            c.secure && c.domain.is_none() && c.path == "/",
            "__Host- rules broken: {c:?}"
        );
    }
    if lower.starts_with("__secure-") {
        assert!(c.secure);
    }
    if c.same_site == SameSite::None {
        assert!(c.secure, "SameSite=None without Secure");
    }
    // `jwt` needs `ORIGIN_SECRET`: `HeaderFormat::Jwt` carries the key, by type.
    assert!(c.path.starts_with('/'));
    assert!(
        cfg.path_prefix.starts_with('/')
            && cfg.path_prefix.ends_with('/')
            && cfg.path_prefix.len() >= 3
    );
    if let Some(base) = &cfg.origin_url {
        // What the edge fetches: the base with the request's path and query.
        let target = keycard::http::forward::origin_url(Some(&base.0), "https://public.example/a/b?c=d");
        let u = url::Url::parse(&target)
            .unwrap_or_else(|e| panic!("ORIGIN_URL {base:?} gives a bad URL: {e}"));
        assert!(matches!(u.scheme(), "http" | "https") && u.host().is_some());
        assert_eq!(
            (u.path(), u.query()),
            ("/a/b", Some("c=d")),
            "ORIGIN_URL {base:?} changes the path"
        );
    }
    assert_eq!(
        endpoints::route(cfg, "GET", &format!("{}health", cfg.path_prefix), None),
        Some(Endpoint::Health)
    );
}

/// Creates a session under `cfg` and reads it back like the next request would.
fn check_session_cycle(cfg: &Config) {
    let mut set = serde_json::Map::new();
    set.insert("user".into(), "ada".into());
    let changes = Changes {
        set: Some(set),
        ..Changes::default()
    };
    let out = session::finish(
        cfg,
        Loaded::None,
        changes,
        T0,
        &mut Counter(1),
        true,
    )
    .expect("a small session fits under any accepted config");
    let s = out.session.expect("Set creates a session");
    let set_cookie = out.set_cookie.expect("a new session gets a cookie");
    let kv = out
        .kv_put
        .as_ref()
        .map(|p| (p.key.as_str(), p.value.as_str()));
    let back = read_back(cfg, &set_cookie, kv, T0).expect("a new session reads back");
    assert!(back.sid == s.sid);
    assert_eq!(back.data(), s.data());
    let fwd = keycard::origin::headers::forward_headers(
        cfg,
        &Loaded::Valid(back),
        T0,
        "GET",
        "https://example.com/a?b",
    );
    assert!(fwd.session.is_some());
    assert!(read_back(cfg, &session::clearing_cookie(cfg), None, T0).is_none());
}
