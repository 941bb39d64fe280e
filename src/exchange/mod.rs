//! One request's way through keycard, as a state machine whose decisions are data.
//!
//! The edge starts an [`Exchange`] with what it read from the request and gets a
//! [`Step`] back: read or write a KV record, forward the request to the origin, serve
//! an inspector asset, or answer. It carries the step out and hands the result back
//! ([`Exchange::kv_read`], [`Exchange::written`], [`Exchange::answered`],
//! [`Exchange::unreachable`], [`Exchange::timed_out`]), which returns the next step,
//! until a final one.
//!
//! Nothing here awaits or touches the platform. The Worker drives the steps from a few
//! lines of JS (`src/driver/entry.js`), so no Rust future or promise exists per request (see
//! BENCHMARKS.md for what that bought), and the tests drive the very same steps natively
//! against an in-memory KV, the way quinn's tests drive a connection pair.
//!
//! Every header name the edge sets or deletes is decided here, and crosses to the edge
//! as a list of edits it applies without looking ([`HeaderEdit`]s, rendered once as text
//! for JS by [`Forward::wire`] and [`Rewrap::wire`]).
//!
//! Every error that is not the client's doing becomes a reply in one place
//! ([`Failure::reply`]): an opaque body, the detail in a [`Log`] line.

use std::collections::VecDeque;
use std::mem;
use std::rc::Rc;

use endpoints::Endpoint;
use serde_json::{json, Map, Value};

use crate::config::{Config, ConfigError, KvFailure, StoreMode};
use crate::crypto::keys::{Entropy, OsEntropy};
use crate::guard::SignIn;
use crate::http::cookie_header::{self, Stripped};
use crate::http::cross_origin::{self, Provenance};
use crate::http::forward;
use crate::http::headers::{self, HeaderList};
use crate::http::path_guard::Verdict;
use crate::origin::control;
use crate::session::{
    self, Changes, FinishError, KvPut, Loaded, Pending, Read, SessionHeaders, SessionState, Status,
};
use crate::users::{self, Device, UsersCall};

/// What the edge read from the client's request.
#[derive(Debug, Clone, Default)]
pub struct Incoming<'a> {
    /// The method, as sent.
    pub method: &'a str,
    /// The absolute URL, as the runtime gives it.
    pub url: &'a str,
    /// Every request header.
    pub headers: HeaderList<'a>,
}

/// Whether the Worker's environment has a binding the configuration names, of the
/// kind it needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Binding {
    /// Nothing by that name.
    #[default]
    Absent,
    /// There, and of the right kind.
    Present,
    /// Something else by that name (a service binding named as the KV namespace, say).
    WrongKind,
}

/// The bindings named by the configuration, as the Worker's environment has them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bindings {
    /// The KV namespace `SESSION_KV_BINDING`.
    pub kv: Binding,
    /// The service `ORIGIN_SERVICE`.
    pub origin_service: Binding,
    /// The static assets binding `ASSETS` (the inspector's files).
    pub assets: Binding,
    /// The Durable Object namespace `SESSION_USERS_BINDING`.
    pub users: Binding,
    /// How the driver carries out a forward.
    pub forwarding: Forwarding,
}

/// How the driver carries out a [`Step::Forward`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Forwarding {
    /// A fetch: to `ORIGIN_SERVICE`, to `ORIGIN_URL`, or to the request's own URL
    /// (route mode). The standalone Worker.
    #[default]
    Fetch,
    /// A call of the app's handler in this very Worker (`keycard::worker`): there is no
    /// origin to reach, and `ORIGIN_URL` means nothing.
    Handler,
}

impl Bindings {
    /// Whether sign-out everywhere is on: the users' namespace is bound, and is one.
    /// Only then does a request need its device (its user agent; the driver adds the
    /// country when it sends a call: [`UsersCall::json`]).
    pub fn users_on(&self) -> bool {
        self.users == Binding::Present
    }
}

/// How bad a [`Log`] line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Worth knowing: a bad cookie, a refused request.
    Warn,
    /// Something failed.
    Error,
}

