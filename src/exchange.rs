//! One request's way through keycard, as a state machine whose decisions are data.
//!
//! The edge starts an [`Exchange`] with what it read from the request and gets a
//! [`Step`] back: read or write a KV record, forward the request to the origin, serve
//! an inspector asset, or answer. It carries the step out and hands the result back
//! ([`Exchange::record`], [`Exchange::written`], [`Exchange::answered`],
//! [`Exchange::unreachable`]), which returns the next step, until a final one.
//!
//! Nothing here awaits or touches the platform. The Worker drives the steps from a few
//! lines of JS (`src/entry.js`), so no Rust future or promise exists per request (see
//! BENCHMARKS.md for what that bought), and the tests drive the very same steps natively
//! against a [`MemoryStore`](crate::store::memory::MemoryStore) with [`crate::store::settle`].
//!
//! Every error that is not the client's doing becomes a reply in one place
//! ([`Failure::reply`]): an opaque body, the detail in a [`Log`] line.

use std::collections::VecDeque;
use std::mem;

use serde_json::{json, Value};

use crate::config::{Config, ConfigError, KvFailure, StoreMode};
use crate::control::{self, Changes};
use crate::endpoints::{self, Endpoint};
use crate::forward;
use crate::keys::Entropy;
use crate::session::{self, FinishError, KvPut, Loaded, Pending, Read, Status};
use crate::store::StoreError;

/// What the edge read from the client's request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Incoming<'a> {
    /// The method, as sent.
    pub method: &'a str,
    /// The absolute URL, as the runtime gives it.
    pub url: &'a str,
    /// `Cookie`.
    pub cookie: Option<&'a str>,
    /// `CF-Connecting-IP`.
    pub client_ip: Option<&'a str>,
    /// `X-Forwarded-For`.
    pub forwarded_for: Option<&'a str>,
    /// `Sec-Fetch-Site`.
    pub fetch_site: Option<&'a str>,
}

/// Which bindings named by the configuration exist in the Worker's environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bindings {
    /// The KV namespace `SESSION_KV_BINDING`.
    pub kv: bool,
    /// The service `ORIGIN_SERVICE`.
    pub origin_service: bool,
    /// The static assets binding `ASSETS` (the inspector's files).
    pub assets: bool,
}

/// A log line for the edge to write. Never holds cookie values, secrets or session data.
#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    /// `warn` or `error`.
    pub level: &'static str,
    /// What happened, e.g. `bad_cookie`.
    pub event: &'static str,
    /// Details: reasons, statuses, variable names.
    pub detail: Value,
}

impl Log {
    /// The line as written: `{"keycard":event,"level":..,"detail":..}`.
    pub fn line(&self) -> String {
        json!({ "keycard": self.event, "level": self.level, "detail": self.detail }).to_string()
    }
}

/// A response made by keycard itself. It is never cached (`Cache-Control: no-store`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The body; empty means none.
    pub body: String,
    /// More headers, appended in order.
    pub headers: Vec<(&'static str, String)>,
}

/// `Content-Type` of keycard's text replies.
pub const TEXT: &str = "text/plain; charset=utf-8";
/// `Content-Type` of keycard's JSON replies.
pub const JSON: &str = "application/json";

impl Reply {
    fn new(status: u16, content_type: &'static str, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    fn opaque(status: u16, body: &str) -> Reply {
        Reply::new(status, TEXT, body)
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

/// How the forwarded request's `Cookie` header changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieEdit {
    /// Forward it as it came (`SESSION_FORWARD_COOKIE=true`, or there was none).
    Keep,
    /// Replace it: the client's cookies without the session cookie.
    Set(String),
    /// Remove it: the session cookie was the only one.
    Remove,
}

/// The request to send to the origin: the client's method, body and headers, with the
/// reserved `X-Session*` namespace stripped and these changes made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// Where to send it.
    pub url: String,
    /// Through the `ORIGIN_SERVICE` binding rather than the network.
    pub via_service: bool,
    /// The `Cookie` header.
    pub cookie: CookieEdit,
    /// `X-Session`, `X-Session-Status`, `X-Session-Id`, `X-Session-Expires`.
    pub session: session::Forward,
    /// `X-Forwarded-For`, when there is anything to say.
    pub forwarded_for: Option<String>,
    /// `X-Forwarded-Host`.
    pub forwarded_host: String,
    /// `X-Forwarded-Proto`.
    pub forwarded_proto: String,
}

/// What the origin answered, as far as keycard cares.
#[derive(Debug, Clone, Copy, Default)]
pub struct Answer<'a> {
    /// The status code.
    pub status: u16,
    /// Whether any header in the reserved namespace was present (they are stripped).
    pub reserved: bool,
    /// `X-Session-Set`.
    pub set: Option<&'a str>,
    /// `X-Session-Action`.
    pub action: Option<&'a str>,
    /// `X-Session-Max-Age`.
    pub max_age: Option<&'a str>,
}

