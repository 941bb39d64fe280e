//! Header lists as the edge hands them over, and the rule for keycard's reserved names.
//!
//! # The alias rule
//!
//! CGI-style gateways (PHP, WSGI, Rack, Puma and others) read `X-Session`, `X_Session`
//! and `X.Session` as the same variable, `HTTP_X_SESSION`. Stripping only the exact
//! spelling would let a client forge the session through an alias. So every name is
//! compared in its *normal form*: lower-cased, with every character outside `a-z0-9`
//! read as `-`. A client header is dropped when its normal form is `x-session` or
//! starts with `x-session-`, starts with `x-forwarded-`, or is `forwarded` or
//! `x-real-ip`; that covers every name keycard sets on the forwarded request. An
//! origin header whose normal form is `x-session` or starts with `x-session-` never
//! reaches the client.
//!
//! # Other proxies' identity headers
//!
//! A client header that reads, by the same normal form, as an identity header a
//! well-known proxy sends is dropped too, unless `KEYCARD_PASS_CLIENT_HEADERS` names it:
//! Authelia's `Remote-User`, `-Groups`, `-Email` and `-Name`, Apache's `X-Remote-User`
//! and `X-Remote-Group`, oauth2-proxy's `X-Auth-Request-*`, Grafana's `X-WEBAUTH-*`,
//! Authentik's `X-authentik-*` and Pomerium's `X-Pomerium-*`. An app set up behind one
//! of them trusts these as the signed-in user.
//!
//! # Headers that override the path
//!
//! Some origins take the path they route on from a header a proxy sets: gunicorn's
//! `SCRIPT_NAME` and `PATH_INFO` (from any peer in `forwarded_allow_ips`, loopback by
//! default), IIS's and Yii's `X-Original-URL` and `X-Rewrite-URL`. The guard decides
//! on the request's own path, so a client header that reads as one of these is
//! always dropped.

/// A header list in the edge's wire form: one `name:value` line per header, names
/// lower-case (as the runtime's `Headers` gives them), repeated headers already joined
/// by the runtime. Header names cannot hold `:` and values cannot hold a newline, so
/// the form is unambiguous.
///
/// The lines are split once, when the list is made: a request asks for a dozen headers
/// by name, and splitting the text again for each was 3–4% of the isolate's time per
/// request (BENCHMARKS.md).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderList<'a> {
    headers: Vec<(&'a str, &'a str)>,
}

impl<'a> HeaderList<'a> {
    /// The list `lines` holds. A line without `:` is skipped.
    pub fn new(lines: &'a str) -> HeaderList<'a> {
        HeaderList {
            headers: lines
                .split('\n')
                .filter_map(|l| l.split_once(':'))
                .collect(),
        }
    }

    /// Every header as `(name, value)`, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.headers.iter().copied()
    }

    /// The value of the header `name` (lower-case), if present.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// `name` in normal form, one character at a time.
fn normal_chars(name: &str) -> impl Iterator<Item = char> + '_ {
    name.chars().map(|c| match c.to_ascii_lowercase() {
        l @ ('a'..='z' | '0'..='9') => l,
        _ => '-',
    })
}

/// `name` in normal form.
pub fn normal_form(name: &str) -> String {
    normal_chars(name).collect()
}

/// Whether `name`'s normal form starts with `prefix` (itself in normal form).
fn normal_starts_with(name: &str, prefix: &str) -> bool {
    let mut n = normal_chars(name);
    prefix.chars().all(|p| n.next() == Some(p))
}

/// Whether `name`'s normal form is `exact` (itself in normal form).
fn normal_eq(name: &str, exact: &str) -> bool {
    normal_chars(name).eq(exact.chars())
}

/// Text that every alias of the control namespace holds once lower-cased, since the
/// normal form keeps letters where they are: a driver that looks for it in the
/// lower-case names the runtime gives finds every alias, and some other names
/// ([`crate::exchange::Forward::pass_unless`]).
pub const SESSION_ALIAS_MARK: &str = "session";

