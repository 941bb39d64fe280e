//! What crosses between the exchange and a driver: what the request was, which
//! bindings the Worker has, each [`Step`] the driver carries out, and what it hands
//! back (the origin's [`Answer`]), with keycard's own [`Reply`] and its [`Log`] lines.

use serde_json::{json, Value};

use crate::crypto::jws::Verification;
use crate::http::headers::HeaderList;
use crate::http::outbound::Outbound;
use crate::origin::headers::SessionHeaders;
use crate::session::KvPut;
use crate::users::UsersCall;

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
    pub(super) fn new(status: u16, content_type: &'static str, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    pub(super) fn opaque(status: u16, body: &str) -> Reply {
        Reply::new(status, TEXT, body)
    }

    /// The 401 of a request that needs a signed-in user: `{"error":"session_required"}`
    /// with the fields of `more` (an object).
    pub(super) fn session_required(more: Value) -> Reply {
        let mut body = json!({ "error": "session_required" });
        if let (Some(b), Value::Object(m)) = (body.as_object_mut(), more) {
            b.extend(m);
        }
        Reply::new(401, JSON, body.to_string())
    }

    pub(super) fn with(mut self, name: &'static str, value: impl Into<String>) -> Reply {
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
    /// When set, the origin's response needs no [`Exchange::answered`](super::Exchange::answered)
    /// unless one of its header names (lower-case) contains this text: the answer would
    /// be [`Step::Pass`]. Set when the session needs nothing written whatever the
    /// response, which is most requests; a driver may call `answered` anyway.
    pub pass_unless: Option<&'static str>,
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
    /// `Secure-Session-Registration`: binding offered to the browser, for the session
    /// `set_cookie` issues (`KEYCARD_DEVICE_BOUND`).
    pub offer: Option<String>,
}

/// What the edge must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Step {
    /// Answer with this; done.
    Reply(Reply),
    /// Read the record at `key` with `cacheTtl` [`KV_CACHE_TTL`](crate::session::record::KV_CACHE_TTL), then
    /// [`Exchange::kv_read`](super::Exchange::kv_read).
    KvGet { key: String },
    /// Write this record, then [`Exchange::written`](super::Exchange::written).
    KvPut(KvPut),
    /// Delete the record at `key`, then [`Exchange::written`](super::Exchange::written).
    KvDelete { key: String },
    /// Send this to the origin, then [`Exchange::answered`](super::Exchange::answered) (or
    /// [`Exchange::unreachable`](super::Exchange::unreachable) or [`Exchange::timed_out`](super::Exchange::timed_out)).
    Forward(Box<Forward>),
    /// Fetch `url` from the assets binding and answer with it as it is; done.
    Asset { url: String },
    /// Answer with the origin's response untouched; done.
    Pass,
    /// Answer with the origin's response, edited; done.
    Rewrap(Rewrap),
    /// Make this call to a user's object, then [`Exchange::users_answered`](super::Exchange::users_answered).
    Users(UsersCall),
    /// Send this request to an identity provider and read its answer whole, then
    /// [`Exchange::fetched`](super::Exchange::fetched).
    Fetch(Outbound),
    /// Check this signature with the runtime's WebCrypto, then
    /// [`Exchange::verified`](super::Exchange::verified).
    Verify(Verification),
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