impl Level {
    /// `warn` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// A KV operation failed (network, quota, binding gone). Never a client's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("session store {} failed: {detail}", op.as_str())]
pub struct StoreError {
    /// What failed: the exchange knows which it asked for.
    pub op: StoreOp,
    /// What the store said, without keys or values.
    pub detail: String,
}

/// A store operation: KV's, or a call to a user's object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    /// A KV read.
    Get,
    /// A KV write.
    Put,
    /// A KV delete.
    Delete,
    /// A call to a user's object.
    Users,
}

impl StoreOp {
    /// Its name in a log line.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreOp::Get => "get",
            StoreOp::Put => "put",
            StoreOp::Delete => "delete",
            StoreOp::Users => "users",
        }
    }
}

/// A log line for the edge to write. Never holds cookie values, secrets or session data.
#[derive(Debug, Clone, PartialEq)]
pub struct Log {
    /// How bad.
    pub level: Level,
    /// What happened, e.g. `bad_cookie`.
    pub event: &'static str,
    /// Details: reasons, statuses, variable names.
    pub detail: Value,
}

impl Log {
    /// The line as written: `{"keycard":event,"level":..,"detail":..}`.
    pub fn line(&self) -> String {
        json!({ "keycard": self.event, "level": self.level.as_str(), "detail": self.detail })
            .to_string()
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

    /// The 401 of a request that needs a signed-in user: `{"error":"session_required"}`
    /// with the fields of `more` (an object).
    fn session_required(more: Value) -> Reply {
        let mut body = json!({ "error": "session_required" });
        if let (Some(b), Value::Object(m)) = (body.as_object_mut(), more) {
            b.extend(m);
        }
        Reply::new(401, JSON, body.to_string())
    }

    fn with(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// Every header of the reply, in order: its `Content-Type`, `Cache-Control:
    /// no-store` (keycard's own answers are about one client and one moment, and are
    /// never cached), then the others.
    pub fn all_headers(&self) -> impl Iterator<Item = (&str, &str)> {
        [
            ("content-type", self.content_type),
            ("cache-control", "no-store"),
        ]
        .into_iter()
        .chain(self.headers.iter().map(|(n, v)| (*n, v.as_str())))
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
/// reserved headers dropped (see [`crate::http::headers`]) and these changes made.
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
    /// `KEYCARD_IDENTITY_HEADERS` for a signed-in user: `(name, value)`.
    pub identity: Vec<(String, String)>,
    /// `X-Session-Via`: this deployment's loop mark ([`crate::crypto::keys::KeySet::loop_mark`]).
    pub via: String,
}

/// What the origin answered.
#[derive(Debug, Clone, Default)]
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

/// What the edge must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Step {
    /// Answer with this; done.
    Reply(Reply),
    /// Read the record at `key` with `cacheTtl` [`KV_CACHE_TTL`](crate::session::record::KV_CACHE_TTL), then
    /// [`Exchange::kv_read`].
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
    /// Make this call to a user's object, then [`Exchange::users_answered`].
    Users(UsersCall),
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
fn check_route_mode(cfg: &Config, b: Bindings, url: &str) -> Result<(), ConfigError> {
    let route_mode = cfg.origin_service.is_none() && cfg.origin_url.is_none();
    let host = forward::split_url(url).map_or("", |p| p.host);
    match b.forwarding == Forwarding::Fetch && route_mode && on_workers_dev(host) {
        false => Ok(()),
        true => Err(ConfigError {
            var: "ORIGIN_URL",
            problem: "is unset (route mode), but this request came to a workers.dev address, which has no origin behind it; set ORIGIN_URL to the app's address, or put keycard on a route of your zone".into(),
        }),
    }
}

/// Whether `host` (with any port) is a `workers.dev` address, in any case.
fn on_workers_dev(host: &str) -> bool {
    const SUFFIX: &[u8] = b".workers.dev";
    let name = host.rsplit_once(':').map_or(host, |(n, _)| n).as_bytes();
    name.len() > SUFFIX.len() && name[name.len() - SUFFIX.len()..].eq_ignore_ascii_case(SUFFIX)
}

/// Why a request came back: the variable that sends it to this Worker again.
fn loop_cause(cfg: &Config) -> ConfigError {
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
fn method_for_log(method: &str) -> &'static str {
    const USUAL: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
    ];
    USUAL
        .into_iter()
        .find(|m| method.eq_ignore_ascii_case(m))
        .unwrap_or("other")
}

/// The log event of a store failure: KV's, or a user's object's.
fn unavailable(e: &StoreError) -> &'static str {
    match e.op {
        StoreOp::Users => "users_unavailable",
        StoreOp::Get | StoreOp::Put | StoreOp::Delete => "kv_unavailable",
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

/// What the request is for; decided when it starts.
#[derive(Debug)]
enum Purpose {
    /// Forward it to the origin and hand back its response. `required`: the path needs
    /// a signed-in user (`KEYCARD_REQUIRE`); `navigation`: a browser is loading a page,
    /// so a missing sign-in is a redirect to the login page rather than a 401.
    Proxy { required: bool, navigation: bool },
    /// Answer the inspector with the session, the cookie being this long.
    Inspect { cookie_len: usize },
    /// Destroy the session, then redirect to `next` (or answer 204).
    Logout { next: Option<String> },
    /// List the signed-in user's sessions.
    ListSessions,
    /// End one of the signed-in user's sessions (by handle), then answer 204.
    RevokeSession(String),
}

/// A request for the origin as the guards left it: the forwarding plan, the session
/// data when a guard or the user's object needed it, and what the path asks for.
#[derive(Debug)]
struct Guarded {
    plan: Box<Forward>,
    data: Option<Map<String, Value>>,
    required: bool,
    navigation: bool,
}

/// The origin's response, as far as its rewrapping needs it.
#[derive(Debug, Default)]
struct OriginResponse {
    /// Its control-header aliases, to delete.
    strip: Vec<String>,
    /// Its `Cache-Control`.
    cache_control: Option<String>,
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

/// The writes still to make (the first one is in flight once asked for), and what the
/// answer will carry once they are made. In order: the calls to users' objects (any of
/// which may refuse the session), the tombstone, the KV writes.
#[derive(Debug)]
struct Writes {
    users: VecDeque<users_flow::UsersWrite>,
    /// What ends the session's KV record should its user's object refuse it.
    if_refused: Option<session::Revocation>,
    ops: VecDeque<Write>,
    set_cookie: Option<String>,
    /// The first op is a record's put, whose cookie is `set_cookie`.
    put: bool,
    /// The tombstone to look at before the put, if any.
    tombstone: Option<String>,
    /// The origin's response, when there is one.
    origin: OriginResponse,
}

#[derive(Debug)]
enum State {
    /// Waiting for [`Exchange::kv_read`] with the session's record; then forward with
    /// `plan` (for [`Purpose::Proxy`]).
    Loading {
        pending: Pending,
        plan: Option<Box<Forward>>,
    },
    /// Waiting for [`Exchange::answered`].
    Forwarding(Loaded),
    /// Waiting for [`Exchange::kv_read`] with the tombstone looked at before the put.
    Checking(Writes),
    /// Waiting for [`Exchange::users_answered`] with an answer that decides what comes
    /// next.
    Asking(users_flow::Ask),
    /// Waiting for [`Exchange::written`].
    Writing(Writes),
    /// Over.
    Done,
}

/// One request in flight: it owns the isolate's configuration and its source of
/// randomness, as quinn's `Connection` owns its config. See the module docs.
#[derive(Debug)]
pub struct Exchange<E: Entropy = OsEntropy> {
    cfg: Rc<Config>,
    entropy: E,
    now: u64,
    /// KV is in use: the store mode allows it and the binding exists.
    kv: bool,
    /// Sign-out everywhere is on: the users binding exists.
    users: bool,
    /// The device the request comes from, for the user's object: its user agent (the
    /// driver adds the country: [`UsersCall::json`]).
    device: Device,
    /// The session, when its user's object said it is revoked: it is forwarded as
    /// `invalid` and ended like a destroyed one.
    revoked: Option<SessionState>,
    method: String,
    url: String,
    purpose: Purpose,
    state: State,
    logs: Vec<Log>,
}

/// The answer to a request that cannot start because the configuration is invalid,
/// and its log line.
pub fn misconfigured(e: &ConfigError) -> (Step, Log) {
    let (reply, log) = Failure::Misconfigured(e.clone()).reply();
    (Step::Reply(reply), log)
}

/// Checks that the bindings the configuration names are there and of the right kind.
fn check_bindings(cfg: &Config, b: Bindings) -> Result<(), ConfigError> {
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
    }
}

impl<E: Entropy> Exchange<E> {
    /// Starts the exchange for a request at `now` (unix seconds).
    pub fn start(
        cfg: Rc<Config>,
        bindings: Bindings,
        req: &Incoming<'_>,
        now: u64,
        entropy: E,
    ) -> (Exchange<E>, Step) {
        let users = bindings.users_on();
        let device = match users {
            true => Device {
                agent: users::agent_summary(req.headers.get("user-agent")),
                country: None,
            },
            false => Device::default(),
        };
        let mut ex = Exchange {
            kv: cfg.store != StoreMode::Cookie && bindings.kv == Binding::Present,
            users,
            device,
            revoked: None,
            cfg,
            entropy,
            now,
            method: req.method.to_owned(),
            url: req.url.to_owned(),
            purpose: Purpose::Proxy {
                required: false,
                navigation: false,
            },
            state: State::Done,
            logs: Vec::new(),
        };
        let step = match check_bindings(&ex.cfg, bindings)
            .and_then(|()| check_route_mode(&ex.cfg, bindings, req.url))
        {
            Ok(()) => ex.begin(req, bindings.assets == Binding::Present),
            Err(e) => ex.fail(Failure::Misconfigured(e)),
        };
        (ex, step)
    }

    /// The configuration it runs under.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// While the request is with the origin (after [`Step::Forward`], before
    /// [`Exchange::answered`]): the session it was forwarded with. An in-process origin
    /// ([`crate::origin::embedded`]) reads its data from here rather than decode `X-Session`.
    pub fn forwarded(&self) -> Option<&Loaded> {
        match &self.state {
            State::Forwarding(loaded) => Some(loaded),
            _ => None,
        }
    }

    /// The log lines written since the last call, oldest first.
    pub fn take_logs(&mut self) -> Vec<Log> {
        mem::take(&mut self.logs)
    }

    fn log(&mut self, level: Level, event: &'static str, detail: Value) {
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

    fn begin(&mut self, req: &Incoming<'_>, assets: bool) -> Step {
        let cfg = Rc::clone(&self.cfg);
        if req.headers.get("x-session-via") == Some(cfg.keys.current().loop_mark()) {
            return self.fail(Failure::Loop(loop_cause(&cfg)));
        }
        let Some(parts) = forward::split_url(req.url) else {
            return self.fail(Failure::Internal("request URL has no scheme".into()));
        };
        let (path, query) = match parts.path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (parts.path_and_query, None),
        };
        let cookie = req.headers.get("cookie");
        let Some(ep) = endpoints::route(&cfg, req.method, path, query) else {
            return self.proxy(req, parts);
        };
        let done = |r: Reply| Step::Reply(r);
        match ep {
            Endpoint::Health => done(Reply::new(
                200,
                JSON,
                endpoints::health_json(&cfg, self.kv, self.users),
            )),
            Endpoint::Sessions | Endpoint::RevokeSession(_) if !self.users => {
                done(Reply::opaque(404, "keycard: not found"))
            }
            Endpoint::Sessions => {
                self.purpose = Purpose::ListSessions;
                self.load(cookie, None)
            }
            Endpoint::RevokeSession(handle) => {
                if let Some(refused) = self.refuse_cross_origin(req, parts, "revoke_refused") {
                    return refused;
                }
                let Some(handle) = handle else {
                    return done(Reply::opaque(400, "keycard: id must be a session handle"));
                };
                self.purpose = Purpose::RevokeSession(handle);
                self.load(cookie, None)
            }
            Endpoint::NotFound => done(Reply::opaque(404, "keycard: not found")),
            Endpoint::AddSlash => {
                done(Reply::new(308, TEXT, "").with("location", cfg.path_prefix.as_str()))
            }
            Endpoint::MethodNotAllowed(allow) => {
                done(Reply::opaque(405, "keycard: method not allowed").with("allow", allow))
            }
            Endpoint::Inspect => {
                let cookie_len = cookie
                    .and_then(|c| cookie_header::values(c, &cfg.cookie.name).next())
                    .map_or(0, |v| v.len() + cfg.cookie.name.len() + 1);
                self.purpose = Purpose::Inspect { cookie_len };
                self.load(cookie, None)
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
                if let Some(refused) = self.refuse_cross_origin(req, parts, "logout_refused") {
                    return refused;
                }
                self.purpose = Purpose::Logout { next };
                self.load(cookie, None)
            }
        }
    }

    /// The refusal of a cross-origin request to one of keycard's own unsafe endpoints
    /// (logged as `event`), or `None` when it may go ahead.
    fn refuse_cross_origin(
        &mut self,
        req: &Incoming<'_>,
        parts: forward::UrlParts<'_>,
        event: &'static str,
    ) -> Option<Step> {
        if cross_origin::allowed(Provenance::of(&req.headers), &parts.origin()) {
            return None;
        }
        Some(self.cross_origin_refusal(event, json!({ "reason": "cross-origin request" })))
    }

    /// The 403 of a cross-origin request, logged as `event` with `detail`.
    fn cross_origin_refusal(&mut self, event: &'static str, detail: Value) -> Step {
        self.log(Level::Warn, event, detail);
        Step::Reply(Reply::opaque(403, "keycard: cross-origin request refused"))
    }

    /// A request for the origin: the guards first (on its path and query, which some
    /// origins route on), then the session.
    fn proxy(&mut self, req: &Incoming<'_>, parts: forward::UrlParts<'_>) -> Step {
        let cfg = Rc::clone(&self.cfg);
        let (g, h) = (&cfg.guards, &req.headers);
        let target = parts.path_and_query;
        if g.cross_origin_refused(req.method, target, h, &parts.origin()) {
            let detail = json!({ "method": method_for_log(req.method) });
            return self.cross_origin_refusal("cross_origin_refused", detail);
        }
        let required = match g.paths.check(target) {
            Verdict::Open => false,
            Verdict::SignInRequired => true,
            Verdict::Ambiguous => {
                self.log(Level::Warn, "ambiguous_path", json!({ "status": 400 }));
                return Step::Reply(Reply::opaque(400, "keycard: ambiguous path"));
            }
        };
        let page_load = cross_origin::is_get_or_head(req.method) && h.get("upgrade").is_none();
        let navigation = page_load
            && match h.get("sec-fetch-mode") {
                Some(mode) => mode.eq_ignore_ascii_case("navigate"),
                None => h.get("accept").is_some_and(|a| a.contains("text/html")),
            };
        self.purpose = Purpose::Proxy {
            required,
            navigation,
        };
        let plan = forward_plan(&cfg, req, parts);
        self.load(h.get("cookie"), Some(Box::new(plan)))
    }

    /// Reads the cookie; asks for the KV record when the session lives there.
    fn load(&mut self, cookie: Option<&str>, plan: Option<Box<Forward>>) -> Step {
        let loaded = match session::read(&self.cfg, cookie, self.now) {
            Read::None => Loaded::None,
            Read::Bad(status, why) => {
                self.log(
                    Level::Warn,
                    "bad_cookie",
                    json!({ "status": status.as_str(), "reason": why.to_string() }),
                );
                Loaded::Bad(status)
            }
            Read::Ready(s) => Loaded::Valid(s),
            Read::NeedsRecord(pending) if self.kv => {
                let key = pending.key.clone();
                self.state = State::Loading { pending, plan };
                return Step::KvGet { key };
            }
            // A cookie that points to KV, with no KV to look in: not a session.
            Read::NeedsRecord(_) => Loaded::Bad(Status::Invalid),
        };
        self.loaded(loaded, plan)
    }

    /// The result of a [`Step::KvGet`]: the value's text (`None` when there is none),
    /// or the store's error message. Applies `SESSION_KV_FAILURE` to an error.
    pub fn kv_read(&mut self, found: Result<Option<String>, String>) -> Step {
        let found = found.map_err(|detail| StoreError {
            op: StoreOp::Get,
            detail,
        });
        match mem::replace(&mut self.state, State::Done) {
            State::Loading { pending, plan } => {
                let loaded = match found {
                    Ok(record) => pending
                        .complete(record.as_deref())
                        .map_or(Loaded::Bad(Status::Invalid), Loaded::Valid),
                    Err(e) if self.cfg.kv_failure == KvFailure::Open => {
                        self.log_open_failure(&e);
                        Loaded::StoreUnavailable
                    }
                    Err(e) => return self.fail(Failure::Store(e)),
                };
                self.loaded(loaded, plan)
            }
            State::Checking(writes) => self.checked(writes, found),
            _ => self.out_of_order("record"),
        }
    }

    fn log_open_failure(&mut self, e: &StoreError) {
        self.log(
            Level::Error,
            unavailable(e),
            json!({ "op": e.op.as_str(), "error": e.detail, "policy": "open" }),
        );
    }

    fn loaded(&mut self, loaded: Loaded, plan: Option<Box<Forward>>) -> Step {
        match (&self.purpose, plan) {
            (
                &Purpose::Proxy {
                    required,
                    navigation,
                },
                Some(plan),
            ) => {
                let g = &self.cfg.guards;
                // Session data is parsed only when a guard or the user's object needs it.
                let check = self.check_due(&loaded, required);
                let data = (required || !g.identity.is_empty() || check)
                    .then(|| loaded.session().map(SessionState::data))
                    .flatten();
                let guarded = Guarded {
                    plan,
                    data,
                    required,
                    navigation,
                };
                match check {
                    true => self.check_then_forward(loaded, guarded),
                    false => self.forward(loaded, guarded),
                }
            }
            (&Purpose::Inspect { cookie_len }, _) => self.inspect(loaded, cookie_len),
            (Purpose::Logout { .. }, _) if matches!(loaded, Loaded::StoreUnavailable) => {
                // Whatever the policy: answering "signed out" while the record, and the
                // user it names, could not even be read would be a lie.
                self.fail(Failure::Store(StoreError {
                    op: StoreOp::Get,
                    detail: "the session's record could not be read to end it".into(),
                }))
            }
            (Purpose::Logout { .. }, _) => {
                let destroy = Changes {
                    destroy: true,
                    ..Default::default()
                };
                self.decide(loaded, destroy, OriginResponse::default())
            }
            (Purpose::ListSessions | Purpose::RevokeSession(_), _) => self.sessions(loaded),
            (Purpose::Proxy { .. }, None) => self.out_of_order("loaded"),
        }
    }

    /// Forwards the request with the session's headers, unless its path needs a
    /// signed-in user and there is none.
    fn forward(&mut self, loaded: Loaded, guarded: Guarded) -> Step {
        let cfg = Rc::clone(&self.cfg);
        let g = &cfg.guards;
        let Guarded {
            mut plan,
            data,
            required,
            navigation,
        } = guarded;
        let signed_in = data.as_ref().is_some_and(|d| g.signed_in(d));
        if required && !signed_in {
            return self.sign_in_first(&loaded, navigation);
        }
        if let Some(d) = data.filter(|_| signed_in) {
            let (sent, skipped) = g.identity_headers(&d);
            for header in skipped {
                self.log(
                    Level::Warn,
                    "identity_header_skipped",
                    json!({ "header": header, "reason": "not exactly a header value: a string, number or list of them in printable ASCII, without a space at either end or a comma in a list item" }),
                );
            }
            plan.identity = sent;
        }
        plan.session = session::forward_headers(&cfg, &loaded, self.now, &self.method, &self.url);
        self.state = State::Forwarding(loaded);
        Step::Forward(plan)
    }

    /// The answer to a request on a required path without a signed-in user: a page
    /// load goes to the login page, anything else gets a 401 saying where to sign in;
    /// either way the login URL says whether the session was revoked. Nothing is
    /// forwarded; a bad cookie is still cleared.
    fn sign_in_first(&mut self, loaded: &Loaded, navigation: bool) -> Step {
        let cfg = Rc::clone(&self.cfg);
        let Some(p) = forward::split_url(&self.url) else {
            return self.out_of_order("sign_in_first");
        };
        let path_and_query = match p.path_and_query {
            "" => "/",
            pq => pq,
        };
        let why = match self.revoked {
            Some(_) => SignIn::Revoked,
            None => SignIn::Needed,
        };
        let login = cfg.guards.login_with_next(&p.origin(), path_and_query, why);
        let mut reply = match (&login, navigation) {
            (Some(url), true) => Reply::new(303, TEXT, "").with("location", url.as_str()),
            _ => Reply::session_required(json!({ "login": login })),
        };
        if matches!(loaded, Loaded::Bad(_)) {
            reply = reply.with("set-cookie", session::clearing_cookie(&cfg));
        }
        self.state = State::Done;
        Step::Reply(reply)
    }

    /// The origin's answer to a [`Step::Forward`]: applies its control headers (unless
    /// they cannot be trusted), then asks for the KV writes, then for the response.
    pub fn answered(&mut self, answer: &Answer<'_>) -> Step {
        let State::Forwarding(loaded) = mem::replace(&mut self.state, State::Done) else {
            return self.out_of_order("answered");
        };
        let h = &answer.headers;
        let (changes, errors) = control::from_headers(|name| h.get(name));
        for e in errors {
            self.log(
                Level::Error,
                "bad_control_header",
                json!({ "error": e.to_string() }),
            );
        }
        let distrust = if changes.is_empty() {
            None
        } else if answer.status >= 500 {
            Some("origin answered 5xx")
        } else if from_cache(h) {
            Some("the response came from a cache")
        } else if matches!(loaded, Loaded::StoreUnavailable) {
            Some("the session store is unavailable")
        } else {
            None
        };
        let changes = match distrust {
            Some(reason) => {
                self.log(
                    Level::Warn,
                    "control_ignored",
                    json!({ "reason": reason, "status": answer.status }),
                );
                Changes::default()
            }
            None => changes,
        };
        let origin = OriginResponse {
            strip: h
                .iter()
                .filter(|(name, _)| headers::is_session_alias(name))
                .map(|(name, _)| name.to_owned())
                .collect(),
            cache_control: h.get("cache-control").map(str::to_owned),
        };
        self.decide(loaded, changes, origin)
    }

    /// The origin could not be reached (the detail is for the log only).
    pub fn unreachable(&mut self, detail: &str) -> Step {
        match self.state {
            State::Forwarding(_) => self.fail(Failure::Origin(detail.to_owned())),
            _ => self.out_of_order("unreachable"),
        }
    }

    /// The origin did not answer within `ORIGIN_TIMEOUT`: no session change applies.
    pub fn timed_out(&mut self) -> Step {
        match (&self.state, self.cfg.origin_timeout) {
            (State::Forwarding(_), Some(secs)) => {
                self.fail(Failure::OriginTimeout(secs.saturating_mul(1000)))
            }
            _ => self.out_of_order("timed_out"),
        }
    }

    /// Applies `changes` to the session, then asks for what that takes: the calls to
    /// the user's objects, the tombstone, the KV writes, and finally the answer.
    fn decide(&mut self, loaded: Loaded, changes: Changes, origin: OriginResponse) -> Step {
        let cfg = Rc::clone(&self.cfg);
        let (loaded, changes, planning) = self.before_changes(loaded, changes);
        let finished = session::finish(&cfg, loaded, changes, self.now, &mut self.entropy, self.kv);
        let outcome = match finished {
            Ok(o) => o,
            Err(FinishError::TooLarge { size }) => return self.fail(Failure::TooLarge(size)),
        };
        let users = self.users_plan(planning, &outcome);
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
            users: users.calls,
            if_refused: users.if_refused,
            ops,
            set_cookie: outcome.set_cookie,
            put,
            tombstone: outcome.kv_check.filter(|_| self.kv),
            origin,
        };
        self.next_write(writes)
    }

    /// The tombstone looked at before a session's put: absent, the writes go ahead;
    /// present, the session was revoked (at another location, whose deletion has not
    /// reached this one yet), so it is not written, its record is deleted here too and
    /// the browser's cookie cleared.
    fn checked(&mut self, mut writes: Writes, found: Result<Option<String>, StoreError>) -> Step {
        match found {
            Ok(None) => self.next_write(writes),
            Ok(Some(_)) => {
                self.log(
                    Level::Warn,
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
                writes.set_cookie = Some(session::clearing_cookie(&self.cfg));
                self.next_write(writes)
            }
            Err(e) => self.store_failed(writes, e),
        }
    }

    /// The result of the [`Step::KvPut`] or [`Step::KvDelete`] asked for: `Ok`, or the
    /// store's error message. After an error no more writes are asked for;
    /// `SESSION_KV_FAILURE` decides the answer.
    pub fn written(&mut self, result: Result<(), String>) -> Step {
        let State::Writing(mut writes) = mem::replace(&mut self.state, State::Done) else {
            return self.out_of_order("written");
        };
        match result {
            Ok(()) => {
                writes.ops.pop_front();
                writes.put = false;
                self.next_write(writes)
            }
            Err(detail) => {
                let op = match writes.ops.front().map(|w| &w.step) {
                    Some(Step::KvDelete { .. }) => StoreOp::Delete,
                    _ => StoreOp::Put,
                };
                self.store_failed(writes, StoreError { op, detail })
            }
        }
    }

    /// A store operation on the way to the answer failed. A revocation, or a logout,
    /// fails closed; otherwise `SESSION_KV_FAILURE` decides.
    fn store_failed(&mut self, mut writes: Writes, e: StoreError) -> Step {
        let revoking = match e.op {
            StoreOp::Users => writes.users.front().is_some_and(|w| w.revokes),
            StoreOp::Get | StoreOp::Put | StoreOp::Delete => {
                writes.ops.front().is_some_and(|w| w.revokes)
            }
        };
        let proxy = matches!(self.purpose, Purpose::Proxy { .. });
        if proxy && !revoking && self.cfg.kv_failure == KvFailure::Open {
            self.log_open_failure(&e);
            if e.op == StoreOp::Users {
                // A check or a registration: the session is checked and registered on
                // its next check instead.
                writes.users.pop_front();
                return self.next_write(writes);
            }
            // Keep the browser's current cookie rather than point it at a record that
            // was never written.
            if writes.put {
                writes.set_cookie = None;
            }
            writes.ops.clear();
            return self.next_write(writes);
        }
        self.fail(Failure::Store(e))
    }

    /// Asks for the next write (which stays first in its queue until it is made), or
    /// for the answer once they are all made.
    fn next_write(&mut self, mut writes: Writes) -> Step {
        if let Some(u) = writes.users.front() {
            let step = Step::Users(u.call.clone());
            self.state = State::Writing(writes);
            return step;
        }
        if let Some(key) = writes.tombstone.take() {
            self.state = State::Checking(writes);
            return Step::KvGet { key };
        }
        if let Some(op) = writes.ops.front() {
            let step = op.step.clone();
            self.state = State::Writing(writes);
            return step;
        }
        match &self.purpose {
            Purpose::Logout { next } => {
                let sc = writes
                    .set_cookie
                    .unwrap_or_else(|| session::clearing_cookie(&self.cfg));
                Step::Reply(match next {
                    Some(n) => Reply::new(303, TEXT, "")
                        .with("location", n.as_str())
                        .with("set-cookie", sc),
                    None => Reply::new(204, TEXT, "").with("set-cookie", sc),
                })
            }
            Purpose::RevokeSession(_) => Step::Reply(Reply::new(204, TEXT, "")),
            _ => {
                let OriginResponse {
                    strip,
                    cache_control,
                } = writes.origin;
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
        }
    }
}

/// The request-side parts of the forward: everything but the session's own headers,
/// which are known once the session is loaded.
fn forward_plan(cfg: &Config, req: &Incoming<'_>, parts: forward::UrlParts<'_>) -> Forward {
    let h = &req.headers;
    let bodiless = cross_origin::is_get_or_head(req.method);
    let strip = h
        .iter()
        .map(|(name, _)| name)
        .filter(|name| {
            headers::is_reserved_request(name)
                || headers::is_path_override(name)
                || cfg.guards.drops_client_header(name)
                || (bodiless && matches!(*name, "content-length" | "transfer-encoding"))
        })
        .map(str::to_owned)
        .collect();
    let cookie = match (h.get("cookie"), cfg.forward_cookie) {
        (Some(c), false) => match cookie_header::strip(c, &cfg.cookie.name) {
            Stripped::Unchanged => CookieEdit::Keep,
            Stripped::Rest(rest) => CookieEdit::Set(rest),
            Stripped::Empty => CookieEdit::Remove,
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
        identity: Vec::new(),
        via: cfg.keys.current().loop_mark().to_owned(),
    }
}

pub mod endpoints;
mod users_flow;
mod wire;

pub use wire::HeaderEdit;

#[cfg(test)]
mod kv_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod users_tests;