/// Whether `name` is an alias of the control namespace: `x-session` or `x-session-*`.
pub fn is_session_alias(name: &str) -> bool {
    normal_eq(name, "x-session") || normal_starts_with(name, "x-session-")
}

/// Whether a client header called `name` must be dropped before forwarding: see the
/// module docs.
pub fn is_reserved_request(name: &str) -> bool {
    is_session_alias(name)
        || normal_starts_with(name, "x-forwarded-")
        || normal_eq(name, "forwarded")
        || normal_eq(name, "x-real-ip")
}

/// Identity headers other proxies send, in normal form: Authelia's `Remote-*`,
/// Apache's `X-Remote-*`. An app set up behind one of them trusts these.
const PROXY_IDENTITY: [&str; 6] = [
    "remote-user",
    "remote-groups",
    "remote-email",
    "remote-name",
    "x-remote-user",
    "x-remote-group",
];

/// Prefixes of the same, in normal form: oauth2-proxy's `X-Auth-Request-*`, Grafana's
/// `X-WEBAUTH-*`, Authentik's `X-authentik-*` and Pomerium's `X-Pomerium-*`.
/// (oauth2-proxy's `X-Forwarded-User` and its kin are reserved already.)
const PROXY_IDENTITY_PREFIXES: [&str; 4] = [
    "x-auth-request-",
    "x-webauth-",
    "x-authentik-",
    "x-pomerium-",
];

/// Headers that tell an origin which path to route on, in normal form (see the module
/// docs).
const PATH_OVERRIDES: [&str; 4] = [
    "script-name",
    "path-info",
    "x-original-url",
    "x-rewrite-url",
];

/// Whether a client header called `name` reads as one that tells an origin which path
/// to route on: always dropped before forwarding.
pub fn is_path_override(name: &str) -> bool {
    PATH_OVERRIDES.iter().any(|n| normal_eq(name, n))
}

/// Whether a client header called `name` reads as an identity header that a
/// well-known proxy sends (see the module docs): dropped before forwarding unless
/// `KEYCARD_PASS_CLIENT_HEADERS` names it, so that a client can never present an
/// identity to an app set up for another proxy.
pub fn is_proxy_identity(name: &str) -> bool {
    PROXY_IDENTITY.iter().any(|n| normal_eq(name, n))
        || PROXY_IDENTITY_PREFIXES
            .iter()
            .any(|p| normal_starts_with(name, p))
}

