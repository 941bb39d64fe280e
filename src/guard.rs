//! Edge guards for legacy apps: which requests need a signed-in user, what the origin
//! is told about that user, and cross-origin protection for unsafe methods.
//!
//! All of it is off by default and costs nothing then: no path is normalised, no
//! session data parsed.

use serde_json::{Map, Value};

use crate::http::cross_origin::{self, Provenance};
use crate::http::forward::UrlParts;
use crate::http::headers::{self, HeaderList};
use crate::http::path_guard::{Exemptions, Rules};

/// The guards' settings.
#[derive(Debug, Clone)]
pub struct Guards {
    /// `KEYCARD_USER_FIELD`; default `user`.
    pub user_field: String,
    /// `KEYCARD_REQUIRE` and `KEYCARD_PUBLIC` (with the login path and
    /// `KEYCARD_PATH_PREFIX` always public), `KEYCARD_PATHS_IGNORE_CASE`.
    pub paths: Rules,
    /// `KEYCARD_LOGIN_URL`.
    pub login_url: Option<String>,
    /// `KEYCARD_IDENTITY_HEADERS`: each header's name, lower-case, and its normal form
    /// (see [`crate::http::headers`]), and the session field it carries.
    pub identity: Vec<Identity>,
    /// `KEYCARD_PASS_CLIENT_HEADERS`: identity headers of other proxies that a client
    /// may send all the same, by exact name, lower-case.
    pub pass_client: Vec<String>,
    /// `KEYCARD_CSRF=origin` (the default); `None` with `off`.
    pub csrf: Option<Csrf>,
}

/// One identity header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The header's name, lower-case.
    pub header: String,
    /// Its name in normal form: client headers that read the same are dropped.
    pub normal: String,
    /// The top-level session field whose value it carries.
    pub field: String,
}

/// Why a request is sent to the login page, as its URL tells the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignIn {
    /// No signed-in session came with the request: `?next=` alone.
    Needed,
    /// The session that came with it had been ended from another device (its user's
    /// object revoked it): `&session=revoked` after `next`, so that the page can say so.
    Revoked,
}

/// Cross-origin protection for unsafe methods.
#[derive(Debug, Clone)]
pub struct Csrf {
    /// `KEYCARD_TRUSTED_ORIGINS`: other origins allowed, lower-case.
    pub trusted: Vec<String>,
    /// `KEYCARD_CSRF_EXEMPT`: paths it does not apply to (webhooks, callbacks).
    pub exempt: Exemptions,
}

impl Guards {
    /// Whether the client header `name` (lower-case) must be dropped because it reads
    /// as an identity header: one of `KEYCARD_IDENTITY_HEADERS`, or one that another
    /// proxy sends and `KEYCARD_PASS_CLIENT_HEADERS` does not name.
    pub fn drops_client_header(&self, name: &str) -> bool {
        let configured = !self.identity.is_empty() && {
            let normal = headers::normal_form(name);
            self.identity.iter().any(|i| i.normal == normal)
        };
        configured
            || (headers::is_proxy_identity(name) && !self.pass_client.iter().any(|p| p == name))
    }

    /// Whether a request with `method` to `target` (its path and query) at the URL
    /// `url` is refused as a cross-origin request. A safe method is never: its origin
    /// is not even written out.
    pub fn cross_origin_refused(
        &self,
        method: &str,
        target: &str,
        h: &HeaderList<'_>,
        url: &UrlParts<'_>,
    ) -> bool {
        let Some(csrf) = &self.csrf else {
            return false;
        };
        if cross_origin::is_safe_method(method) {
            return false;
        }
        let from = Provenance::of(h);
        if cross_origin::allowed(from, &url.origin()) {
            return false;
        }
        // As in Go, a trusted origin passes whatever `Sec-Fetch-Site` says: a modern
        // browser on it says `cross-site`.
        let trusted = from
            .origin
            .is_some_and(|o| csrf.trusted.iter().any(|t| t.eq_ignore_ascii_case(o)));
        !trusted && !csrf.exempt.cover(target)
    }

