//! One request's way through keycard, as a state machine whose decisions are data.
//!
//! The edge starts an [`Exchange`] with what it read from the request and gets a
//! [`Step`] back: read or write a KV record, forward the request to the origin, serve
//! an inspector asset, or answer. It carries the step out and hands the result back
//! ([`Exchange::record`], [`Exchange::written`], [`Exchange::answered`],
//! [`Exchange::unreachable`], [`Exchange::timed_out`]), which returns the next step,
//! until a final one.
//!
//! Nothing here awaits or touches the platform. The Worker drives the steps from a few
//! lines of JS (`src/entry.js`), so no Rust future or promise exists per request (see
//! BENCHMARKS.md for what that bought), and the tests drive the very same steps natively
//! against a [`MemoryStore`](crate::store::memory::MemoryStore) with [`crate::store::settle`].
//!
//! Every header name the edge sets or deletes is decided here, and crosses to the edge
//! as a list of edits it applies without looking ([`Forward::wire`], [`Rewrap::wire`]).
//!
//! Every error that is not the client's doing becomes a reply in one place
//! ([`Failure::reply`]): an opaque body, the detail in a [`Log`] line.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::mem;

use serde_json::{json, Value};

use crate::config::{Config, ConfigError, KvFailure, StoreMode};
use crate::control::{self, Changes};
use crate::cross_origin::{self, Provenance};
use crate::endpoints::{self, Endpoint};
use crate::forward;
use crate::headers::{self, HeaderList};
use crate::keys::Entropy;
use crate::session::{self, FinishError, KvPut, Loaded, Pending, Read, SessionHeaders, Status};
use crate::store::StoreError;

/// The `cacheTtl` of every KV read, in seconds: KV's minimum. A location that cached a
/// record serves it for at most this long after it changed or was deleted elsewhere.
pub const KV_CACHE_TTL: u64 = 30;

/// What the edge read from the client's request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Incoming<'a> {
    /// The method, as sent.
    pub method: &'a str,
    /// The absolute URL, as the runtime gives it.
    pub url: &'a str,
    /// Every request header.
    pub headers: HeaderList<'a>,
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

/// Header edits and forwarding instructions in the form the edge applies them: one per
/// line, tagged by its first character. This is the whole Rust-to-JS contract for
/// headers; `src/entry.js` (`applyEdits`, `forward`) reads it without knowing any
/// header name.
///
/// | line | meaning |
/// | --- | --- |
/// | `-name` | delete the header `name` |
/// | `=name:value` | set it (replacing any value) |
/// | `+name:value` | append it (for `Set-Cookie`) |
/// | `Uurl` | forward to `url` (requests only) |
/// | `Sbinding` | through this service binding (requests only) |
/// | `Tms` | give up on the origin after `ms` milliseconds (requests only) |
/// | `B` | forward without the body (requests only) |
///
/// Names never hold `:` or a newline, values never hold a newline, so the form is
/// unambiguous.
#[derive(Debug, Default)]
struct Wire(String);

impl Wire {
    fn line(&mut self, tag: char, text: &str) {
        self.0.push(tag);
        self.0.push_str(text);
        self.0.push('\n');
    }

    fn header(&mut self, tag: char, name: &str, value: &str) {
        let _ = writeln!(self.0, "{tag}{name}:{value}");
    }
}

/// How the forwarded request's `Cookie` header changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieEdit {
    /// Forward it as it came (`SESSION_FORWARD_COOKIE=true`, there was none, or it
    /// holds no session cookie).
    Keep,
    /// Replace it: the client's cookies without the session cookie.
    Set(String),
    /// Remove it: the session cookie was the only one.
    Remove,
}

/// The request to send to the origin: the client's method, body and headers, with the
/// reserved headers dropped (see [`crate::headers`]) and these changes made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// Where to send it.
    pub url: String,
    /// The `ORIGIN_SERVICE` binding to send it through, rather than the network.
    pub service: Option<String>,
    /// Send it without the body: a `GET` or `HEAD` cannot carry one to the origin.
    pub drop_body: bool,
    /// `ORIGIN_TIMEOUT`, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// The client's headers to delete, by their names as sent.
    pub strip: Vec<String>,
    /// The `Cookie` header.
    pub cookie: CookieEdit,
    /// `X-Session`, `X-Session-Status`, `X-Session-Id`, `X-Session-Expires`.
    pub session: SessionHeaders,
    /// `X-Forwarded-For`, when there is anything to say.
    pub forwarded_for: Option<String>,
    /// `X-Forwarded-Host`.
    pub forwarded_host: String,
    /// `X-Forwarded-Proto`.
    pub forwarded_proto: String,
    /// `X-Real-IP`, from `CF-Connecting-IP` when there is one.
    pub real_ip: Option<String>,
}

impl Forward {
    /// The plan in the edge's [`Wire`] form.
    pub fn wire(&self) -> String {
        let mut w = Wire::default();
        w.line('U', &self.url);
        if let Some(s) = &self.service {
            w.line('S', s);
        }
        if let Some(ms) = self.timeout_ms {
            w.line('T', &ms.to_string());
        }
        if self.drop_body {
            w.line('B', "");
        }
        for name in &self.strip {
            w.line('-', name);
        }
        match &self.cookie {
            CookieEdit::Keep => {}
            CookieEdit::Set(c) => w.header('=', "cookie", c),
            CookieEdit::Remove => w.line('-', "cookie"),
        }
        let s = &self.session;
        if let Some(v) = &s.session {
            w.header('=', "x-session", v);
        }
        w.header('=', "x-session-status", s.status);
        if let Some(v) = &s.handle {
            w.header('=', "x-session-id", v);
        }
        if let Some(v) = s.expires {
            w.header('=', "x-session-expires", &v.to_string());
        }
        if let Some(v) = &self.forwarded_for {
            w.header('=', "x-forwarded-for", v);
        }
        w.header('=', "x-forwarded-host", &self.forwarded_host);
        w.header('=', "x-forwarded-proto", &self.forwarded_proto);
        if let Some(v) = &self.real_ip {
            w.header('=', "x-real-ip", v);
        }
        w.0
    }
}

/// What the origin answered.
#[derive(Debug, Clone, Copy, Default)]
pub struct Answer<'a> {
    /// The status code.
    pub status: u16,
    /// Every response header.
    pub headers: HeaderList<'a>,
}

