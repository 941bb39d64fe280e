//! Cross-origin request protection, as Go 1.25's `CrossOriginProtection` defines it.
//!
//! Browsers say where a request comes from in `Sec-Fetch-Site` (all current browsers)
//! or, failing that, in `Origin`. A request is refused when `Sec-Fetch-Site` is present
//! and is neither `same-origin` nor `none` (a typed URL or a bookmark), or when it is
//! absent and `Origin` is present but is not the request's own origin. A request with
//! neither header does not come from a browser, so no browser can be tricked into
//! sending it, and it passes.

use crate::http::headers::HeaderList;

/// Whether `method` is safe (`GET`, `HEAD`, `OPTIONS`): it only reads, so it needs no
/// cross-origin protection.
pub fn is_safe_method(method: &str) -> bool {
    ["GET", "HEAD", "OPTIONS"]
        .iter()
        .any(|m| method.eq_ignore_ascii_case(m))
}

/// Whether `method` is `GET` or `HEAD`: a page load, and a request that cannot carry
/// a body to the origin.
pub fn is_get_or_head(method: &str) -> bool {
    method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD")
}

/// What the request says about where it comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Provenance<'a> {
    /// `Sec-Fetch-Site`.
    pub fetch_site: Option<&'a str>,
    /// `Origin`.
    pub origin: Option<&'a str>,
}

impl<'a> Provenance<'a> {
    /// What the request's `Sec-Fetch-Site` and `Origin` say.
    pub fn of(h: &HeaderList<'a>) -> Provenance<'a> {
        Provenance {
            fetch_site: h.get("sec-fetch-site"),
            origin: h.get("origin"),
        }
    }
}

/// Whether a request from `from` to a URL whose origin is `own_origin`
/// (`scheme://host[:port]`, as the runtime serializes it) may go ahead.
pub fn allowed(from: Provenance<'_>, own_origin: &str) -> bool {
    match (from.fetch_site, from.origin) {
        (Some(site), _) => {
            site.eq_ignore_ascii_case("same-origin") || site.eq_ignore_ascii_case("none")
        }
        (None, Some(origin)) => origin.eq_ignore_ascii_case(own_origin),
        (None, None) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: &str = "https://app.example";

    fn from<'a>(fetch_site: Option<&'a str>, origin: Option<&'a str>) -> Provenance<'a> {
        Provenance { fetch_site, origin }
    }

    #[test]
    fn sec_fetch_site_decides_when_present() {
        assert!(allowed(from(Some("same-origin"), None), OWN));
        assert!(allowed(from(Some("none"), None), OWN));
        // Regression: only `cross-site` was refused; `same-site` (a sibling subdomain)
        // could sign a user out.
        for site in ["same-site", "cross-site", "bogus", ""] {
            assert!(!allowed(from(Some(site), Some(OWN)), OWN), "{site}");
        }
    }

    #[test]
    fn origin_decides_when_sec_fetch_site_is_absent() {
        assert!(allowed(from(None, Some(OWN)), OWN));
        for origin in [
            "https://evil.example",
            "null",
            "http://app.example",
            "https://app.example:8443",
        ] {
            assert!(!allowed(from(None, Some(origin)), OWN), "{origin}");
        }
        assert!(allowed(from(None, None), OWN), "not a browser");
    }
}