    /// The signed-in user session `data` names: its user field, when that is a
    /// non-empty string or a number.
    pub fn user<'a>(&self, data: &'a Map<String, Value>) -> Option<&'a Value> {
        data.get(&self.user_field).filter(|v| match v {
            Value::String(s) => !s.is_empty(),
            Value::Number(_) => true,
            _ => false,
        })
    }

    /// The signed-in user session `data` names ([`Guards::user`]) as text (a number in
    /// decimal), the way an identity header carries it, so that `42` and `"42"` are one
    /// user.
    pub fn user_name(&self, data: &Map<String, Value>) -> Option<String> {
        match self.user(data)? {
            Value::String(s) => Some(s.clone()),
            number => Some(number.to_string()),
        }
    }

    /// Whether session `data` names a signed-in user ([`Guards::user`]).
    pub fn signed_in(&self, data: &Map<String, Value>) -> bool {
        self.user(data).is_some()
    }

    /// The login URL with `next` set to where the request wanted to go: its path and
    /// query, or, for a login URL on another origin, its absolute URL; and, for a
    /// session ended elsewhere, `session=revoked` ([`SignIn`]).
    pub fn login_with_next(&self, own: &str, path_and_query: &str, why: SignIn) -> Option<String> {
        let login = self.login_url.as_deref()?;
        let same_origin = login.starts_with('/')
            || login
                .strip_prefix(own)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']));
        let next = match same_origin {
            true => path_and_query.to_owned(),
            false => format!("{own}{path_and_query}"),
        };
        let sep = if login.contains('?') { '&' } else { '?' };
        let encoded = percent_encoding::utf8_percent_encode(&next, NEXT);
        let reason = match why {
            SignIn::Needed => "",
            SignIn::Revoked => "&session=revoked",
        };
        Some(format!("{login}{sep}next={encoded}{reason}"))
    }

    /// The identity headers for a signed-in session's `data`, and the names of those
    /// skipped because the value cannot travel in a header.
    pub fn identity_headers(
        &self,
        data: &Map<String, Value>,
    ) -> (Vec<(String, String)>, Vec<String>) {
        let mut out = Vec::new();
        let mut skipped = Vec::new();
        for i in &self.identity {
            match data.get(&i.field).and_then(header_value) {
                Some(v) => out.push((i.header.clone(), v)),
                None if data.contains_key(&i.field) => skipped.push(i.header.clone()),
                None => {}
            }
        }
        (out, skipped)
    }
}

