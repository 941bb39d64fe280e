//! Where the origin is and how it is told about the session: `ORIGIN_URL` (its host
//! checked the way the runtime's URL parser reads it), and `SESSION_HEADER_FORMAT` with
//! `ORIGIN_SECRET`.

use super::vars::{err, ConfigError, Vars};
use super::*;

/// How `X-Session` is written (`SESSION_HEADER_FORMAT`).
#[derive(Debug, Clone)]
pub enum HeaderFormat {
    /// base64url of the data's JSON.
    Base64,
    /// A JWS signed HS256 under this key, `ORIGIN_SECRET` (`docs/origin.md`, "The `jwt`
    /// header format").
    Jwt(Secret),
}

/// The origin's scheme, host and port from `ORIGIN_URL`, such as `https://app:8443`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginBase(pub String);

/// Checks a registered name or IPv4 address the way the runtime's WHATWG URL parser
/// will read it (hand-checked: the `url` crate would add ~70 KB of wasm). Stricter than
/// WHATWG where it is ambiguous: a host whose last label is a number must be a plain
/// dotted quad, and punycode (`xn--`) labels are refused.
pub(super) fn check_host(host: &str) -> Result<(), String> {
    let labels: Vec<&str> = host.split('.').collect();
    if labels.iter().any(|l| l.is_empty())
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err("has an invalid host".into());
    }
    if labels
        .iter()
        .any(|l| l.len() >= 4 && l[..4].eq_ignore_ascii_case("xn--"))
    {
        return Err("has a punycode (xn--) host; use its IP address or another name".into());
    }
    let last = labels[labels.len() - 1];
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || (last.len() >= 2 && last[..2].eq_ignore_ascii_case("0x"));
    if numeric {
        // WHATWG parses such a host as IPv4: accept only an unambiguous dotted quad.
        let quad = labels.len() == 4
            && labels.iter().all(|l| {
                l.len() <= 3
                    && l.bytes().all(|b| b.is_ascii_digit())
                    && (l.len() == 1 || !l.starts_with('0'))
                    && l.parse::<u16>().is_ok_and(|n| n <= 255)
            });
        if !quad {
            return Err("has a host ending in a number that is not an IPv4 address".into());
        }
    }
    Ok(())
}

/// Checks an origin, `scheme://host[:port]` with an http(s) scheme and nothing after.
pub(crate) fn check_origin(text: &str) -> Result<(), String> {
    parse_origin_url(text).map(|_| ())
}

pub(super) fn parse_origin_url(text: &str) -> Result<OriginBase, String> {
    let (scheme, rest) = text.split_once("://").ok_or_else(|| {
        "must be an absolute http(s) URL such as https://app.internal:8443".to_string()
    })?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("must use http or https, not {scheme:?}"));
    }
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() {
        return Err("has no host".into());
    }
    if authority.contains(['/', '?', '#', '@', ' ', '\\']) {
        return Err(
            "must be only scheme, host and optional port (the request's path and query are kept)"
                .into(),
        );
    }
    // Split host and port; an IPv6 literal keeps its brackets.
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (v6, after) = inner
            .split_once(']')
            .ok_or("has an unclosed IPv6 bracket")?;
        if v6.is_empty()
            || !v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err("has an invalid IPv6 host".into());
        }
        match after {
            "" => (authority, None),
            p if p.starts_with(':') => (&authority[..authority.len() - p.len()], Some(&p[1..])),
            _ => return Err("has an invalid host or port".into()),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() {
            return Err(format!("has a bad port {p:?}"));
        }
    }
    if !host.starts_with('[') {
        check_host(host)?;
    }
    Ok(OriginBase(format!("{scheme}://{authority}")))
}

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    /// `ORIGIN_URL`.
    pub(super) fn origin_url(&self) -> Result<Option<OriginBase>, ConfigError> {
        self.get("ORIGIN_URL")
            .map(|u| parse_origin_url(&u).map_err(|p| err("ORIGIN_URL", p)))
            .transpose()
    }

    /// `SESSION_HEADER_FORMAT` with `ORIGIN_SECRET`, which must differ from every
    /// session secret in `session_secrets`.
    pub(super) fn header_format(
        &self,
        session_secrets: &[String],
    ) -> Result<HeaderFormat, ConfigError> {
        let origin_secret = match self.secret("ORIGIN_SECRET") {
            None => None,
            Some(s) => {
                let key = Secret::try_from(s.as_str())
                    .map_err(|e| err("ORIGIN_SECRET", e.to_string()))?;
                // The origin holds this key: it must not be able to sign session
                // cookies, now or with a secret still accepted for verification.
                // Compared after trimming, so a stray space cannot make two equal
                // secrets "different".
                if session_secrets.iter().any(|t| t == s.trim()) {
                    return Err(err(
                        "ORIGIN_SECRET",
                        "must differ from SESSION_SECRET and from every SESSION_SECRET_PREVIOUS entry: it is shared with the origin",
                    ));
                }
                Some(key)
            }
        };
        let jwt = self.choice(
            "SESSION_HEADER_FORMAT",
            false,
            &[("base64", false), ("jwt", true)],
        )?;
        match (jwt, origin_secret) {
            (false, _) => Ok(HeaderFormat::Base64),
            (true, Some(key)) => Ok(HeaderFormat::Jwt(key)),
            (true, None) => Err(err(
                "ORIGIN_SECRET",
                "is required when SESSION_HEADER_FORMAT=jwt",
            )),
        }
    }
}
