//! The edge's own endpoints under `KEYCARD_PATH_PREFIX`. They are never
//! forwarded to the origin.

use serde_json::json;

use crate::config::Config;
use crate::http::{cookie_header, cross_origin};
use crate::session::{Loaded, SessionState};

/// An endpoint request, as routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET health`.
    Health,
    /// `POST logout`, with the validated `next` path if one was given.
    Logout { next: Option<String> },
    /// `GET session` (only with `KEYCARD_INSPECT=true`).
    Inspect,
    /// `GET` the inspector page or one of its static files (only with inspect on):
    /// the path below the prefix, empty for the page itself.
    InspectorAsset(String),
    /// `GET sessions`: the signed-in user's sessions (only with `SESSION_USERS_BINDING`).
    Sessions,
    /// `POST sessions/revoke?id=<handle>`: end one of them; `None` when `id` is not a
    /// handle.
    RevokeSession(Option<String>),
    /// The prefix without its trailing slash: redirect (308) to the prefix, so that
    /// the inspector's relative links resolve (only with inspect on).
    AddSlash,
    /// `GET login` (with sign-in configured): start a sign-in.
    Login(Login),
    /// `GET callback` (with sign-in configured): the provider sends the browser back;
    /// the raw query.
    Callback(String),
    /// `POST dbsc/register` (with `KEYCARD_DEVICE_BOUND=on`): a device binds itself.
    DeviceRegister,
    /// `POST dbsc/refresh` (with `KEYCARD_DEVICE_BOUND=on`): a bound device renews its
    /// short-lived cookie.
    DeviceRefresh,
    /// A known endpoint with the wrong method; the allowed method.
    MethodNotAllowed(&'static str),
    /// Anything else under the prefix.
    NotFound,
}

/// A sign-in as `GET {prefix}login` asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// Where to go once signed in: a same-site path, else `/`.
    pub next: String,
    /// The provider named, if any.
    pub provider: Option<String>,
    /// A `prompt` of `login` or `select_account`, for signing in as someone else; it
    /// overrides `KEYCARD_OIDC_PROMPT`.
    pub prompt: Option<&'static str>,
}

/// Routes a request. Returns `None` when the path is not under the prefix (forward
/// it). `path` is the URL path without the query; `query` the raw query, if any.
pub fn route(cfg: &Config, method: &str, path: &str, query: Option<&str>) -> Option<Endpoint> {
    let get = cross_origin::is_get_or_head(method);
    if path == &cfg.path_prefix[..cfg.path_prefix.len() - 1] {
        return Some(if cfg.inspect && get {
            Endpoint::AddSlash
        } else {
            Endpoint::NotFound
        });
    }
    let rest = path.strip_prefix(cfg.path_prefix.as_str())?;
    Some(match rest {
        "health" if get => Endpoint::Health,
        "health" => Endpoint::MethodNotAllowed("GET"),
        "logout" if method.eq_ignore_ascii_case("POST") => Endpoint::Logout {
            next: query
                .and_then(|q| param(q, "next"))
                .and_then(|n| safe_next(&n))
                .map(|n| location(&n)),
        },
        "logout" => Endpoint::MethodNotAllowed("POST"),
        "session" if !cfg.inspect => Endpoint::NotFound,
        "session" if get => Endpoint::Inspect,
        "session" => Endpoint::MethodNotAllowed("GET"),
        "sessions" if get => Endpoint::Sessions,
        "sessions" => Endpoint::MethodNotAllowed("GET"),
        "sessions/revoke" if method.eq_ignore_ascii_case("POST") => Endpoint::RevokeSession(
            query
                .and_then(|q| param(q, "id"))
                .filter(|h| crate::crypto::keys::is_handle(h)),
        ),
        "sessions/revoke" => Endpoint::MethodNotAllowed("POST"),
        "dbsc/register" | "dbsc/refresh" if cfg.device_bound.is_none() => Endpoint::NotFound,
        "dbsc/register" if method.eq_ignore_ascii_case("POST") => Endpoint::DeviceRegister,
        "dbsc/refresh" if method.eq_ignore_ascii_case("POST") => Endpoint::DeviceRefresh,
        "dbsc/register" | "dbsc/refresh" => Endpoint::MethodNotAllowed("POST"),
        "login" | "callback" if cfg.sign_in.is_none() => Endpoint::NotFound,
        "login" if get => Endpoint::Login(Login {
            next: query
                .and_then(|q| param(q, "next"))
                .and_then(|n| safe_target(&n))
                .unwrap_or_else(|| "/".to_owned()),
            provider: query.and_then(|q| param(q, "provider")),
            prompt: query
                .and_then(|q| param(q, "prompt"))
                .and_then(|p| match p.as_str() {
                    "login" => Some("login"),
                    "select_account" => Some("select_account"),
                    _ => None,
                }),
        }),
        "callback" if get => Endpoint::Callback(query.unwrap_or("").to_owned()),
        "login" | "callback" => Endpoint::MethodNotAllowed("GET"),
        asset if cfg.inspect && get && is_asset_name(asset) => {
            Endpoint::InspectorAsset(asset.to_owned())
        }
        _ => Endpoint::NotFound,
    })
}

