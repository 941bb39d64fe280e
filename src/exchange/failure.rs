//! What fails a request that is not the client's doing, and how it is answered: one
//! place maps each [`Failure`] to an opaque reply and a log line, beside the checks of
//! the environment that fail before a request starts.

use serde_json::json;

use super::*;
use crate::config::{Config, ConfigError, StoreMode};
use crate::session;

/// Any error on the way that is not the client's doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A configuration or binding problem, naming the variable.
    Misconfigured(ConfigError),
    /// KV could not be read or written, and the policy is to fail closed.
    Store(StoreError),
    /// The origin could not be reached.
    Origin(String),
    /// The origin did not answer within `ORIGIN_TIMEOUT` (milliseconds).
    OriginTimeout(u64),
    /// The session does not fit in a cookie and there is no KV to spill to.
    TooLarge(usize),
    /// A bug: the edge misused the exchange, or the runtime broke a promise.
    Internal(String),
    /// The request carries this deployment's own loop mark: keycard forwarded it to
    /// itself. The error names the variable that sends it back.
    Loop(ConfigError),
}

impl Failure {
    /// The single place where failures become HTTP: opaque bodies, detail in the log.
    pub fn reply(self) -> (Reply, Log) {
        let log = |event, detail| Log {
            level: Level::Error,
            event,
            detail,
        };
        match self {
            Failure::Misconfigured(e) => (
                Reply::opaque(500, "keycard: misconfigured"),
                log(
                    "misconfigured",
                    json!({ "var": e.var, "problem": e.problem }),
                ),
            ),
            Failure::Store(e) => (
                Reply::opaque(503, "keycard: session store unavailable").with("retry-after", "5"),
                log(unavailable(&e), json!({ "op": e.op.as_str(), "error": e.detail })),
            ),
            Failure::Origin(msg) => (
                Reply::opaque(502, "keycard: origin unreachable"),
                log("origin_unreachable", json!({ "error": msg })),
            ),
            Failure::OriginTimeout(ms) => (
                Reply::opaque(504, "keycard: origin timeout"),
                log("origin_timeout", json!({ "after_ms": ms })),
            ),
            Failure::TooLarge(size) => (
                Reply::opaque(500, "keycard: internal error"),
                log(
                    "session_too_large",
                    json!({ "cookie_bytes": size, "limit": session::MAX_COOKIE_LEN,
                            "hint": "use SESSION_STORE=auto or kv with a KV binding" }),
                ),
            ),
            Failure::Internal(msg) => (
                Reply::opaque(500, "keycard: internal error"),
                log("internal", json!({ "error": msg })),
            ),
            Failure::Loop(e) => (
                Reply::new(
                    508,
                    TEXT,
                    format!("keycard: loop detected: this request came back to keycard itself; check {}", e.var),
                ),
                log("forward_loop", json!({ "var": e.var, "problem": e.problem })),
            ),
        }
    }
}

/// Route mode forwards to the request's own URL, and a `workers.dev` address has no
/// origin behind it: only keycard itself. Cloudflare would answer the forward with an
/// error of its own, or send it back here, so it is named as the mistake it is. Inside
/// a workers-rs app the handler is the origin, and nothing is fetched.
pub(super) fn check_route_mode(cfg: &Config, b: Bindings, host: &str) -> Result<(), ConfigError> {
    let route_mode = cfg.origin_service.is_none() && cfg.origin_url.is_none();
    match b.forwarding == Forwarding::Fetch && route_mode && on_workers_dev(host) {
        false => Ok(()),
        true => Err(ConfigError {
            var: "ORIGIN_URL",
            problem: "is unset (route mode), but this request came to a workers.dev address, which has no origin behind it; set ORIGIN_URL to the app's address, or put keycard on a route of your zone".into(),
        }),
    }
}