/// The origin's response as the client gets it: without any alias of the control
/// headers, with keycard's `Set-Cookie` appended and a `Cache-Control` that keeps it
/// out of shared caches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrap {
    /// The origin's headers to delete, by name.
    pub strip: Vec<String>,
    /// The session cookie to append.
    pub set_cookie: Option<String>,
    /// The `Cache-Control` to set (with `set_cookie` only).
    pub cache_control: Option<String>,
}

impl Rewrap {
    /// The edits in the edge's [`Wire`] form.
    pub fn wire(&self) -> String {
        let mut w = Wire::default();
        for name in &self.strip {
            w.line('-', name);
        }
        if let Some(sc) = &self.set_cookie {
            w.header('+', "set-cookie", sc);
        }
        if let Some(cc) = &self.cache_control {
            w.header('=', "cache-control", cc);
        }
        w.0
    }
}

/// What the edge must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Step {
    /// Answer with this; done.
    Reply(Reply),
    /// Read the record at `key` with `cacheTtl` [`KV_CACHE_TTL`], then
    /// [`Exchange::record`].
    KvGet { key: String },
    /// Write this record, then [`Exchange::written`].
    KvPut(KvPut),
    /// Delete the record at `key`, then [`Exchange::written`].
    KvDelete { key: String },
    /// Send this to the origin, then [`Exchange::answered`] (or
    /// [`Exchange::unreachable`] or [`Exchange::timed_out`]).
    Forward(Box<Forward>),
    /// Fetch `url` from the assets binding and answer with it as it is; done.
    Asset { url: String },
    /// Answer with the origin's response untouched; done.
    Pass,
    /// Answer with the origin's response, edited; done.
    Rewrap(Rewrap),
}

impl Step {
    /// Whether the exchange is over after this step.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Step::Reply(_) | Step::Asset { .. } | Step::Pass | Step::Rewrap(_)
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
    /// The origin did not answer within `ORIGIN_TIMEOUT` (milliseconds).
    OriginTimeout(u64),
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
        }
    }
}

/// Whether the origin's response came out of a cache (its control headers were meant
/// for whoever caused it to be stored, not for this client).
fn from_cache(h: &HeaderList<'_>) -> bool {
    h.get("age").is_some()
        || h.get("cf-cache-status").is_some_and(|v| {
            ["hit", "stale", "updating", "revalidated"]
                .iter()
                .any(|s| v.trim().eq_ignore_ascii_case(s))
        })
}

/// The `Cache-Control` for a response that carries keycard's `Set-Cookie`, so that no
/// shared cache stores it. An origin's `no-store` already says so and is kept as it is
/// (`None`); otherwise `private` replaces `public`, `s-maxage` and `proxy-revalidate`,
/// and the origin's other directives stay.
fn private_cache_control(origin: Option<&str>) -> Option<String> {
    let directives = || {
        origin
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
    };
    if directives().any(|d| d.eq_ignore_ascii_case("no-store")) {
        return None;
    }
    let mut out = String::from("private");
    for d in directives() {
        let name = d.split('=').next().unwrap_or("").trim();
        if ["public", "private", "s-maxage", "proxy-revalidate"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            continue;
        }
        out.push_str(", ");
        out.push_str(d);
    }
    Some(out)
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
    /// Hand back the origin's response: `strip` its control-header aliases; its
    /// `Cache-Control` was `cache_control`.
    Origin {
        strip: Vec<String>,
        cache_control: Option<String>,
    },
    /// Answer the logout.
    Logout { next: Option<String> },
}

/// One KV write to make.
#[derive(Debug)]
struct Write {
    step: Step,
    /// It ends a session (a tombstone or the revoked record's deletion): if it fails,
    /// the request fails closed whatever `SESSION_KV_FAILURE` says, because answering
    /// "signed out" while the record lives on would be a lie.
    revokes: bool,
}

/// The writes still to make, and what to answer once they are made.
#[derive(Debug)]
struct Writes {
    ops: VecDeque<Write>,
    set_cookie: Option<String>,
    /// The first op is a record's put, whose cookie is `set_cookie`.
    put: bool,
    after: After,
}

#[derive(Debug)]
enum State {
    /// Waiting for [`Exchange::record`] with the session's record.
    Loading { pending: Pending, then: Then },
    /// Waiting for [`Exchange::answered`].
    Forwarding(Loaded),
    /// Waiting for [`Exchange::record`] with the tombstone looked at before the put.
    Checking(Writes),
    /// Waiting for [`Exchange::written`].
    Writing(Writes),
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
        let plan = forward_plan(cfg, req, parts);
        let cookie = req.headers.get("cookie");
        self.load(cfg, cookie, Then::Forward(Box::new(plan)), entropy)
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
        let cookie = req.headers.get("cookie");
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
                let cookie_len = cookie
                    .and_then(|c| session::cookie_values(c, &cfg.cookie.name).next())
                    .map_or(0, |v| v.len() + cfg.cookie.name.len() + 1);
                self.load(cfg, cookie, Then::Inspect { cookie_len }, entropy)
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
            Endpoint::Logout { next } => {
                let from = Provenance {
                    fetch_site: req.headers.get("sec-fetch-site"),
                    origin: req.headers.get("origin"),
                };
                let own = format!("{}://{}", parts.scheme, parts.host);
                if !cross_origin::allowed(from, &own) {
                    self.log(
                        "warn",
                        "logout_refused",
                        json!({ "reason": "cross-origin request" }),
                    );
                    return done(Reply::opaque(403, "keycard: cross-origin logout refused"));
                }
                self.load(cfg, cookie, Then::Logout { next }, entropy)
            }
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

    /// The result of a [`Step::KvGet`]: the value's text (`None` when there is none),
    /// or the store's error. Applies `SESSION_KV_FAILURE` to an error.
    pub fn record(
        &mut self,
        cfg: &Config,
        found: Result<Option<String>, StoreError>,
        entropy: &mut dyn Entropy,
    ) -> Step {
        match mem::replace(&mut self.state, State::Done) {
            State::Loading { pending, then } => {
                let loaded = match found {
                    Ok(record) => pending
                        .complete(record.as_deref())
                        .map_or_else(|| Loaded::without(Status::Invalid), Loaded::with),
                    Err(e) if cfg.kv_failure == KvFailure::Open => {
                        self.log_open_failure(&e);
                        Loaded::store_unavailable()
                    }
                    Err(e) => return self.fail(Failure::Store(e)),
                };
                self.loaded(cfg, loaded, then, entropy)
            }
            State::Checking(writes) => self.checked(cfg, writes, found),
            _ => self.out_of_order("record"),
        }
    }