/// Whether `s` is an RFC 9110 token (a header or cookie name): one or more of
/// `tchar`.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_list_reads_name_value_lines() {
        let h = HeaderList::new("cookie:a=1; b=2\nx-empty:\nbroken\nhost:h:8443");
        assert_eq!(h.get("cookie"), Some("a=1; b=2"));
        assert_eq!(h.get("x-empty"), Some(""));
        assert_eq!(h.get("host"), Some("h:8443"), "only the first colon splits");
        assert_eq!(h.get("broken"), None);
        assert_eq!(h.iter().count(), 3);
        assert_eq!(HeaderList::new("").iter().count(), 0);
    }

    /// Regression: only names starting exactly with `x-session` were stripped, so
    /// `X_Session` reached PHP and WSGI apps as `HTTP_X_SESSION`.
    #[test]
    fn cgi_aliases_of_the_session_headers_are_reserved() {
        for name in [
            "x-session",
            "X-Session",
            "x_session",
            "X_Session",
            "x.session",
            "x~session",
            "x-session-status",
            "X_Session_Status",
            "x.session.id",
            "x_session-expires",
            "x-session-set",
            "x-session-",
        ] {
            assert!(is_session_alias(name), "{name}");
            assert!(is_reserved_request(name), "{name}");
        }
        for name in [
            "x-sessions",
            "x-sessionid",
            "xsession",
            "x--session",
            "session",
        ] {
            assert!(!is_session_alias(name), "{name}");
        }
    }

    /// A driver that skips the core for a response none of whose names holds the mark
    /// (`Forward::pass_unless`) must never skip an alias: every name of up to three
    /// parts around `session`, joined by any token character, that reads as an alias
    /// holds the mark once lower-cased, as the runtime gives names.
    #[test]
    fn every_session_alias_holds_the_mark() {
        let joins = "!#$%&'*+-.^_`|~";
        let mut aliases = 0;
        for a in ["x", "X"] {
            for j1 in joins.chars() {
                for word in ["session", "Session", "SESSION", "sEsSiOn"] {
                    for tail in ["", "-status", "_Set", ".id", "~x", "s"] {
                        for j2 in joins.chars() {
                            let name = format!(
                                "{a}{j1}{word}{}",
                                tail.replacen(['-', '_', '.', '~'], &j2.to_string(), 1)
                            );
                            if is_session_alias(&name) {
                                aliases += 1;
                                assert!(
                                    name.to_ascii_lowercase().contains(SESSION_ALIAS_MARK),
                                    "{name}"
                                );
                            }
                        }
                    }
                }
            }
        }
        assert!(aliases > 1000, "the names tried hold aliases: {aliases}");
        // The spellings the trust suite's origins answer with (tests/e2e/trust.test.mjs).
        for name in ["X_Session_Set", "X.Session.Action", "x-session-debug"] {
            assert!(is_session_alias(name), "{name}");
            assert!(
                name.to_ascii_lowercase().contains(SESSION_ALIAS_MARK),
                "{name}"
            );
        }
    }

    #[test]
    fn forwarding_headers_and_their_aliases_are_reserved() {
        for name in [
            "x-forwarded-for",
            "X_Forwarded_For",
            "x.forwarded.host",
            "x-forwarded-proto",
            "x-forwarded-user",
            "forwarded",
            "Forwarded",
            "x-real-ip",
            "X_Real_IP",
        ] {
            assert!(is_reserved_request(name), "{name}");
        }
        for name in [
            "x-forwarded",
            "forwarded-for",
            "x-real-ipv6",
            "cookie",
            "user-agent",
            "cf-connecting-ip",
        ] {
            assert!(!is_reserved_request(name), "{name}");
        }
    }

    /// Issue 22, finding 6: with only `Remote-User` configured (or nothing), a client's
    /// `X-Remote-User`, `X-Auth-Request-User` or `X-WEBAUTH-USER` reached the app.
    #[test]
    fn regression_identity_headers_of_other_proxies_are_recognised() {
        for name in [
            "remote-user",
            "Remote_User",
            "remote.groups",
            "remote-email",
            "remote-name",
            "x-remote-user",
            "X_Remote_Group",
            "x-auth-request-user",
            "X-Auth-Request-Email",
            "x_auth_request_access_token",
            "x-webauth-user",
            "X-WEBAUTH-NAME",
            "X-authentik-username",
            "x-pomerium-claim-email",
        ] {
            assert!(is_proxy_identity(name), "{name}");
        }
        for name in [
            "remote-addr",
            "x-remote-users",
            "x-auth-request",
            "x-webauth",
            "cf-access-authenticated-user-email",
            "authorization",
        ] {
            assert!(!is_proxy_identity(name), "{name}");
        }
    }

    /// Issue 22's review: gunicorn took `PATH_INFO=/admin` from a client's
    /// `SCRIPT_NAME: /login` on `/login/admin`, and Yii2 its path from `X-Rewrite-Url`.
    #[test]
    fn regression_headers_that_override_the_path_are_recognised() {
        for name in [
            "script_name",
            "SCRIPT-NAME",
            "path_info",
            "X-Original-URL",
            "x_rewrite_url",
        ] {
            assert!(is_path_override(name), "{name}");
        }
        for name in ["x-script-name-hint", "script", "x-original-host"] {
            assert!(!is_path_override(name), "{name}");
        }
    }
}