/// Whether `host` (with any port) is a `workers.dev` address, in any case.
pub(super) fn on_workers_dev(host: &str) -> bool {
    const SUFFIX: &[u8] = b".workers.dev";
    let name = host.rsplit_once(':').map_or(host, |(n, _)| n).as_bytes();
    name.len() > SUFFIX.len() && name[name.len() - SUFFIX.len()..].eq_ignore_ascii_case(SUFFIX)
}

/// Why a request came back: the variable that sends it to this Worker again.
pub(super) fn loop_cause(cfg: &Config) -> ConfigError {
    let (var, problem) = match (&cfg.origin_service, &cfg.origin_url) {
        (Some(_), _) => (
            "ORIGIN_SERVICE",
            "names a service that sends the request back to this Worker",
        ),
        (None, Some(_)) => (
            "ORIGIN_URL",
            "points back at this Worker; it must be the app's own address",
        ),
        (None, None) => (
            "ORIGIN_URL",
            "is unset, so keycard forwards to the request's own URL (route mode), and that URL is this Worker; set ORIGIN_URL to the app's address, or deploy keycard on a route in front of an origin",
        ),
    };
    ConfigError {
        var,
        problem: problem.into(),
    }
}

/// A request method as a log line may show it: one of the usual ones, or `other`. The
/// method is the client's text, and a log line must never carry what a client chose to
/// put there (a cookie value, say, found by the exchange fuzz target).
pub(super) fn method_for_log(method: &str) -> &'static str {
    const USUAL: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ];
    USUAL
        .into_iter()
        .find(|m| method.eq_ignore_ascii_case(m))
        .unwrap_or("other")
}

/// The log event of a store failure: KV's, or a user's object's.
pub(super) fn unavailable(e: &StoreError) -> &'static str {
    match e.op {
        StoreOp::Users => "users_unavailable",
        StoreOp::Get | StoreOp::Put | StoreOp::Delete => "kv_unavailable",
    }
}

/// The answer to a request that cannot start because the configuration is invalid,
/// and its log line.
pub fn misconfigured(e: &ConfigError) -> (Step, Log) {
    let (reply, log) = Failure::Misconfigured(e.clone()).reply();
    (Step::Reply(reply), log)
}

/// Checks that the bindings the configuration names are there and of the right kind.
pub(super) fn check_bindings(cfg: &Config, b: Bindings) -> Result<(), ConfigError> {
    let wrong = |var, name: &str, what| ConfigError {
        var,
        problem: format!("names {name:?}, which is not {what} of this Worker"),
    };
    match b.kv {
        Binding::Absent if cfg.store == StoreMode::Kv => Err(wrong(
            "SESSION_KV_BINDING",
            &cfg.kv_binding,
            "a KV namespace binding (required by SESSION_STORE=kv)",
        )),
        Binding::WrongKind if cfg.store != StoreMode::Cookie => Err(wrong(
            "SESSION_KV_BINDING",
            &cfg.kv_binding,
            "a KV namespace binding",
        )),
        _ => Ok(()),
    }?;
    match (&cfg.origin_service, b.origin_service) {
        (Some(name), Binding::Absent | Binding::WrongKind) => {
            Err(wrong("ORIGIN_SERVICE", name, "a service binding"))
        }
        _ => Ok(()),
    }?;
    // The default name may be unbound (the feature is then off); a name set on purpose
    // may not.
    let u = &cfg.users;
    match (b.users, u.explicit) {
        (Binding::WrongKind, _) | (Binding::Absent, true) => Err(wrong(
            "SESSION_USERS_BINDING",
            &u.binding,
            "a Durable Object namespace binding",
        )),
        _ => Ok(()),
    }?;
    if cfg.bindings_in_users() && b.users != Binding::Present {
        return Err(ConfigError {
            var: "KEYCARD_DEVICE_BOUND",
            problem: format!(
                "is on, which needs SESSION_STORE=kv or the users binding ({:?}, a Durable Object namespace): a device's binding is kept there",
                u.binding
            ),
        });
    }
    Ok(())
}