    fn log_open_failure(&mut self, e: &StoreError) {
        self.log(
            "error",
            "kv_unavailable",
            json!({ "op": e.op, "error": e.detail, "policy": "open" }),
        );
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
                Step::Forward(plan)
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
    /// they cannot be trusted), then asks for the KV writes, then for the response.
    pub fn answered(
        &mut self,
        cfg: &Config,
        answer: &Answer<'_>,
        entropy: &mut dyn Entropy,
    ) -> Step {
        let State::Forwarding(loaded) = mem::replace(&mut self.state, State::Done) else {
            return self.out_of_order("answered");
        };
        let h = &answer.headers;
        let strip: Vec<String> = h
            .iter()
            .filter(|(name, _)| headers::is_session_alias(name))
            .map(|(name, _)| name.to_owned())
            .collect();
        let (changes, errors) = control::parse(
            h.get("x-session-set"),
            h.get("x-session-action"),
            h.get("x-session-max-age"),
        );
        for e in errors {
            self.log(
                "error",
                "bad_control_header",
                json!({ "error": e.to_string() }),
            );
        }
        let ignored = if changes.is_empty() {
            None
        } else if answer.status >= 500 {
            Some("origin answered 5xx")
        } else if from_cache(h) {
            Some("the response came from a cache")
        } else if loaded.store_unavailable {
            Some("the session store is unavailable")
        } else {
            None
        };
        let changes = match ignored {
            Some(reason) => {
                self.log(
                    "warn",
                    "control_ignored",
                    json!({ "reason": reason, "status": answer.status }),
                );
                Changes::default()
            }
            None => changes,
        };
        let after = After::Origin {
            strip,
            cache_control: h.get("cache-control").map(str::to_owned),
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

    /// The origin did not answer within `ORIGIN_TIMEOUT`: no session change applies.
    pub fn timed_out(&mut self, cfg: &Config) -> Step {
        match (&self.state, cfg.origin_timeout) {
            (State::Forwarding(_), Some(secs)) => {
                self.fail(Failure::OriginTimeout(secs.saturating_mul(1000)))
            }
            _ => self.out_of_order("timed_out"),
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
            let write = |step, revokes| Write { step, revokes };
            // The put first, so that a session that moves keys never exists nowhere;
            // a revocation's tombstone before its record's deletion.
            ops.extend(outcome.kv_put.map(|p| write(Step::KvPut(p), false)));
            for r in outcome.kv_revoke {
                ops.push_back(write(Step::KvPut(r.tombstone), true));
                ops.push_back(write(Step::KvDelete { key: r.record }, true));
            }
            ops.extend(
                outcome
                    .kv_delete
                    .into_iter()
                    .map(|key| write(Step::KvDelete { key }, false)),
            );
        }
        let writes = Writes {
            ops,
            set_cookie: outcome.set_cookie,
            put,
            after,
        };
        match outcome.kv_check {
            Some(key) if self.kv => {
                self.state = State::Checking(writes);
                Step::KvGet { key }
            }
            _ => self.next_write(cfg, writes),
        }
    }

    /// The tombstone looked at before a session's put: absent, the writes go ahead;
    /// present, the session was revoked (at another location, whose deletion has not
    /// reached this one yet), so it is not written, its record is deleted here too and
    /// the browser's cookie cleared.
    fn checked(
        &mut self,
        cfg: &Config,
        mut writes: Writes,
        found: Result<Option<String>, StoreError>,
    ) -> Step {
        match found {
            Ok(None) => self.next_write(cfg, writes),
            Ok(Some(_)) => {
                self.log(
                    "warn",
                    "session_revoked",
                    json!({ "reason": "a tombstone exists for this session" }),
                );
                let Some(Write {
                    step: Step::KvPut(put),
                    ..
                }) = writes.ops.pop_front()
                else {
                    return self.out_of_order("checked");
                };
                writes.ops = VecDeque::from([Write {
                    step: Step::KvDelete { key: put.key },
                    revokes: true,
                }]);
                writes.put = false;
                writes.set_cookie = Some(session::clearing_cookie(cfg));
                self.next_write(cfg, writes)
            }
            Err(e) => self.store_failed(cfg, writes, e),
        }
    }

    /// The result of a [`Step::KvPut`] or [`Step::KvDelete`]. After an error no more
    /// writes are asked for; `SESSION_KV_FAILURE` decides the answer.
    pub fn written(&mut self, cfg: &Config, result: Result<(), StoreError>) -> Step {
        let State::Writing(mut writes) = mem::replace(&mut self.state, State::Done) else {
            return self.out_of_order("written");
        };
        match result {
            Ok(()) => {
                writes.ops.pop_front();
                self.next_write(cfg, writes)
            }
            Err(e) => self.store_failed(cfg, writes, e),
        }
    }

    /// A KV operation on the way to the origin's response failed. A revocation, or a
    /// logout, fails closed; otherwise `SESSION_KV_FAILURE` decides.
    fn store_failed(&mut self, cfg: &Config, mut writes: Writes, e: StoreError) -> Step {
        let revoking = writes.ops.front().is_some_and(|w| w.revokes);
        match (&writes.after, cfg.kv_failure) {
            (After::Origin { .. }, KvFailure::Open) if !revoking => {
                // Keep the browser's current cookie rather than point it at a record
                // that was never written.
                if writes.put {
                    writes.set_cookie = None;
                }
                writes.ops.clear();
                self.log_open_failure(&e);
                self.next_write(cfg, writes)
            }
            _ => self.fail(Failure::Store(e)),
        }
    }

    /// Asks for the next write (which stays first in the queue until it is made), or
    /// for the answer once they are all made.
    fn next_write(&mut self, cfg: &Config, writes: Writes) -> Step {
        if let Some(op) = writes.ops.front() {
            let step = op.step.clone();
            self.state = State::Writing(writes);
            return step;
        }
        match writes.after {
            After::Origin {
                strip,
                cache_control,
            } => {
                if strip.is_empty() && writes.set_cookie.is_none() {
                    return Step::Pass;
                }
                let cache_control = writes
                    .set_cookie
                    .as_ref()
                    .and_then(|_| private_cache_control(cache_control.as_deref()));
                Step::Rewrap(Rewrap {
                    strip,
                    set_cookie: writes.set_cookie,
                    cache_control,
                })
            }
            After::Logout { next } => {
                let sc = writes
                    .set_cookie
                    .unwrap_or_else(|| session::clearing_cookie(cfg));
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

/// The request-side parts of the forward: everything but the session's own headers,
/// which are known once the session is loaded.
fn forward_plan(cfg: &Config, req: &Incoming<'_>, parts: forward::UrlParts<'_>) -> Forward {
    let h = &req.headers;
    let bodiless = ["GET", "HEAD"]
        .iter()
        .any(|m| req.method.eq_ignore_ascii_case(m));
    let strip = h
        .iter()
        .map(|(name, _)| name)
        .filter(|name| {
            headers::is_reserved_request(name)
                || (bodiless && matches!(*name, "content-length" | "transfer-encoding"))
        })
        .map(str::to_owned)
        .collect();
    let cookie = match (h.get("cookie"), cfg.forward_cookie) {
        (Some(c), false) => match forward::strip_cookie(c, &cfg.cookie.name) {
            Some(rest) if rest == c => CookieEdit::Keep,
            Some(rest) => CookieEdit::Set(rest),
            None => CookieEdit::Remove,
        },
        _ => CookieEdit::Keep,
    };
    let client_ip = h.get("cf-connecting-ip");
    Forward {
        url: forward::origin_url(cfg.origin_url.as_ref().map(|o| o.0.as_str()), req.url),
        service: cfg.origin_service.clone(),
        drop_body: bodiless,
        timeout_ms: cfg.origin_timeout.map(|s| s.saturating_mul(1000)),
        strip,
        cookie,
        session: SessionHeaders {
            session: None,
            status: Status::None.as_str(),
            handle: None,
            expires: None,
        },
        forwarded_for: forward::forwarded_for(h.get("x-forwarded-for"), client_ip),
        forwarded_host: parts.host.to_owned(),
        forwarded_proto: parts.scheme.to_owned(),
        real_ip: client_ip.map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::tests::CountingEntropy;
    use crate::session::tests::{config, T0};

    const URL: &str = "https://app.example/account?tab=1";

    /// A header list in the edge's form from `(name, value)` pairs.
    fn hdrs(pairs: &[(&str, &str)]) -> String {
        pairs.iter().map(|(n, v)| format!("{n}:{v}\n")).collect()
    }

    /// A `Cookie` header list, or none.
    fn cookie_hdr(cookie: Option<&str>) -> String {
        cookie.map_or_else(String::new, |c| hdrs(&[("cookie", c)]))
    }

    fn get(headers: &str) -> Incoming<'_> {
        Incoming {
            method: "GET",
            url: URL,
            headers: HeaderList(headers),
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
        headers: HeaderList("content-type:text/html\n"),
    };

    fn answer(status: u16, headers: &str) -> Answer<'_> {
        Answer {
            status,
            headers: HeaderList(headers),
        }
    }

    /// An anonymous request, forwarded: the exchange waits for the origin's answer.
    fn forwarded(cfg: &Config, b: Bindings) -> Exchange {
        let (ex, step) = start(cfg, b, &get(""), T0);
        forward(step);
        ex
    }

    fn answer_with(ex: &mut Exchange, cfg: &Config, a: &Answer<'_>) -> Step {
        ex.answered(cfg, a, &mut CountingEntropy(1))
    }

    fn forward(step: Step) -> Forward {
        match step {
            Step::Forward(f) => *f,
            other => panic!("expected a forward, got {other:?}"),
        }
    }

    fn reply(step: Step) -> Reply {
        match step {
            Step::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn rewrap(step: Step) -> Rewrap {
        match step {
            Step::Rewrap(r) => r,
            other => panic!("expected a rewrap, got {other:?}"),
        }
    }

    fn set_cookie(step: Step) -> String {
        match rewrap(step).set_cookie {
            Some(sc) => sc,
            None => panic!("expected a Set-Cookie"),
        }
    }

    /// Carries out KV writes with `result` until another step comes; returns them and
    /// that step.
    fn write_all(ex: &mut Exchange, cfg: &Config, mut step: Step) -> (Vec<Step>, Step) {
        let mut writes = Vec::new();
        while let Step::KvPut(_) | Step::KvDelete { .. } = step {
            writes.push(step);
            step = ex.written(cfg, Ok(()));
        }
        (writes, step)
    }

    /// Signs in with `data` through the exchange; returns the cookie header to send and
    /// the KV writes made.
    fn sign_in(cfg: &Config, b: Bindings, data: &str) -> (String, Vec<Step>) {
        let mut ex = forwarded(cfg, b);
        let h = hdrs(&[("x-session-set", data)]);
        let step = ex.answered(cfg, &answer(200, &h), &mut CountingEntropy(2));
        let (writes, step) = write_all(&mut ex, cfg, step);
        let sc = set_cookie(step);
        let pair = sc.split(';').next().unwrap().to_owned();
        (pair, writes)
    }

    /// Signs in a KV session; returns its cookie header and its record's write.
    fn kv_session(cfg: &Config) -> (String, KvPut) {
        let (cookie, writes) = sign_in(cfg, kv(), r#"{"user":"ada"}"#);
        match writes.as_slice() {
            [Step::KvPut(put)] => (cookie, put.clone()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn anonymous_request_is_forwarded_then_passed_through() {
        let cfg = config(&[]);
        let h = hdrs(&[
            ("cookie", "theme=dark"),
            ("cf-connecting-ip", "203.0.113.9"),
            ("x-forwarded-for", "198.51.100.1"),
            ("user-agent", "test"),
        ]);
        let (mut ex, step) = start(&cfg, Bindings::default(), &get(&h), T0);
        let f = forward(step);
        assert_eq!(f.url, URL, "route mode forwards to the request's own URL");
        assert_eq!(f.service, None);
        assert_eq!(
            f.cookie,
            CookieEdit::Keep,
            "no session cookie: the header is left as it came"
        );
        assert_eq!(f.session.status, "none");
        assert_eq!(f.session.session, None);
        assert_eq!(
            f.forwarded_for.as_deref(),
            Some("198.51.100.1, 203.0.113.9")
        );
        assert_eq!(f.real_ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(
            (f.forwarded_host.as_str(), f.forwarded_proto.as_str()),
            ("app.example", "https")
        );
        assert_eq!(f.strip, vec!["x-forwarded-for".to_owned()]);
        assert!(f.drop_body, "a GET carries no body to the origin");
        assert_eq!(answer_with(&mut ex, &cfg, &OK), Step::Pass);
        assert!(ex.take_logs().is_empty());
    }

    /// The wire form is the whole contract with `src/entry.js`: pin it.
    #[test]
    fn forward_plan_crosses_as_tagged_edit_lines() {
        let f = Forward {
            url: "http://o/p?q".into(),
            service: Some("APP".into()),
            drop_body: true,
            timeout_ms: Some(5000),
            strip: vec!["x_session".into()],
            cookie: CookieEdit::Set("a=1".into()),
            session: SessionHeaders {
                session: Some("e30".into()),
                status: "valid",
                handle: Some("h".into()),
                expires: Some(9),
            },
            forwarded_for: Some("1.2.3.4".into()),
            forwarded_host: "app".into(),
            forwarded_proto: "https".into(),
            real_ip: Some("1.2.3.4".into()),
        };
        assert_eq!(
            f.wire(),
            "Uhttp://o/p?q\nSAPP\nT5000\nB\n-x_session\n=cookie:a=1\n=x-session:e30\n\
             =x-session-status:valid\n=x-session-id:h\n=x-session-expires:9\n\
             =x-forwarded-for:1.2.3.4\n=x-forwarded-host:app\n=x-forwarded-proto:https\n\
             =x-real-ip:1.2.3.4\n"
        );
        let r = Rewrap {
            strip: vec!["x-session-set".into()],
            set_cookie: Some("kc=v; Path=/".into()),
            cache_control: Some("private".into()),
        };
        assert_eq!(
            r.wire(),
            "-x-session-set\n+set-cookie:kc=v; Path=/\n=cache-control:private\n"
        );
    }

    /// Regression (critical): only names starting exactly with `x-session` were
    /// stripped, so `X_Session: <base64 of {"user":"root"}>` reached PHP and WSGI apps
    /// as `HTTP_X_SESSION`, a forged session.
    #[test]
    fn client_aliases_of_reserved_headers_are_stripped() {
        let cfg = config(&[]);
        let forged = crate::util::b64(r#"{"user":"root"}"#);
        let h = hdrs(&[
            ("x_session", &forged),
            ("x.session", &forged),
            ("x_session_status", "valid"),
            ("x-session-id", "h"),
            ("x_forwarded_user", "root"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=6.6.6.6"),
            ("x_real_ip", "6.6.6.6"),
            ("x-sessions", "kept"),
            ("accept", "*/*"),
        ]);
        let (_, step) = start(&cfg, Bindings::default(), &get(&h), T0);
        let f = forward(step);
        assert_eq!(
            f.strip,
            [
                "x_session",
                "x.session",
                "x_session_status",
                "x-session-id",
                "x_forwarded_user",
                "x-forwarded-host",
                "forwarded",
                "x_real_ip"
            ]
        );
        assert_eq!(f.session.session, None);
        assert_eq!(f.real_ip, None, "no CF-Connecting-IP, no X-Real-IP");
        let wire = f.wire();
        assert!(!wire.contains("x-sessions"), "{wire}");
        assert!(!wire.contains(&forged), "{wire}");
    }

    /// Regression: a `GET` with a body made the runtime's `Request` constructor throw,
    /// a 500 for a well-formed request.
    #[test]
    fn get_and_head_are_forwarded_without_their_body() {
        let cfg = config(&[]);
        let h = hdrs(&[("content-length", "5"), ("content-type", "text/plain")]);
        for (method, bodiless) in [
            ("GET", true),
            ("HEAD", true),
            ("POST", false),
            ("PUT", false),
        ] {
            let req = Incoming { method, ..get(&h) };
            let f = forward(start(&cfg, Bindings::default(), &req, T0).1);
            assert_eq!(f.drop_body, bodiless, "{method}");
            assert_eq!(
                f.strip.contains(&"content-length".to_owned()),
                bodiless,
                "{method}"
            );
        }
    }

    #[test]
    fn valid_cookie_session_is_forwarded_and_the_session_cookie_removed() {
        let cfg = config(&[
            ("SESSION_STORE", "cookie"),
            ("ORIGIN_URL", "http://127.0.0.1:9000"),
        ]);
        let (cookie, writes) = sign_in(&cfg, Bindings::default(), r#"{"user":"ada"}"#);
        assert!(writes.is_empty(), "cookie mode never writes KV");
        let h = cookie_hdr(Some(&cookie));
        let (mut ex, step) = start(&cfg, Bindings::default(), &get(&h), T0 + 1);
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
    fn origin_aliases_of_control_headers_are_stripped_and_never_applied() {
        let cfg = config(&[]);
        let mut ex = forwarded(&cfg, Bindings::default());
        let h = hdrs(&[
            ("x_session_set", r#"{"user":"mallory"}"#),
            ("x.session.action", "regenerate"),
            ("x-session-internal", "debug"),
            ("x-sessions", "kept"),
        ]);
        assert_eq!(
            answer_with(&mut ex, &cfg, &answer(200, &h)),
            Step::Rewrap(Rewrap {
                strip: vec![
                    "x_session_set".into(),
                    "x.session.action".into(),
                    "x-session-internal".into()
                ],
                set_cookie: None,
                cache_control: None,
            })
        );
    }

    #[test]
    fn control_headers_on_5xx_are_ignored_and_logged() {
        let cfg = config(&[]);
        let mut ex = forwarded(&cfg, Bindings::default());
        let h = hdrs(&[("x-session-set", r#"{"user":"mallory"}"#)]);
        let r = rewrap(answer_with(&mut ex, &cfg, &answer(503, &h)));
        assert_eq!(r.set_cookie, None);
        assert_eq!(r.strip, ["x-session-set"]);
        let logs = ex.take_logs();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].event, "control_ignored");
    }

    /// A shared cache in front of the origin stored a response that set someone's
    /// session: its control headers were meant for whoever caused it to be stored.
    #[test]
    fn control_headers_of_a_cached_response_are_never_applied() {
        let cfg = config(&[]);
        for cached in [
            ("age", "12"),
            ("cf-cache-status", "HIT"),
            ("cf-cache-status", "stale"),
        ] {
            let mut ex = forwarded(&cfg, Bindings::default());
            let h = hdrs(&[("x-session-set", r#"{"user":"ada"}"#), cached]);
            let r = rewrap(answer_with(&mut ex, &cfg, &answer(200, &h)));
            assert_eq!(r.set_cookie, None, "{cached:?}");
            assert_eq!(ex.take_logs()[0].event, "control_ignored");
        }
        let mut ex = forwarded(&cfg, Bindings::default());
        let h = hdrs(&[
            ("x-session-set", r#"{"user":"ada"}"#),
            ("cf-cache-status", "MISS"),
        ]);
        assert!(rewrap(answer_with(&mut ex, &cfg, &answer(200, &h)))
            .set_cookie
            .is_some());
    }

    #[test]
    fn a_response_that_sets_the_session_cookie_is_kept_out_of_shared_caches() {
        let cfg = config(&[]);
        for (origin, want) in [
            (None, Some("private")),
            (Some("public, max-age=600"), Some("private, max-age=600")),
            (
                Some("max-age=60, s-maxage=600, must-revalidate"),
                Some("private, max-age=60, must-revalidate"),
            ),
            (Some("no-store"), None),
            (Some("private, No-Store"), None),
        ] {
            let mut ex = forwarded(&cfg, Bindings::default());
            let mut pairs = vec![("x-session-set", r#"{"user":"ada"}"#)];
            pairs.extend(origin.map(|o| ("cache-control", o)));
            let h = hdrs(&pairs);
            let r = rewrap(answer_with(&mut ex, &cfg, &answer(200, &h)));
            assert!(r.set_cookie.is_some());
            assert_eq!(r.cache_control.as_deref(), want, "{origin:?}");
        }
    }

    #[test]
    fn bad_control_header_is_logged_without_its_value() {
        let cfg = config(&[]);
        let mut ex = forwarded(&cfg, Bindings::default());
        let h = hdrs(&[("x-session-set", r#"{"secret-value":"#)]);
        let _ = answer_with(&mut ex, &cfg, &answer(200, &h));
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
        let (cookie, put) = kv_session(&cfg);
        let h = cookie_hdr(Some(&cookie));
        let (mut ex, step) = start(&cfg, kv(), &get(&h), T0 + 1);
        assert_eq!(
            step,
            Step::KvGet {
                key: put.key.clone()
            }
        );
        let f = forward(ex.record(&cfg, Ok(Some(put.value.clone())), &mut CountingEntropy(3)));
        assert_eq!(f.session.status, "valid");
        assert_eq!(ex.answered(&cfg, &OK, &mut CountingEntropy(4)), Step::Pass);
    }

    #[test]
    fn kv_record_missing_means_invalid_and_the_cookie_is_cleared() {
        let cfg = config(&[("SESSION_STORE", "kv")]);
        let (cookie, _) = kv_session(&cfg);
        let h = cookie_hdr(Some(&cookie));
        let (mut ex, _) = start(&cfg, kv(), &get(&h), T0 + 1);
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
            let (cookie, _) = kv_session(&cfg);
            let h = cookie_hdr(Some(&cookie));
            let (mut ex, _) = start(&cfg, kv(), &get(&h), T0 + 1);
            let step = ex.record(&cfg, Err(err()), &mut CountingEntropy(3));
            if open {
                let f = forward(step);
                assert_eq!(f.session.status, "invalid");
                assert_eq!(
                    ex.answered(&cfg, &OK, &mut CountingEntropy(4)),
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

    /// Regression: in `auto` mode with KV unreadable under the open policy, a small
    /// `Set` created a new cookie session whose cookie replaced the user's KV-backed one.
    #[test]
    fn nothing_is_created_or_issued_while_the_store_is_unreadable() {
        let cfg = config(&[("SESSION_KV_FAILURE", "open")]);
        let big = format!(r#"{{"blob":"{}"}}"#, "y".repeat(7000));
        let (cookie, writes) = sign_in(&cfg, kv(), &big);
        assert!(matches!(writes.as_slice(), [Step::KvPut(_)]), "spilled");
        let h = cookie_hdr(Some(&cookie));
        let (mut ex, step) = start(&cfg, kv(), &get(&h), T0 + 1);
        assert!(matches!(step, Step::KvGet { .. }));
        let err = StoreError {
            op: "get",
            detail: "boom".into(),
        };
        forward(ex.record(&cfg, Err(err), &mut CountingEntropy(3)));
        let h = hdrs(&[("x-session-set", r#"{"theme":"dark"}"#)]);
        let r = rewrap(ex.answered(&cfg, &answer(200, &h), &mut CountingEntropy(4)));
        assert_eq!(r.set_cookie, None, "the user's cookie is left alone");
        let events: Vec<_> = ex.take_logs().iter().map(|l| l.event).collect();
        assert_eq!(events, ["kv_unavailable", "control_ignored"]);
    }

    #[test]
    fn kv_write_failure_follows_the_policy() {
        let err = || StoreError {
            op: "put",
            detail: "boom".into(),
        };
        for (policy, open) in [("closed", false), ("open", true)] {
            let cfg = config(&[("SESSION_STORE", "kv"), ("SESSION_KV_FAILURE", policy)]);
            let mut ex = forwarded(&cfg, kv());
            let h = hdrs(&[("x-session-set", r#"{"user":"ada"}"#)]);
            let step = ex.answered(&cfg, &answer(200, &h), &mut CountingEntropy(2));
            assert!(matches!(step, Step::KvPut(_)), "{step:?}");
            let step = ex.written(&cfg, Err(err()));
            if open {
                assert_eq!(
                    rewrap(step).set_cookie,
                    None,
                    "no cookie pointing at a record that was never written"
                );
            } else {
                assert_eq!(reply(step).status, 503);
            }
        }
    }

    /// Regression: under `SESSION_KV_FAILURE=open`, a `destroy` whose KV delete failed
    /// still answered "signed out" while the record lived on.
    #[test]
    fn a_destroy_that_cannot_revoke_fails_closed_whatever_the_policy() {
        let cfg = config(&[("SESSION_STORE", "kv"), ("SESSION_KV_FAILURE", "open")]);
        let (cookie, put) = kv_session(&cfg);
        let err = || StoreError {
            op: "delete",
            detail: "boom".into(),
        };
        // The failure may hit the tombstone or the record's deletion.
        for fail_at in 0..2 {
            let h = cookie_hdr(Some(&cookie));
            let (mut ex, _) = start(&cfg, kv(), &get(&h), T0 + 1);
            forward(ex.record(&cfg, Ok(Some(put.value.clone())), &mut CountingEntropy(3)));
            let h = hdrs(&[("x-session-action", "destroy")]);
            let mut step = ex.answered(&cfg, &answer(200, &h), &mut CountingEntropy(4));
            for _ in 0..fail_at {
                step = ex.written(&cfg, Ok(()));
            }
            assert!(matches!(step, Step::KvPut(_) | Step::KvDelete { .. }));
            let r = reply(ex.written(&cfg, Err(err())));
            assert_eq!(r.status, 503, "fail at {fail_at}");
        }
    }

    /// Regression: a stolen cookie replayed where a stale KV location still served the
    /// deleted record could re-put it with a fresh TTL (a refresh, or any `Set`), and
    /// that write could beat the delete: revocation undone for good.
    #[test]
    fn a_revoked_session_is_never_written_again() {
        let cfg = config(&[("SESSION_STORE", "kv")]);
        let (cookie, put) = kv_session(&cfg);
        let h = cookie_hdr(Some(&cookie));

        // Sign out: a tombstone under its own key, then the record's deletion.
        let (mut ex, _) = start(&cfg, kv(), &get(&h), T0 + 1);
        forward(ex.record(&cfg, Ok(Some(put.value.clone())), &mut CountingEntropy(3)));
        let destroy = hdrs(&[("x-session-action", "destroy")]);
        let step = ex.answered(&cfg, &answer(200, &destroy), &mut CountingEntropy(4));
        let (writes, end) = write_all(&mut ex, &cfg, step);
        let [Step::KvPut(tomb), Step::KvDelete { key }] = writes.as_slice() else {
            panic!("{writes:?}")
        };
        assert_eq!(key, &put.key);
        assert_ne!(tomb.key, put.key);
        assert!(tomb.key.starts_with("keycard:revoked."), "{}", tomb.key);
        assert_eq!(tomb.ttl, 5000 - 1, "kept until the absolute expiry");
        assert!(set_cookie(end).contains("Max-Age=0"));

        // The replay, at a location that still has the record, with a Set and a refresh
        // due: the tombstone is looked at before the put, found, and nothing is written
        // but the record's deletion here too.
        for (at, origin) in [
            (T0 + 2, hdrs(&[("x-session-set", r#"{"n":1}"#)])),
            (T0 + 500, hdrs(&[])),
        ] {
            let (mut ex, _) = start(&cfg, kv(), &get(&h), at);
            let f = forward(ex.record(&cfg, Ok(Some(put.value.clone())), &mut CountingEntropy(5)));
            assert_eq!(f.session.status, "valid", "the stale location still has it");
            let step = ex.answered(&cfg, &answer(200, &origin), &mut CountingEntropy(6));
            assert_eq!(
                step,
                Step::KvGet {
                    key: tomb.key.clone()
                }
            );
            let step = ex.record(&cfg, Ok(Some(tomb.value.clone())), &mut CountingEntropy(7));
            let (writes, end) = write_all(&mut ex, &cfg, step);
            assert_eq!(
                writes,
                [Step::KvDelete {
                    key: put.key.clone()
                }]
            );
            assert!(set_cookie(end).contains("Max-Age=0"));
            assert_eq!(ex.take_logs()[0].event, "session_revoked");
        }
    }

    #[test]
    fn regenerate_revokes_the_old_id_and_writes_the_new_one_unchecked() {
        let cfg = config(&[("SESSION_STORE", "kv")]);
        let (cookie, put) = kv_session(&cfg);
        let h = cookie_hdr(Some(&cookie));
        let (mut ex, _) = start(&cfg, kv(), &get(&h), T0 + 1);
        forward(ex.record(&cfg, Ok(Some(put.value.clone())), &mut CountingEntropy(3)));
        let regen = hdrs(&[("x-session-action", "regenerate")]);
        let step = ex.answered(&cfg, &answer(200, &regen), &mut CountingEntropy(4));
        let (writes, end) = write_all(&mut ex, &cfg, step);
        let [Step::KvPut(new), Step::KvPut(tomb), Step::KvDelete { key }] = writes.as_slice()
        else {
            panic!("{writes:?}")
        };
        assert_ne!(
            new.key, put.key,
            "a new id, never revoked: no tombstone to check"
        );
        assert!(tomb.key.starts_with("keycard:revoked."));
        assert_eq!(key, &put.key);
        assert!(!set_cookie(end).contains("Max-Age=0"));
    }

    #[test]
    fn a_refresh_of_a_live_kv_session_checks_its_tombstone_then_writes() {
        let cfg = config(&[("SESSION_STORE", "kv")]);
        let (cookie, put) = kv_session(&cfg);
        let h = cookie_hdr(Some(&cookie));
        let (mut ex, _) = start(&cfg, kv(), &get(&h), T0 + 100);
        forward(ex.record(&cfg, Ok(Some(put.value.clone())), &mut CountingEntropy(3)));
        let step = ex.answered(&cfg, &OK, &mut CountingEntropy(4));
        assert!(matches!(&step, Step::KvGet { key } if key.contains("revoked.")));
        let step = ex.record(&cfg, Ok(None), &mut CountingEntropy(5));
        let (writes, end) = write_all(&mut ex, &cfg, step);
        assert!(matches!(writes.as_slice(), [Step::KvPut(p)] if p.key == put.key));
        assert!(set_cookie(end).starts_with(&cfg.cookie.name));
    }

    #[test]
    fn auto_mode_without_a_binding_keeps_sessions_in_the_cookie() {
        let cfg = config(&[]);
        let big = format!(r#"{{"blob":"{}"}}"#, "y".repeat(7000));
        let mut ex = forwarded(&cfg, Bindings::default());
        let h = hdrs(&[("x-session-set", &big)]);
        let r = reply(ex.answered(&cfg, &answer(200, &h), &mut CountingEntropy(2)));
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
        let (mut ex, step) = start(&cfg, Bindings::default(), &get(""), T0);
        assert_eq!(reply(step).status, 500);
        assert_eq!(ex.take_logs()[0].detail["var"], "SESSION_KV_BINDING");

        let cfg = config(&[("ORIGIN_SERVICE", "APP")]);
        let (mut ex, step) = start(&cfg, Bindings::default(), &get(""), T0);
        assert_eq!(reply(step).body, "keycard: misconfigured");
        assert_eq!(ex.take_logs()[0].detail["var"], "ORIGIN_SERVICE");

        let b = Bindings {
            origin_service: true,
            ..Default::default()
        };
        assert_eq!(
            forward(start(&cfg, b, &get(""), T0).1).service.as_deref(),
            Some("APP")
        );
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
        let (mut ex, _) = start(&cfg, Bindings::default(), &get(""), T0);
        let r = reply(ex.unreachable("connection refused"));
        assert_eq!(
            (r.status, r.body.as_str()),
            (502, "keycard: origin unreachable")
        );
        assert_eq!(ex.take_logs()[0].event, "origin_unreachable");
    }

    #[test]
    fn an_origin_past_its_timeout_is_a_504_and_changes_nothing() {
        let cfg = config(&[("ORIGIN_TIMEOUT", "5s")]);
        let (mut ex, step) = start(&cfg, Bindings::default(), &get(""), T0);
        assert_eq!(forward(step).timeout_ms, Some(5000));
        let r = reply(ex.timed_out(&cfg));
        assert_eq!(
            (r.status, r.body.as_str()),
            (504, "keycard: origin timeout")
        );
        assert!(r.headers.is_empty(), "no cookie: no session change");
        assert_eq!(ex.take_logs()[0].event, "origin_timeout");
        // Without the setting there is no timeout, and so no such call.
        let cfg = config(&[]);
        let (mut ex, step) = start(&cfg, Bindings::default(), &get(""), T0);
        assert_eq!(forward(step).timeout_ms, None);
        assert_eq!(reply(ex.timed_out(&cfg)).status, 500);
    }

    #[test]
    fn calls_out_of_order_are_internal_errors_not_panics() {
        let cfg = config(&[]);
        let (mut ex, _) = start(&cfg, Bindings::default(), &get(""), T0);
        assert_eq!(reply(ex.written(&cfg, Ok(()))).status, 500);
        assert_eq!(
            reply(ex.record(&cfg, Ok(None), &mut CountingEntropy(1))).status,
            500
        );
        assert_eq!(reply(answer_with(&mut ex, &cfg, &OK)).status, 500);
        assert_eq!(reply(ex.unreachable("x")).status, 500);
        assert_eq!(reply(ex.timed_out(&cfg)).status, 500);
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
    fn logout_revokes_the_record_and_clears_the_cookie() {
        let cfg = config(&[("SESSION_STORE", "kv")]);
        let (cookie, put) = kv_session(&cfg);
        let h = hdrs(&[("cookie", &cookie), ("sec-fetch-site", "same-origin")]);
        let req = Incoming {
            method: "POST",
            url: "https://h/.keycard/logout?next=/bye",
            headers: HeaderList(&h),
        };
        let (mut ex, step) = start(&cfg, kv(), &req, T0 + 1);
        assert!(matches!(step, Step::KvGet { .. }));
        let step = ex.record(&cfg, Ok(Some(put.value.clone())), &mut CountingEntropy(3));
        let (writes, end) = write_all(&mut ex, &cfg, step);
        assert!(
            matches!(writes.as_slice(), [Step::KvPut(t), Step::KvDelete { key }]
                if t.key.contains("revoked.") && key == &put.key),
            "{writes:?}"
        );
        let r = reply(end);
        assert_eq!(r.status, 303);
        assert_eq!(r.headers[0], ("location", "/bye".to_owned()));
        assert!(r.headers[1].1.contains("Max-Age=0"));

        // A logout that cannot delete the record fails closed whatever the policy:
        // answering "signed out" while the record lives on would be a lie.
        let cfg = config(&[("SESSION_STORE", "kv"), ("SESSION_KV_FAILURE", "open")]);
        let (cookie, put) = kv_session(&cfg);
        let h = hdrs(&[("cookie", &cookie)]);
        let req = Incoming {
            headers: HeaderList(&h),
            ..req
        };
        let (mut ex, _) = start(&cfg, kv(), &req, T0 + 1);
        let _ = ex.record(&cfg, Ok(Some(put.value.clone())), &mut CountingEntropy(3));
        let err = StoreError {
            op: "delete",
            detail: "boom".into(),
        };
        assert_eq!(reply(ex.written(&cfg, Err(err))).status, 503);
    }

    /// Regression: only `Sec-Fetch-Site: cross-site` was refused, so a sibling
    /// subdomain (`same-site`), or an old browser sending only `Origin`, could sign a
    /// user out.
    #[test]
    fn cross_origin_logout_is_refused() {
        let cfg = config(&[]);
        for (site, origin, refused) in [
            (Some("cross-site"), None, true),
            (Some("same-site"), None, true),
            (None, Some("https://evil.example"), true),
            (None, Some("null"), true),
            (Some("same-origin"), None, false),
            (Some("none"), None, false),
            (None, Some("https://h"), false),
            (None, None, false),
        ] {
            let mut pairs = Vec::new();
            pairs.extend(site.map(|s| ("sec-fetch-site", s)));
            pairs.extend(origin.map(|o| ("origin", o)));
            let h = hdrs(&pairs);
            let req = Incoming {
                method: "POST",
                url: "https://h/.keycard/logout",
                headers: HeaderList(&h),
            };
            let (mut ex, step) = start(&cfg, Bindings::default(), &req, T0);
            let r = reply(step);
            assert_eq!(r.status == 403, refused, "{site:?} {origin:?}");
            if refused {
                assert_eq!(ex.take_logs()[0].event, "logout_refused");
            }
        }
    }

    #[test]
    fn a_forged_cookie_is_logged_without_its_value_and_cleared() {
        let cfg = config(&[]);
        let forged = format!(
            "{}=v1.AAAA.1.1.1.c2lk.e30.bWFj-forged-value",
            cfg.cookie.name
        );
        let h = cookie_hdr(Some(&forged));
        let (mut ex, step) = start(&cfg, Bindings::default(), &get(&h), T0);
        let f = forward(step);
        assert_eq!(f.session.status, "invalid");
        assert_eq!(f.session.session, None);
        let logs = ex.take_logs();
        assert_eq!(logs[0].event, "bad_cookie");
        assert!(!logs[0].line().contains("forged-value"));
        let sc = set_cookie(answer_with(&mut ex, &cfg, &OK));
        assert!(sc.starts_with(&format!("{}=;", cfg.cookie.name)), "{sc}");
        assert!(sc.contains("Max-Age=0"), "{sc}");
    }
}