/// `next` is encoded whole: everything but the unreserved characters.
const NEXT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// A field's value as a header value, exactly or not at all: a string as it is, a
/// number in decimal, an array of strings and numbers joined with `,`. `None` for
/// anything else; for a value with a control character or outside ASCII (the runtime
/// would re-encode it, and log it); for one with a space at either end (the runtime
/// trims it, and `" dan "` would reach the app as `dan`, whose sessions are another
/// user's); and for a list item that holds a comma or has a space at either end (the
/// app could not split the list back).
fn header_value(v: &Value) -> Option<String> {
    let exact = |s: &str| s.trim_matches(' ').len() == s.len();
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            let parts: Option<Vec<String>> = items
                .iter()
                .map(|i| match i {
                    Value::String(s) if exact(s) && !s.contains(',') => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect();
            parts?.join(",")
        }
        _ => return None,
    };
    (exact(&text) && text.bytes().all(|b| (0x20..0x7f).contains(&b))).then_some(text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::{Config, ConfigError};

    /// The guards of a configuration with `pairs` (read the way keycard reads them).
    fn guards(pairs: &[(&str, &str)]) -> Result<Guards, ConfigError> {
        let mut all = vec![("SESSION_SECRET", crate::testing::SECRET)];
        all.extend_from_slice(pairs);
        Config::from_pairs(&all).map(|c| c.guards)
    }

    fn data(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn signed_in_means_a_non_empty_string_or_a_number() {
        let g = guards(&[]).unwrap();
        assert!(g.signed_in(&data(json!({"user":"ada"}))));
        assert!(g.signed_in(&data(json!({"user":42}))));
        for anon in [
            json!({}),
            json!({"user":""}),
            json!({"user":null}),
            json!({"user":true}),
            json!({"user":["ada"]}),
            json!({"cart":[1]}),
        ] {
            assert!(!g.signed_in(&data(anon.clone())), "{anon}");
        }
        let g = guards(&[("KEYCARD_USER_FIELD", "uid")]).unwrap();
        assert!(g.signed_in(&data(json!({"uid":"u1"}))));
        assert!(!g.signed_in(&data(json!({"user":"ada"}))));
    }

    #[test]
    fn login_url_gets_next_percent_encoded() {
        let g = guards(&[("KEYCARD_LOGIN_URL", "/login")]).unwrap();
        assert_eq!(
            g.login_with_next("https://app.example", "/admin/x?a=1", SignIn::Needed)
                .as_deref(),
            Some("/login?next=%2Fadmin%2Fx%3Fa%3D1")
        );
        let g = guards(&[("KEYCARD_LOGIN_URL", "/login?src=kc")]).unwrap();
        assert_eq!(
            g.login_with_next("https://app.example", "/a", SignIn::Needed)
                .as_deref(),
            Some("/login?src=kc&next=%2Fa")
        );
        let g = guards(&[("KEYCARD_LOGIN_URL", "https://auth.example/signin")]).unwrap();
        assert_eq!(
            g.login_with_next("https://app.example", "/a?b", SignIn::Needed)
                .as_deref(),
            Some("https://auth.example/signin?next=https%3A%2F%2Fapp.example%2Fa%3Fb")
        );
        let g = guards(&[("KEYCARD_LOGIN_URL", "https://app.example/signin")]).unwrap();
        assert_eq!(
            g.login_with_next("https://app.example", "/a", SignIn::Needed)
                .as_deref(),
            Some("https://app.example/signin?next=%2Fa")
        );
        assert_eq!(
            guards(&[])
                .unwrap()
                .login_with_next("https://h", "/a", SignIn::Needed),
            None
        );
    }

    #[test]
    fn a_revoked_session_goes_to_the_login_url_saying_so() {
        let g = guards(&[("KEYCARD_LOGIN_URL", "/login?src=kc")]).unwrap();
        assert_eq!(
            g.login_with_next("https://app.example", "/a?b=1", SignIn::Revoked)
                .as_deref(),
            Some("/login?src=kc&next=%2Fa%3Fb%3D1&session=revoked")
        );
        let g = guards(&[("KEYCARD_LOGIN_URL", "https://auth.example/signin")]).unwrap();
        assert_eq!(
            g.login_with_next("https://app.example", "/a", SignIn::Revoked)
                .as_deref(),
            Some("https://auth.example/signin?next=https%3A%2F%2Fapp.example%2Fa&session=revoked")
        );
    }

    #[test]
    fn identity_headers_carry_strings_numbers_and_lists() {
        let g = guards(&[(
            "KEYCARD_IDENTITY_HEADERS",
            "X-Forwarded-User=user, X-Forwarded-Groups=roles, X-Uid=uid, X-Email=email, X-Flags=flags, X-Name=name",
        )])
        .unwrap();
        let d = data(json!({
            "user": "ada", "roles": ["admin", 7], "uid": 42, "email": "a\u{7}b",
            "flags": {"a": 1}, "name": "Zo\u{eb}"
        }));
        let (sent, skipped) = g.identity_headers(&d);
        assert_eq!(
            sent,
            [
                ("x-forwarded-user".to_owned(), "ada".to_owned()),
                ("x-forwarded-groups".to_owned(), "admin,7".to_owned()),
                ("x-uid".to_owned(), "42".to_owned())
            ]
        );
        assert_eq!(skipped, ["x-email", "x-flags", "x-name"]);
        assert!(g.drops_client_header("X_Forwarded_User"));
        assert!(g.drops_client_header("x.uid"));
        assert!(!g.drops_client_header("x-forwarded-users"));
    }

    /// Issue 22, finding 5: the origin signed in `" dan "`; the runtime trimmed the
    /// identity header to `dan`, while the user's object was keyed on `" dan "`.
    #[test]
    fn regression_identity_values_are_exact_or_not_sent() {
        let g = guards(&[(
            "KEYCARD_IDENTITY_HEADERS",
            "Remote-User=user, Remote-Groups=groups",
        )])
        .unwrap();
        for (user, groups) in [
            (json!(" dan "), json!(["a", " b"])),
            (json!("dan "), json!(["a,b"])),
            (json!(" dan"), json!(["a", "b "])),
        ] {
            let (sent, skipped) =
                g.identity_headers(&data(json!({"user": user, "groups": groups})));
            assert!(sent.is_empty(), "{user} {groups}: {sent:?}");
            assert_eq!(skipped, ["remote-user", "remote-groups"]);
        }
        let (sent, _) = g.identity_headers(&data(json!({"user": "d an", "groups": ["a b", 7]})));
        assert_eq!(
            sent,
            [
                ("remote-user".to_owned(), "d an".to_owned()),
                ("remote-groups".to_owned(), "a b,7".to_owned())
            ]
        );
    }

    /// Issue 22, finding 6: identity headers keycard was not told about reached the app.
    #[test]
    fn regression_other_proxies_identity_headers_are_dropped_unless_let_through() {
        let none = guards(&[]).unwrap();
        for name in [
            "remote-user",
            "x-remote-user",
            "x-auth-request-user",
            "x-webauth-user",
            "remote_groups",
        ] {
            assert!(none.drops_client_header(name), "{name}");
        }
        assert!(!none.drops_client_header("cf-access-authenticated-user-email"));
        let pass = guards(&[
            ("KEYCARD_IDENTITY_HEADERS", "Remote-User=user"),
            (
                "KEYCARD_PASS_CLIENT_HEADERS",
                "X-Auth-Request-Email, x-webauth-user",
            ),
        ])
        .unwrap();
        assert!(!pass.drops_client_header("x-auth-request-email"));
        assert!(!pass.drops_client_header("x-webauth-user"));
        assert!(
            pass.drops_client_header("x_auth_request_email"),
            "by exact name only"
        );
        assert!(pass.drops_client_header("x-auth-request-user"));
        assert!(pass.drops_client_header("remote-user"));
        for bad in [
            "Remote-User",
            "X-Session",
            "X-Forwarded-User",
            "Authorization",
            "a b",
        ] {
            let e = guards(&[
                ("KEYCARD_IDENTITY_HEADERS", "Remote-User=user"),
                ("KEYCARD_PASS_CLIENT_HEADERS", bad),
            ])
            .unwrap_err();
            assert_eq!(e.var, "KEYCARD_PASS_CLIENT_HEADERS", "{bad}");
        }
    }

    #[test]
    fn cross_origin_protection_follows_go() {
        let g = guards(&[
            ("KEYCARD_TRUSTED_ORIGINS", "https://partner.example"),
            ("KEYCARD_CSRF_EXEMPT", "/hooks/"),
        ])
        .unwrap();
        let own = UrlParts {
            scheme: "https",
            host: "app.example",
            path_and_query: "/",
        };
        let refused = |method: &str, path: &str, h: &str| {
            g.cross_origin_refused(method, path, &HeaderList::new(h), &own)
        };
        assert!(refused("POST", "/a", "sec-fetch-site:cross-site\n"));
        assert!(refused("POST", "/a", "sec-fetch-site:same-site\n"));
        assert!(refused("DELETE", "/a", "origin:https://evil.example\n"));
        assert!(!refused("GET", "/a", "sec-fetch-site:cross-site\n"));
        assert!(!refused("OPTIONS", "/a", "sec-fetch-site:cross-site\n"));
        assert!(!refused("POST", "/a", "sec-fetch-site:same-origin\n"));
        assert!(!refused("POST", "/a", "origin:https://app.example\n"));
        assert!(!refused("POST", "/a", "origin:https://partner.example\n"));
        assert!(!refused(
            "POST",
            "/a",
            "sec-fetch-site:cross-site\norigin:https://partner.example\n"
        ));
        assert!(!refused("POST", "/a", ""), "not a browser");
        assert!(!refused(
            "POST",
            "/hooks/pay",
            "sec-fetch-site:cross-site\n"
        ));
        let off = guards(&[("KEYCARD_CSRF", "off")]).unwrap();
        assert!(!off.cross_origin_refused(
            "POST",
            "/a",
            &HeaderList::new("sec-fetch-site:cross-site\n"),
            &own
        ));
    }
}