fn is_asset_name(s: &str) -> bool {
    s.is_empty()
        || (s.len() < 64
            && !s.starts_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_'))
}

/// The first value of `name` in a query, form-decoded.
pub(super) fn param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Accepts `next` only as a same-site relative path: it must start with a single `/`,
/// and neither it nor its percent-decoded form may start with `//` or `/\`, contain a
/// backslash, a control character or whitespace. Returns the path to redirect to.
pub fn safe_next(next: &str) -> Option<String> {
    fn ok(p: &str) -> bool {
        p.starts_with('/')
            && !p.starts_with("//")
            && !p.contains('\\')
            && !p.chars().any(|c| c.is_control() || c.is_whitespace())
            && p.len() <= 2048
    }
    let decoded: String = percent_decode(next)?;
    let twice: String = percent_decode(&decoded)?;
    (ok(next) && ok(&decoded) && ok(&twice)).then(|| next.to_owned())
}

/// The longest `next` a sign-in keeps: it travels in the sign-in's cookie, and a page
/// that opens many sign-ins with long ones must not fill the browser's cookies.
pub const MAX_TARGET: usize = 512;

/// Accepts a sign-in's `next` as a browser sends a path: a request target, already
/// percent-encoded, that keycard redirects to as it is. It must be printable ASCII, at
/// most [`MAX_TARGET`] bytes, start with a single `/`, and neither it nor its decoded
/// forms may start with `//` or `/\` or hold a backslash.
pub fn safe_target(next: &str) -> Option<String> {
    fn local(p: &str) -> bool {
        p.starts_with('/') && !p.starts_with("//") && !p.contains('\\')
    }
    let raw_ok = next.len() <= MAX_TARGET && next.bytes().all(|b| b.is_ascii_graphic());
    let decoded = percent_decode(next)?;
    let twice = percent_decode(&decoded)?;
    (raw_ok && local(next) && local(&decoded) && local(&twice)).then(|| next.to_owned())
}

/// What a `Location` may not hold as it is: controls, space, non-ASCII (always
/// encoded) and the characters that are not allowed or mean something else in a URL.
/// `%` and `+` are encoded too, so the browser goes to exactly the decoded `next`, not
/// to a second decoding of it. `#` stays: a fragment cannot leave the page's origin.
const LOCATION: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'%')
    .add(b'+')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// The `Location` for a validated, form-decoded `next`: percent-encoded again, so that
/// it is ASCII and means what was decoded.
fn location(next: &str) -> String {
    percent_encoding::utf8_percent_encode(next, LOCATION).to_string()
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(s).collect();
    String::from_utf8(bytes).ok()
}

/// The `health` body.
pub fn health_json(cfg: &Config, kv_available: bool, users_available: bool) -> String {
    json!({
        "status": "ok",
        "store": cfg.store.as_str(),
        "kv": kv_available,
        "users": users_available,
        "version": crate::VERSION,
        "warnings": cfg.unknown.iter().map(|u| json!({ "var": u.name, "problem": u.problem() })).collect::<Vec<_>>(),
    })
    .to_string()
}

/// The `session` (inspect) body: the decoded session, status, expiry, store and cookie
/// size. It is only served with `KEYCARD_INSPECT=true`, to the holder of the cookie.
/// What the inspector shows of the request's cookies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CookieView {
    /// The session cookie's size (`name=value`), 0 without one.
    pub len: usize,
    /// The values of the short-lived cookies of device-bound sessions.
    pub bound: Vec<String>,
}

impl CookieView {
    /// What the request's `Cookie` header holds for the inspector.
    pub fn of(cfg: &Config, header: Option<&str>) -> CookieView {
        let Some(h) = header else {
            return CookieView::default();
        };
        let name = &cfg.cookie.name;
        CookieView {
            len: cookie_header::values(h, name)
                .next()
                .map_or(0, |v| v.len() + name.len() + 1),
            bound: crate::session::short_cookies(cfg, Some(h)),
        }
    }
}