/// What the edge must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Answer with this; done.
    Reply(Reply),
    /// Read the record at `key`, then [`Exchange::record`].
    KvGet { key: String },
    /// Write this record, then [`Exchange::written`].
    KvPut(KvPut),
    /// Delete the record at `key`, then [`Exchange::written`].
    KvDelete { key: String },
    /// Send this to the origin, then [`Exchange::answered`] (or
    /// [`Exchange::unreachable`] when it could not be reached).
    Forward(Forward),
    /// Fetch `url` from the assets binding and answer with it as it is; done.
    Asset { url: String },
    /// Answer with the origin's response untouched; done.
    Pass,
    /// Answer with the origin's response without its reserved headers, and with this
    /// `Set-Cookie` appended when there is one; done.
    Rewrap { set_cookie: Option<String> },
}

impl Step {
    /// Whether the exchange is over after this step.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Step::Reply(_) | Step::Asset { .. } | Step::Pass | Step::Rewrap { .. }
        )
    }
}

/// Any error on the way that is not the client's doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A configuration or binding problem, naming the variable.
    Misconfigured(ConfigError),
    /// KV could not be read or written, and the policy is to fail closed.
    Store(StoreError),
    /// The origin could not be reached.
    Origin(String),
    /// The session does not fit in a cookie and there is no KV to spill to.
    TooLarge(usize),
    /// A bug: the edge misused the exchange, or the runtime broke a promise.
    Internal(String),
}

impl Failure {
    /// The single place where failures become HTTP: opaque bodies, detail in the log.
    pub fn reply(self) -> (Reply, Log) {
        let log = |event, detail| Log {
            level: "error",
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
                log("kv_unavailable", json!({ "op": e.op, "error": e.detail })),
            ),
            Failure::Origin(msg) => (
                Reply::opaque(502, "keycard: origin unreachable"),
                log("origin_unreachable", json!({ "error": msg })),
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
        }
    }
}

/// What to do once the session is loaded.
#[derive(Debug)]
enum Then {
    /// Forward to the origin with these request-side parts.
    Forward(Box<Forward>),
    /// Answer the inspector with the session, the cookie being this long.
    Inspect { cookie_len: usize },
    /// Destroy the session, then redirect to `next` (or answer 204).
    Logout { next: Option<String> },
}

/// What to do once the KV writes are done.
#[derive(Debug)]
enum After {
    /// Hand back the origin's response; `reserved` says it had headers to strip.
    Origin { reserved: bool },
    /// Answer the logout.
    Logout { next: Option<String> },
}

#[derive(Debug)]
enum State {
    /// Waiting for [`Exchange::record`].
    Loading { pending: Pending, then: Then },
    /// Waiting for [`Exchange::answered`].
    Forwarding(Loaded),
    /// Waiting for [`Exchange::written`]; `ops` are the writes still to do.
    Writing {
        ops: VecDeque<Step>,
        set_cookie: Option<String>,
        put: bool,
        after: After,
    },
    /// Over.
    Done,
}

/// One request in flight. See the module docs.
#[derive(Debug)]
pub struct Exchange {
    now: u64,
    /// KV is in use: the store mode allows it and the binding exists.
    kv: bool,
    method: String,
    url: String,
    state: State,
    logs: Vec<Log>,
}

impl Exchange {
    /// An exchange that is over before it began: the configuration is invalid.
    pub fn misconfigured(e: &ConfigError) -> (Exchange, Step) {
        let mut ex = Exchange::new(0, "", "");
        let step = ex.fail(Failure::Misconfigured(e.clone()));
        (ex, step)
    }

    /// Starts the exchange for a request at `now` (unix seconds).
    pub fn start(
        cfg: &Config,
        bindings: Bindings,
        req: &Incoming<'_>,
        now: u64,
        entropy: &mut dyn Entropy,
    ) -> (Exchange, Step) {
        let mut ex = Exchange::new(now, req.method, req.url);
        let step = ex.begin(cfg, bindings, req, entropy);
        (ex, step)
    }

    fn new(now: u64, method: &str, url: &str) -> Exchange {
        Exchange {
            now,
            kv: false,
            method: method.to_owned(),
            url: url.to_owned(),
            state: State::Done,
            logs: Vec::new(),
        }
    }

    /// The log lines written since the last call, oldest first.
    pub fn take_logs(&mut self) -> Vec<Log> {
        mem::take(&mut self.logs)
    }

    fn log(&mut self, level: &'static str, event: &'static str, detail: Value) {
        self.logs.push(Log {
            level,
            event,
            detail,
        });
    }

    fn fail(&mut self, f: Failure) -> Step {
        let (reply, log) = f.reply();
        self.logs.push(log);
        self.state = State::Done;
        Step::Reply(reply)
    }

    /// A call that does not fit the state: a bug in the edge, answered as one.
    fn out_of_order(&mut self, call: &str) -> Step {
        self.fail(Failure::Internal(format!("{call} called out of order")))
    }

