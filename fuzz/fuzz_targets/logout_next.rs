//! The logout redirect check: `endpoints::safe_next`, and the same through
//! `endpoints::route` with the text as the raw query of `POST {prefix}logout`.
//!
//! Input: the text.
//!
//! Properties: nothing panics; whatever is accepted is returned unchanged, starts with a
//! single `/` (never `//` or `/\`), has no backslash, control character or whitespace,
//! in its raw form and percent-decoded once and twice; and a browser resolving it against
//! `https://keycard.example/` (WHATWG URL rules, the `url` crate) stays on that origin.

#![no_main]

use std::sync::OnceLock;

use keycard::config::Config;
use keycard::exchange::endpoints::{self, Endpoint};
use libfuzzer_sys::fuzz_target;
use url::Url;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(p) = endpoints::safe_next(text) {
        assert_eq!(p, text, "safe_next changed what it accepted");
        check(&p);
    }
    static CFG: OnceLock<Config> = OnceLock::new();
    let cfg = CFG.get_or_init(|| keycard_fuzz::configs()[0].clone());
    for query in [text.to_owned(), format!("next={text}")] {
        match endpoints::route(cfg, "POST", "/.keycard/logout", Some(&query)) {
            Some(Endpoint::Logout { next: Some(p) }) => check(&p),
            Some(Endpoint::Logout { next: None }) => {}
            other => panic!("logout routed to {other:?}"),
        }
    }
});

fn check(p: &str) {
    let decoded = decode(p);
    let twice = decoded.as_deref().map(decode);
    for form in [
        Some(p),
        decoded.as_deref(),
        twice.as_ref().and_then(|t| t.as_deref()),
    ]
    .into_iter()
    .flatten()
    {
        assert!(
            form.starts_with('/'),
            "accepted {p:?}: {form:?} does not start with /"
        );
        assert!(
            !form.starts_with("//"),
            "accepted {p:?}: {form:?} is scheme-relative"
        );
        assert!(
            !form.contains('\\'),
            "accepted {p:?}: {form:?} has a backslash"
        );
        assert!(
            !form.chars().any(|c| c.is_control() || c.is_whitespace()),
            "accepted {p:?}: {form:?} has a control character or whitespace"
        );
    }
    let base = Url::parse("https://keycard.example/app/page").unwrap();
    let target = base
        .join(p)
        .unwrap_or_else(|e| panic!("accepted {p:?}, which does not resolve: {e}"));
    assert_eq!(
        target.origin(),
        base.origin(),
        "accepted {p:?}, which leaves the site: {target}"
    );
}

fn decode(s: &str) -> Option<String> {
    String::from_utf8(percent_encoding::percent_decode_str(s).collect()).ok()
}