pub fn inspect_json(cfg: &Config, loaded: &Loaded, cookies: &CookieView, now: u64) -> String {
    let s: Option<&SessionState> = loaded.session();
    let bound = s.and_then(|s| s.bound.as_ref().map(|b| (s, b)));
    // The latest valid short-lived cookie's expiry (a bound session read as valid has one).
    let bound_expires = bound.and_then(|(s, b)| {
        cookies
            .bound
            .iter()
            .filter_map(|v| {
                crate::dbsc::short_cookie::expiry(&cfg.keys, v, &s.sid, &b.thumbprint, now)
            })
            .max()
    });
    json!({
        "status": loaded.status().as_str(),
        "now": now,
        "store": cfg.store.as_str(),
        "location": s.map(|s| s.location.as_str()),
        "data": s.map(|s| serde_json::Value::Object(s.data())),
        "handle": s.map(|s| cfg.keys.current().handle(&s.sid)),
        "kid": s.map(|s| s.kid.clone()),
        "current_kid": cfg.keys.current().kid(),
        "created": s.map(|s| s.created),
        "issued": s.map(|s| s.issued),
        "idle_expires": s.map(|s| s.expires(cfg)),
        "absolute_expires": s.map(|s| s.abs_exp),
        "expires": s.map(|s| s.expires(cfg)),
        "idle_timeout": cfg.idle_timeout,
        "absolute_timeout": cfg.absolute_timeout,
        "refresh_after": cfg.refresh_after,
        "cookie_name": cfg.cookie.name,
        "cookie_size": cookies.len,
        "cookie_limit": crate::session::MAX_COOKIE_LEN,
        "encrypted": cfg.cookie.encrypt,
        "device_bound": cfg.device_bound.is_some(),
        "bound_alg": bound.map(|(_, b)| b.alg()).filter(|a| !a.is_empty()),
        "bound_expires": bound_expires,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::config;

    #[test]
    fn next_accepts_relative_paths_only() {
        for good in ["/", "/account", "/a/b?c=d", "/caf%C3%A9"] {
            assert_eq!(safe_next(good).as_deref(), Some(good), "{good}");
        }
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/%2F%2Fevil",
            "%2F%2Fevil.example",
            "/%5Cevil",
            "/%252F%252Fevil",
            "javascript:alert(1)",
            "evil.example",
            "/\tevil",
            "/%0d%0aSet-Cookie:x=y",
            "",
        ] {
            assert_eq!(safe_next(bad), None, "{bad}");
        }
    }

    /// Regression: the `Location` was the form-decoded value as it was, so non-ASCII
    /// went out as raw bytes, and `%2B` as a `+` that the target reads as a space.
    #[test]
    fn a_sign_in_target_is_kept_as_the_browser_sent_it() {
        for ok in ["/", "/search?q=a%20b", "/caf%C3%A9", "/a/b?c=d&e=%2F#top"] {
            assert_eq!(safe_target(ok).as_deref(), Some(ok));
        }
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "/%2F%2Fevil.example",
            "/%5Cevil.example",
            "/%252F%252Fevil.example",
            "https://evil.example/",
            "/a b",
            "/caf\u{e9}",
            "/a\r\nx",
            "",
        ] {
            assert_eq!(safe_target(bad), None, "{bad:?}");
        }
        assert!(safe_target(&format!("/{}", "a".repeat(MAX_TARGET))).is_none());
    }

    #[test]
    fn logout_next_is_percent_encoded_again() {
        let cfg = config(&[]);
        for (query, want) in [
            ("next=%2Fcaf%C3%A9%3Fq%3Da%2Bb", "/caf%C3%A9?q=a%2Bb"),
            ("next=/a%2Bb", "/a%2Bb"),
            ("next=/caf\u{e9}", "/caf%C3%A9"),
            ("next=/p%2525", "/p%2525"),
            ("next=/x%3Fa%3D1%26b%3D2%23top", "/x?a=1&b=2#top"),
        ] {
            assert_eq!(
                route(&cfg, "POST", "/.keycard/logout", Some(query)),
                Some(Endpoint::Logout {
                    next: Some(want.into())
                }),
                "{query}"
            );
        }
    }

    #[test]
    fn routing() {
        let cfg = config(&[]);
        assert_eq!(route(&cfg, "GET", "/other", None), None);
        assert_eq!(
            route(&cfg, "GET", "/.keycard/health", None),
            Some(Endpoint::Health)
        );
        assert_eq!(
            route(&cfg, "POST", "/.keycard/health", None),
            Some(Endpoint::MethodNotAllowed("GET"))
        );
        assert_eq!(
            route(&cfg, "POST", "/.keycard/logout", Some("next=%2Fbye")),
            Some(Endpoint::Logout {
                next: Some("/bye".into())
            })
        );
        assert_eq!(
            route(&cfg, "POST", "/.keycard/logout", Some("next=%2F%2Fevil")),
            Some(Endpoint::Logout { next: None })
        );
        assert_eq!(
            route(&cfg, "GET", "/.keycard/session", None),
            Some(Endpoint::NotFound)
        );
        assert_eq!(
            route(&cfg, "GET", "/.keycard/", None),
            Some(Endpoint::NotFound)
        );
        assert_eq!(
            route(&cfg, "GET", "/.keycard", None),
            Some(Endpoint::NotFound)
        );
        let cfg = config(&[("KEYCARD_INSPECT", "true")]);
        assert_eq!(
            route(&cfg, "GET", "/.keycard/session", None),
            Some(Endpoint::Inspect)
        );
        assert_eq!(
            route(&cfg, "GET", "/.keycard/", None),
            Some(Endpoint::InspectorAsset(String::new()))
        );
        assert_eq!(
            route(&cfg, "GET", "/.keycard", None),
            Some(Endpoint::AddSlash)
        );
        assert_eq!(
            route(&cfg, "GET", "/.keycard/../x", None),
            Some(Endpoint::NotFound)
        );
    }
}