    fn begin(
        &mut self,
        cfg: &Config,
        bindings: Bindings,
        req: &Incoming<'_>,
        entropy: &mut dyn Entropy,
    ) -> Step {
        if cfg.store == StoreMode::Kv && !bindings.kv {
            return self.fail(Failure::Misconfigured(ConfigError {
                var: "SESSION_KV_BINDING",
                problem: format!("names {:?}, which is not a KV namespace binding of this Worker (required by SESSION_STORE=kv)", cfg.kv_binding),
            }));
        }
        if let (Some(name), false) = (&cfg.origin_service, bindings.origin_service) {
            return self.fail(Failure::Misconfigured(ConfigError {
                var: "ORIGIN_SERVICE",
                problem: format!("names {name:?}, which is not a service binding of this Worker"),
            }));
        }
        self.kv = cfg.store != StoreMode::Cookie && bindings.kv;
        let Some(parts) = forward::split_url(req.url) else {
            return self.fail(Failure::Internal("request URL has no scheme".into()));
        };
        let (path, query) = match parts.path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (parts.path_and_query, None),
        };
        if let Some(ep) = endpoints::route(cfg, req.method, path, query) {
            return self.endpoint(cfg, ep, req, parts, bindings.assets, entropy);
        }

        let cookie = match (req.cookie, cfg.forward_cookie) {
            (Some(c), false) => match forward::strip_cookie(c, &cfg.cookie.name) {
                Some(rest) => CookieEdit::Set(rest),
                None => CookieEdit::Remove,
            },
            _ => CookieEdit::Keep,
        };
        let plan = Forward {
            url: forward::origin_url(cfg.origin_url.as_ref().map(|o| o.0.as_str()), req.url),
            via_service: cfg.origin_service.is_some(),
            cookie,
            session: session::Forward {
                session: None,
                status: Status::None.as_str(),
                handle: None,
                expires: None,
            },
            forwarded_for: forward::forwarded_for(req.forwarded_for, req.client_ip),
            forwarded_host: parts.host.to_owned(),
            forwarded_proto: parts.scheme.to_owned(),
        };
        self.load(cfg, req.cookie, Then::Forward(Box::new(plan)), entropy)
    }

    fn endpoint(
        &mut self,
        cfg: &Config,
        ep: Endpoint,
        req: &Incoming<'_>,
        parts: forward::UrlParts<'_>,
        assets: bool,
        entropy: &mut dyn Entropy,
    ) -> Step {
        let done = |r: Reply| Step::Reply(r);
        match ep {
            Endpoint::Health => done(Reply::new(200, JSON, endpoints::health_json(cfg, self.kv))),
            Endpoint::NotFound => done(Reply::opaque(404, "keycard: not found")),
            Endpoint::AddSlash => {
                done(Reply::new(308, TEXT, "").with("location", cfg.path_prefix.as_str()))
            }
            Endpoint::MethodNotAllowed(allow) => {
                done(Reply::opaque(405, "keycard: method not allowed").with("allow", allow))
            }
            Endpoint::Inspect => {
                let cookie_len = req
                    .cookie
                    .and_then(|c| session::cookie_values(c, &cfg.cookie.name).next())
                    .map_or(0, |v| v.len() + cfg.cookie.name.len() + 1);
                self.load(cfg, req.cookie, Then::Inspect { cookie_len }, entropy)
            }
            Endpoint::InspectorAsset(_) if !assets => {
                done(Reply::opaque(404, "keycard: not found"))
            }
            Endpoint::InspectorAsset(name) => {
                let file = if name.is_empty() { "index.html" } else { &name };
                Step::Asset {
                    url: format!("{}://{}/{file}", parts.scheme, parts.host),
                }
            }
            Endpoint::Logout { .. } if req.fetch_site == Some("cross-site") => {
                self.log(
                    "warn",
                    "logout_refused",
                    json!({ "reason": "cross-site request" }),
                );
                done(Reply::opaque(403, "keycard: cross-site logout refused"))
            }
            Endpoint::Logout { next } => self.load(cfg, req.cookie, Then::Logout { next }, entropy),
        }
    }

    /// Reads the cookie; asks for the KV record when the session lives there.
    fn load(
        &mut self,
        cfg: &Config,
        cookie: Option<&str>,
        then: Then,
        entropy: &mut dyn Entropy,
    ) -> Step {
        let read = session::read(cfg, cookie, self.now);
        let loaded = match read {
            Read::None => Loaded::without(Status::None),
            Read::Bad(status, why) => {
                self.log(
                    "warn",
                    "bad_cookie",
                    json!({ "status": status.as_str(), "reason": why.to_string() }),
                );
                Loaded::without(status)
            }
            Read::Ready(s) => Loaded::with(s),
            Read::NeedsRecord(pending) if self.kv => {
                let key = pending.key.clone();
                self.state = State::Loading { pending, then };
                return Step::KvGet { key };
            }
            // A cookie that points to KV, with no KV to look in: not a session.
            Read::NeedsRecord(_) => Loaded::without(Status::Invalid),
        };
        self.loaded(cfg, loaded, then, entropy)
    }

    /// The result of a [`Step::KvGet`]: the record's text (`None` when there is none),
    /// or the store's error. Applies `SESSION_KV_FAILURE` to an error.
    pub fn record(
        &mut self,
        cfg: &Config,
        found: Result<Option<String>, StoreError>,
        entropy: &mut dyn Entropy,
    ) -> Step {
        let State::Loading { pending, then } = mem::replace(&mut self.state, State::Done) else {
            return self.out_of_order("record");
        };
        let loaded = match found {
            Ok(record) => pending
                .complete(record.as_deref())
                .map_or_else(|| Loaded::without(Status::Invalid), Loaded::with),
            Err(e) if cfg.kv_failure == KvFailure::Open => {
                self.log(
                    "error",
                    "kv_unavailable",
                    json!({ "op": e.op, "error": e.detail, "policy": "open" }),
                );
                Loaded::store_unavailable()
            }
            Err(e) => return self.fail(Failure::Store(e)),
        };
        self.loaded(cfg, loaded, then, entropy)
    }

    fn loaded(
        &mut self,
        cfg: &Config,
        loaded: Loaded,
        then: Then,
        entropy: &mut dyn Entropy,
    ) -> Step {
        match then {
            Then::Forward(mut plan) => {
                plan.session =
                    session::forward_headers(cfg, &loaded, self.now, &self.method, &self.url);
                self.state = State::Forwarding(loaded);
                Step::Forward(*plan)
            }
            Then::Inspect { cookie_len } => Step::Reply(Reply::new(
                200,
                JSON,
                endpoints::inspect_json(cfg, &loaded, cookie_len, self.now),
            )),
            Then::Logout { next } => {
                let destroy = Changes {
                    destroy: true,
                    ..Default::default()
                };
                self.decide(cfg, loaded, destroy, entropy, After::Logout { next })
            }
        }
    }

    /// The origin's answer to a [`Step::Forward`]: applies its control headers (unless
    /// it answered 5xx), then asks for the KV writes, then for the response.
    pub fn answered(
        &mut self,
        cfg: &Config,
        answer: &Answer<'_>,
        entropy: &mut dyn Entropy,
    ) -> Step {
        let State::Forwarding(loaded) = mem::replace(&mut self.state, State::Done) else {
            return self.out_of_order("answered");
        };
        let changes = if !answer.reserved {
            Changes::default()
        } else if answer.status >= 500 {
            self.log(
                "warn",
                "control_ignored",
                json!({ "reason": "origin answered 5xx", "status": answer.status }),
            );
            Changes::default()
        } else {
            let (changes, errors) = control::parse(answer.set, answer.action, answer.max_age);
            for e in errors {
                self.log(
                    "error",
                    "bad_control_header",
                    json!({ "error": e.to_string() }),
                );
            }
            changes
        };
        let after = After::Origin {
            reserved: answer.reserved,
        };
        self.decide(cfg, loaded, changes, entropy, after)
    }

    /// The origin could not be reached (the detail is for the log only).
    pub fn unreachable(&mut self, detail: &str) -> Step {
        match self.state {
            State::Forwarding(_) => self.fail(Failure::Origin(detail.to_owned())),
            _ => self.out_of_order("unreachable"),
        }
    }

    fn decide(
        &mut self,
        cfg: &Config,
        loaded: Loaded,
        changes: Changes,
        entropy: &mut dyn Entropy,
        after: After,
    ) -> Step {
        let outcome = match session::finish(cfg, loaded, changes, self.now, entropy, self.kv) {
            Ok(o) => o,
            Err(FinishError::TooLarge { size }) => return self.fail(Failure::TooLarge(size)),
        };
        let mut ops = VecDeque::new();
        let put = outcome.kv_put.is_some();
        if self.kv {
            // The put first, so that a session that moves keys never exists nowhere.
            ops.extend(outcome.kv_put.map(Step::KvPut));
            ops.extend(
                outcome
                    .kv_delete
                    .into_iter()
                    .map(|key| Step::KvDelete { key }),
            );
        }
        self.state = State::Writing {
            ops,
            set_cookie: outcome.set_cookie,
            put,
            after,
        };
        self.next_write(cfg)
    }

    /// The result of a [`Step::KvPut`] or [`Step::KvDelete`]. After an error no more
    /// writes are asked for; `SESSION_KV_FAILURE` decides the answer.
    pub fn written(&mut self, cfg: &Config, result: Result<(), StoreError>) -> Step {
        let State::Writing {
            ops,
            set_cookie,
            put,
            after,
        } = &mut self.state
        else {
            return self.out_of_order("written");
        };
        let Err(e) = result else {
            return self.next_write(cfg);
        };
        match (after, cfg.kv_failure) {
            (After::Origin { .. }, KvFailure::Open) => {
                // Keep the browser's current cookie rather than point it at a record
                // that was never written.
                if *put {
                    *set_cookie = None;
                }
                ops.clear();
                self.log(
                    "error",
                    "kv_unavailable",
                    json!({ "op": e.op, "error": e.detail, "policy": "open" }),
                );
                self.next_write(cfg)
            }
            _ => self.fail(Failure::Store(e)),
        }
    }

    fn next_write(&mut self, cfg: &Config) -> Step {
        let State::Writing {
            mut ops,
            set_cookie,
            put,
            after,
        } = mem::replace(&mut self.state, State::Done)
        else {
            return self.out_of_order("next_write");
        };
        if let Some(op) = ops.pop_front() {
            self.state = State::Writing {
                ops,
                set_cookie,
                put,
                after,
            };
            return op;
        }
        match after {
            After::Origin { reserved } if !reserved && set_cookie.is_none() => Step::Pass,
            After::Origin { .. } => Step::Rewrap { set_cookie },
            After::Logout { next } => {
                let sc = set_cookie.unwrap_or_else(|| session::clearing_cookie(cfg));
                Step::Reply(match next {
                    Some(n) => Reply::new(303, TEXT, "")
                        .with("location", n)
                        .with("set-cookie", sc),
                    None => Reply::new(204, TEXT, "").with("set-cookie", sc),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::tests::CountingEntropy;
    use crate::session::tests::{config, T0};

    const URL: &str = "https://app.example/account?tab=1";

    fn get<'a>(cookie: Option<&'a str>) -> Incoming<'a> {
        Incoming {
            method: "GET",
            url: URL,
            cookie,
            ..Default::default()
        }
    }

    fn kv() -> Bindings {
        Bindings {
            kv: true,
            ..Default::default()
        }
    }

    fn start(cfg: &Config, b: Bindings, req: &Incoming<'_>, now: u64) -> (Exchange, Step) {
        Exchange::start(cfg, b, req, now, &mut CountingEntropy(1))
    }

    /// The origin's plain 200, with no control headers.
    const OK: Answer<'static> = Answer {
        status: 200,
        reserved: false,
        set: None,
        action: None,
        max_age: None,
    };

    /// An anonymous request, forwarded: the exchange waits for the origin's answer.
    fn forwarded(cfg: &Config) -> Exchange {
        let (ex, step) = start(cfg, Bindings::default(), &get(None), T0);
        forward(step);
        ex
    }

    fn answer_with(ex: &mut Exchange, cfg: &Config, a: &Answer<'_>) -> Step {
        ex.answered(cfg, a, &mut CountingEntropy(1))
    }

    fn forward(step: Step) -> Forward {
        match step {
            Step::Forward(f) => f,
            other => panic!("expected a forward, got {other:?}"),
        }
    }

    fn reply(step: Step) -> Reply {
        match step {
            Step::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn set_cookie(step: Step) -> String {
        match step {
            Step::Rewrap {
                set_cookie: Some(sc),
            } => sc,
            other => panic!("expected a Set-Cookie, got {other:?}"),
        }
    }

    /// Signs in with `data` through the exchange; returns the cookie header to send.
    fn sign_in(cfg: &Config, b: Bindings, data: &str) -> (String, Vec<Step>) {
        let (mut ex, step) = start(cfg, b, &get(None), T0);
        forward(step);
        let answer = Answer {
            status: 200,
            reserved: true,
            set: Some(data),
            ..Default::default()
        };
        let mut step = ex.answered(cfg, &answer, &mut CountingEntropy(2));
        let mut writes = Vec::new();
        while let Step::KvPut(_) | Step::KvDelete { .. } = step {
            writes.push(step);
            step = ex.written(cfg, Ok(()));
        }
        let sc = set_cookie(step);
        let pair = sc.split(';').next().unwrap().to_owned();
        (pair, writes)
    }

    #[test]
    fn anonymous_request_is_forwarded_then_passed_through() {
        let cfg = config(&[]);
        let req = Incoming {
            cookie: Some("theme=dark"),
            client_ip: Some("203.0.113.9"),
            forwarded_for: Some("198.51.100.1"),
            ..get(None)
        };
        let (mut ex, step) = start(&cfg, Bindings::default(), &req, T0);
        let f = forward(step);
        assert_eq!(f.url, URL, "route mode forwards to the request's own URL");
        assert!(!f.via_service);
        assert_eq!(f.cookie, CookieEdit::Set("theme=dark".into()));
        assert_eq!(f.session.status, "none");
        assert_eq!(f.session.session, None);
        assert_eq!(
            f.forwarded_for.as_deref(),
            Some("198.51.100.1, 203.0.113.9")
        );
        assert_eq!(
            (f.forwarded_host.as_str(), f.forwarded_proto.as_str()),
            ("app.example", "https")
        );
        let answer = OK;
        assert_eq!(answer_with(&mut ex, &cfg, &answer), Step::Pass);
        assert!(ex.take_logs().is_empty());
    }

    #[test]
    fn valid_cookie_session_is_forwarded_and_the_session_cookie_removed() {
        let cfg = config(&[
            ("SESSION_STORE", "cookie"),
            ("ORIGIN_URL", "http://127.0.0.1:9000"),
        ]);
        let (cookie, writes) = sign_in(&cfg, Bindings::default(), r#"{"user":"ada"}"#);
        assert!(writes.is_empty(), "cookie mode never writes KV");
        let (mut ex, step) = start(&cfg, Bindings::default(), &get(Some(&cookie)), T0 + 1);
        let f = forward(step);
        assert_eq!(f.url, "http://127.0.0.1:9000/account?tab=1");
        assert_eq!(f.cookie, CookieEdit::Remove);
        assert_eq!(f.session.status, "valid");
        assert!(f.session.session.is_some() && f.session.handle.is_some());
        let pass = ex.answered(&cfg, &OK, &mut CountingEntropy(3));
        assert_eq!(
            pass,
            Step::Pass,
            "nothing to change: the response goes through untouched"
        );
    }

    #[test]
    fn reserved_headers_alone_are_stripped_without_a_cookie() {
        let cfg = config(&[]);
        let mut ex = forwarded(&cfg);
        let answer = Answer {
            status: 200,
            reserved: true,
            ..Default::default()
        };
        assert_eq!(
            answer_with(&mut ex, &cfg, &answer),
            Step::Rewrap { set_cookie: None }
        );
    }

    #[test]
    fn control_headers_on_5xx_are_ignored_and_logged() {
        let cfg = config(&[]);
        let mut ex = forwarded(&cfg);
        let answer = Answer {
            status: 503,
            reserved: true,
            set: Some(r#"{"user":"mallory"}"#),
            ..Default::default()
        };
        assert_eq!(
            answer_with(&mut ex, &cfg, &answer),
            Step::Rewrap { set_cookie: None }
        );
        let logs = ex.take_logs();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].event, "control_ignored");
    }

    #[test]
    fn bad_control_header_is_logged_without_its_value() {
        let cfg = config(&[]);
        let mut ex = forwarded(&cfg);
        let answer = Answer {
            status: 200,
            reserved: true,
            set: Some(r#"{"secret-value":"#),
            ..Default::default()
        };
        answer_with(&mut ex, &cfg, &answer);
        let logs = ex.take_logs();
        assert_eq!(logs[0].event, "bad_control_header");
        assert!(
            !logs[0].line().contains("secret-value"),
            "{}",
            logs[0].line()
        );
    }

    #[test]
    fn kv_session_reads_its_record_and_writes_nothing_when_unchanged() {
        let cfg = config(&[("SESSION_STORE", "kv")]);
        let (cookie, writes) = sign_in(&cfg, kv(), r#"{"user":"ada"}"#);
        let Some(Step::KvPut(put)) = writes.first() else {
            panic!("{writes:?}")
        };
        let (mut ex, step) = start(&cfg, kv(), &get(Some(&cookie)), T0 + 1);
        assert_eq!(
            step,
            Step::KvGet {
                key: put.key.clone()
            }
        );
        let f = forward(ex.record(&cfg, Ok(Some(put.value.clone())), &mut CountingEntropy(3)));
        assert_eq!(f.session.status, "valid");
        let answer = OK;
        assert_eq!(
            ex.answered(&cfg, &answer, &mut CountingEntropy(4)),
            Step::Pass
        );
    }

    #[test]
    fn kv_record_missing_means_invalid_and_the_cookie_is_cleared() {
        let cfg = config(&[("SESSION_STORE", "kv")]);
        let (cookie, _) = sign_in(&cfg, kv(), r#"{"user":"ada"}"#);
        let (mut ex, _) = start(&cfg, kv(), &get(Some(&cookie)), T0 + 1);
        let f = forward(ex.record(&cfg, Ok(None), &mut CountingEntropy(3)));
        assert_eq!(f.session.status, "invalid");
        let sc = set_cookie(ex.answered(&cfg, &OK, &mut CountingEntropy(4)));
        assert!(sc.contains("Max-Age=0"), "{sc}");
    }

    #[test]
    fn kv_read_failure_follows_the_policy() {
        let err = || StoreError {
            op: "get",
            detail: "boom".into(),
        };
        for (policy, open) in [("closed", false), ("open", true)] {
            let cfg = config(&[("SESSION_STORE", "kv"), ("SESSION_KV_FAILURE", policy)]);
            let (cookie, _) = sign_in(&cfg, kv(), r#"{"user":"ada"}"#);
            let (mut ex, _) = start(&cfg, kv(), &get(Some(&cookie)), T0 + 1);
            let step = ex.record(&cfg, Err(err()), &mut CountingEntropy(3));
            if open {
                let f = forward(step);
                assert_eq!(f.session.status, "invalid");
                let answer = Answer {
                    status: 200,
                    ..Default::default()
                };
                assert_eq!(
                    ex.answered(&cfg, &answer, &mut CountingEntropy(4)),
                    Step::Pass,
                    "the browser's cookie is left alone"
                );
            } else {
                let r = reply(step);
                assert_eq!(r.status, 503);
                assert_eq!(r.headers, vec![("retry-after", "5".to_owned())]);
            }
            let logs = ex.take_logs();
            assert_eq!(logs[0].event, "kv_unavailable", "{policy}");
        }
    }

    #[test]
    fn kv_write_failure_follows_the_policy() {
        let err = || StoreError {
            op: "put",
            detail: "boom".into(),
        };
        for (policy, open) in [("closed", false), ("open", true)] {
            let cfg = config(&[("SESSION_STORE", "kv"), ("SESSION_KV_FAILURE", policy)]);
            let (mut ex, step) = start(&cfg, kv(), &get(None), T0);
            forward(step);
            let answer = Answer {
                status: 200,
                reserved: true,
                set: Some(r#"{"user":"ada"}"#),
                ..Default::default()
            };
            let step = ex.answered(&cfg, &answer, &mut CountingEntropy(2));
            assert!(matches!(step, Step::KvPut(_)), "{step:?}");
            let step = ex.written(&cfg, Err(err()));
            if open {
                assert_eq!(
                    step,
                    Step::Rewrap { set_cookie: None },
                    "no cookie pointing at a record that was never written"
                );
            } else {
                assert_eq!(reply(step).status, 503);
            }
        }
    }

    #[test]
    fn auto_mode_without_a_binding_keeps_sessions_in_the_cookie() {
        let cfg = config(&[]);
        let big = format!(r#"{{"blob":"{}"}}"#, "y".repeat(7000));
        let mut ex = forwarded(&cfg);
        let answer = Answer {
            status: 200,
            reserved: true,
            set: Some(&big),
            ..Default::default()
        };
        let r = reply(ex.answered(&cfg, &answer, &mut CountingEntropy(2)));
        assert_eq!(
            (r.status, r.body.as_str()),
            (500, "keycard: internal error")
        );
        let logs = ex.take_logs();
        assert_eq!(logs[0].event, "session_too_large");
        assert!(!logs[0].line().contains("yyyy"));
    }

    #[test]
    fn missing_bindings_fail_closed_naming_the_variable() {
        let cfg = config(&[("SESSION_STORE", "kv")]);
        let (mut ex, step) = start(&cfg, Bindings::default(), &get(None), T0);
        assert_eq!(reply(step).status, 500);
        assert_eq!(ex.take_logs()[0].detail["var"], "SESSION_KV_BINDING");

        let cfg = config(&[("ORIGIN_SERVICE", "APP")]);
        let (mut ex, step) = start(&cfg, Bindings::default(), &get(None), T0);
        assert_eq!(reply(step).body, "keycard: misconfigured");
        assert_eq!(ex.take_logs()[0].detail["var"], "ORIGIN_SERVICE");

        let b = Bindings {
            origin_service: true,
            ..Default::default()
        };
        assert!(forward(start(&cfg, b, &get(None), T0).1).via_service);
    }

    #[test]
    fn misconfiguration_is_an_opaque_500() {
        let e = ConfigError {
            var: "SESSION_SECRET",
            problem: "is missing".into(),
        };
        let (mut ex, step) = Exchange::misconfigured(&e);
        let r = reply(step);
        assert_eq!((r.status, r.body.as_str()), (500, "keycard: misconfigured"));
        assert_eq!(ex.take_logs()[0].detail["var"], "SESSION_SECRET");
    }

    #[test]
    fn unreachable_origin_is_a_502() {
        let cfg = config(&[]);
        let (mut ex, _) = start(&cfg, Bindings::default(), &get(None), T0);
        let r = reply(ex.unreachable("connection refused"));
        assert_eq!(
            (r.status, r.body.as_str()),
            (502, "keycard: origin unreachable")
        );
        assert_eq!(ex.take_logs()[0].event, "origin_unreachable");
    }

    #[test]
    fn calls_out_of_order_are_internal_errors_not_panics() {
        let cfg = config(&[]);
        let (mut ex, _) = start(&cfg, Bindings::default(), &get(None), T0);
        assert_eq!(reply(ex.written(&cfg, Ok(()))).status, 500);
        assert_eq!(
            reply(ex.record(&cfg, Ok(None), &mut CountingEntropy(1))).status,
            500
        );
        let answer = Answer::default();
        assert_eq!(reply(answer_with(&mut ex, &cfg, &answer)).status, 500);
        assert_eq!(reply(ex.unreachable("x")).status, 500);
    }

    #[test]
    fn endpoints_answer_without_the_origin() {
        let cfg = config(&[("KEYCARD_INSPECT", "true")]);
        let at = |method: &'static str, url: &'static str| Incoming {
            method,
            url,
            ..Default::default()
        };
        let health = reply(start(&cfg, kv(), &at("GET", "https://h/.keycard/health"), T0).1);
        assert_eq!((health.status, health.content_type), (200, JSON));
        assert!(health.body.contains(r#""kv":true"#), "{}", health.body);
        let r = reply(start(&cfg, kv(), &at("POST", "https://h/.keycard/health"), T0).1);
        assert_eq!(
            (r.status, r.headers.clone()),
            (405, vec![("allow", "GET".to_owned())])
        );
        let r = reply(start(&cfg, kv(), &at("GET", "https://h/.keycard"), T0).1);
        assert_eq!(
            (r.status, r.headers.clone()),
            (308, vec![("location", "/.keycard/".to_owned())])
        );
        assert_eq!(
            reply(start(&cfg, kv(), &at("GET", "https://h/.keycard/nope!"), T0).1).status,
            404
        );
        let r = reply(start(&cfg, kv(), &at("GET", "https://h/.keycard/session"), T0).1);
        assert!(r.body.contains(r#""status":"none""#), "{}", r.body);

        // Assets come from the assets binding, when there is one.
        let asset = at("GET", "https://h/.keycard/");
        assert_eq!(reply(start(&cfg, kv(), &asset, T0).1).status, 404);
        let b = Bindings {
            assets: true,
            ..kv()
        };
        assert_eq!(
            start(&cfg, b, &asset, T0).1,
            Step::Asset {
                url: "https://h/index.html".into()
            }
        );
    }

    #[test]
    fn logout_deletes_the_record_and_clears_the_cookie() {
        let cfg = config(&[("SESSION_STORE", "kv")]);
        let (cookie, writes) = sign_in(&cfg, kv(), r#"{"user":"ada"}"#);
        let Some(Step::KvPut(put)) = writes.first() else {
            panic!("{writes:?}")
        };
        let req = Incoming {
            method: "POST",
            url: "https://h/.keycard/logout?next=/bye",
            cookie: Some(&cookie),
            fetch_site: Some("same-origin"),
            ..Default::default()
        };
        let (mut ex, step) = start(&cfg, kv(), &req, T0 + 1);
        assert!(matches!(step, Step::KvGet { .. }));
        let step = ex.record(&cfg, Ok(Some(put.value.clone())), &mut CountingEntropy(3));
        assert_eq!(
            step,
            Step::KvDelete {
                key: put.key.clone()
            }
        );
        let r = reply(ex.written(&cfg, Ok(())));
        assert_eq!(r.status, 303);
        assert_eq!(r.headers[0], ("location", "/bye".to_owned()));
        assert!(r.headers[1].1.contains("Max-Age=0"));

        // A logout that cannot delete the record fails closed whatever the policy:
        // answering "signed out" while the record lives on would be a lie.
        let cfg = config(&[("SESSION_STORE", "kv"), ("SESSION_KV_FAILURE", "open")]);
        let (cookie, writes) = sign_in(&cfg, kv(), r#"{"user":"ada"}"#);
        let Some(Step::KvPut(put)) = writes.first() else {
            panic!()
        };
        let req = Incoming {
            cookie: Some(&cookie),
            ..req
        };
        let (mut ex, _) = start(&cfg, kv(), &req, T0 + 1);
        ex.record(&cfg, Ok(Some(put.value.clone())), &mut CountingEntropy(3));
        let err = StoreError {
            op: "delete",
            detail: "boom".into(),
        };
        assert_eq!(reply(ex.written(&cfg, Err(err))).status, 503);
    }

    #[test]
    fn cross_site_logout_is_refused() {
        let cfg = config(&[]);
        let req = Incoming {
            method: "POST",
            url: "https://h/.keycard/logout",
            fetch_site: Some("cross-site"),
            ..Default::default()
        };
        let (mut ex, step) = start(&cfg, Bindings::default(), &req, T0);
        assert_eq!(reply(step).status, 403);
        assert_eq!(ex.take_logs()[0].event, "logout_refused");
    }

    #[test]
    fn a_forged_cookie_is_logged_without_its_value_and_cleared() {
        let cfg = config(&[]);
        let forged = format!(
            "{}=v1.AAAA.1.1.1.c2lk.e30.bWFj-forged-value",
            cfg.cookie.name
        );
        let (mut ex, step) = start(&cfg, Bindings::default(), &get(Some(&forged)), T0);
        let f = forward(step);
        assert_eq!(f.session.status, "invalid");
        assert_eq!(f.session.session, None);
        let logs = ex.take_logs();
        assert_eq!(logs[0].event, "bad_cookie");
        assert!(!logs[0].line().contains("forged-value"));
        let answer = OK;
        let sc = set_cookie(answer_with(&mut ex, &cfg, &answer));
        assert!(sc.starts_with(&format!("{}=;", cfg.cookie.name)), "{sc}");
        assert!(sc.contains("Max-Age=0"), "{sc}");
    }
}
