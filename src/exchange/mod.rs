//! One request's way through keycard, as a state machine whose decisions are data.
//!
//! The edge starts an [`Exchange`] with what it read from the request and gets a
//! [`Step`] back: read or write a KV record, forward the request to the origin, ask an
//! identity provider or check its signature, serve an inspector asset, or answer. It
//! carries the step out and hands the result back ([`Exchange::kv_read`],
//! [`Exchange::written`], [`Exchange::answered`], [`Exchange::unreachable`],
//! [`Exchange::timed_out`], [`Exchange::fetched`], [`Exchange::verified`]), which
//! returns the next step, until a final one.
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
//!
//! # States
//!
//! What the exchange waits for in each state, and where each answer leads. A call that
//! does not fit the state is answered as a bug of the driver's: an opaque 500.
//!
//! | state | waits for | then |
//! | --- | --- | --- |
//! | (start) | [`Exchange::start`] | a reply before any session is read (a misconfiguration, a loop, a guard, an endpoint that needs none), an inspector asset, `SigningIn` (a login whose provider's metadata is not cached), `Loading`, or at once *the session loaded* |
//! | `Loading` | [`Exchange::kv_read`]: the session's record | *the session loaded* (a store failure follows `SESSION_KV_FAILURE`) |
//! | *the session loaded* | nothing | for the origin: `Asking` (a check before forwarding), `Forwarding`, or a sign-in-first reply; for keycard's endpoints: `Asking` (the inspector, the device list, a revoke, and first, with device-bound sessions in the users' objects, whether a signed-in cookie without its device's mark is bound: for a logout, the device list, a revoke or a callback), a logout's *writes*, or a callback's `SigningIn` |
//! | `SigningIn` | [`Exchange::fetched`] (the provider's metadata, token, keys or userinfo) or [`Exchange::verified`] (the ID token's signature) | the next of them, the redirect to the provider, a page (a refusal, a failure, a 503 for a provider that is down), or the new session's *writes* |
//! | `Proving` | [`Exchange::verified`]: a device's proof (`device.rs`) | the *writes* of the record with the key bound (a registration) or the challenge's time (a refresh), or a 400 |
//! | `Asking` | [`Exchange::users_answered`] | `Forwarding`, or a reply (an endpoint's answer, or the 401 of a revoked session) |
//! | `Forwarding` | [`Exchange::answered`]; [`Exchange::unreachable`] and [`Exchange::timed_out`] end it with a 502 or 504 | the *writes* of the origin's changes |
//! | *writes* | nothing | `Writing` for each write in order (a user's object, a KV put or delete), `Checking` before the put of an existing session; then the response, passed or rewrapped, or a logout's reply |
//! | `Checking` | [`Exchange::kv_read`]: the session's tombstone | the *writes* go on; a revoked session is written nowhere, and its cookie cleared |
//! | `Writing` | [`Exchange::written`], or [`Exchange::users_answered`] for a user's object | the *writes* go on; a failed write follows `SESSION_KV_FAILURE`, a failed revocation fails closed; after a sign-in's, the redirect to `next` |
//! | `Done` | nothing | |

use std::collections::VecDeque;
use std::mem;
use std::rc::Rc;

use endpoints::Endpoint;
use serde_json::{Map, Value};

use crate::config::{Config, StoreMode};
use crate::crypto::keys::{Entropy, OsEntropy};
use crate::http::forward;
use crate::session::{self, Loaded, Pending, SessionState};
use crate::users::{self, Device};

/// What the request is for; decided when it starts.
#[derive(Debug)]
enum Purpose {
    /// Forward it to the origin and hand back its response. `required`: the path needs
    /// a signed-in user (`KEYCARD_REQUIRE`); `navigation`: a browser is loading a page,
    /// so a missing sign-in is a redirect to the login page rather than a 401.
    Proxy { required: bool, navigation: bool },
    /// Answer the inspector with the session, the cookie being this long.
    Inspect { cookies: endpoints::CookieView },
    /// Destroy the session, then redirect to `next` (or answer 204).
    Logout { next: Option<String> },
    /// List the signed-in user's sessions.
    ListSessions,
    /// End one of the signed-in user's sessions (by handle), then answer 204.
    RevokeSession(String),
    /// Finish a sign-in with the provider, once the session is loaded.
    Callback(Box<sign_in::Returned>),
    /// A callback with no sign-in of this browser's to finish: once the session is
    /// loaded, home if signed in, else a page; `clear`: the stale flow cookie.
    NoFlow { clear: Option<String> },
    /// A user signed in with a provider: once the writes are made, to `next`, with the
    /// flow's cookie cleared.
    SignedIn { next: String, flow_cookie: String },
    /// A device's registration or refresh, once the session is loaded.
    Device(device::Asked),
    /// A device bound or refreshed: once the writes are made, this answer.
    DeviceBound(Box<device::Bound>),
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
/// which may refuse the session), the tombstone, the KV writes; then, once they are all
/// made, those of [`Writes::then`].
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
    /// `Secure-Session-Registration`, when the answer issues a cookie for a session
    /// that could be bound to its device.
    offer: Option<String>,
    /// Calls and writes made only once all of the above are: a device's registration
    /// puts the session under its new id first, and only then tells its users' objects
    /// and KV that the old id ended, so that a failure before leaves the old id whole.
    then: Option<Box<Later>>,
}

/// The second part of [`Writes`]: its calls to users' objects, then its KV writes.
#[derive(Debug, Default)]
struct Later {
    users: VecDeque<users_flow::UsersWrite>,
    ops: VecDeque<Write>,
}

impl Writes {
    /// The session is not issued after all: nothing is put, its cookie is `set_cookie`
    /// instead (the clearing one, or none), no binding is offered, since an offer
    /// belongs to the cookie it comes with, and nothing is made that was to follow.
    fn withdraw(&mut self, set_cookie: Option<String>) {
        self.put = false;
        self.set_cookie = set_cookie;
        self.offer = None;
        self.then = None;
    }
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
    /// Waiting for [`Exchange::fetched`] or [`Exchange::verified`]: a sign-in's
    /// exchange with its provider.
    SigningIn(sign_in::Waiting),
    /// Waiting for [`Exchange::verified`]: a device's proof.
    Proving(Box<device::Proving>),
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
    /// The request's short-lived cookies (`KEYCARD_DEVICE_BOUND`), one of which a bound
    /// session needs.
    proofs: Vec<String>,
    method: String,
    url: String,
    purpose: Purpose,
    state: State,
    logs: Vec<Log>,
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
            proofs: Vec::new(),
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
        let step = match check_bindings(&ex.cfg, bindings) {
            Ok(()) => ex.begin(req, bindings),
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

    fn begin(&mut self, req: &Incoming<'_>, bindings: Bindings) -> Step {
        let cfg = Rc::clone(&self.cfg);
        let parts = forward::split_url(req.url);
        if let Err(e) = check_route_mode(&cfg, bindings, parts.map_or("", |p| p.host)) {
            return self.fail(Failure::Misconfigured(e));
        }
        if req.headers.get("x-session-via") == Some(cfg.keys.current().loop_mark()) {
            return self.fail(Failure::Loop(loop_cause(&cfg)));
        }
        let assets = bindings.assets == Binding::Present;
        let Some(parts) = parts else {
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
                self.purpose = Purpose::Inspect {
                    cookies: endpoints::CookieView::of(&cfg, cookie),
                };
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
            Endpoint::DeviceRegister | Endpoint::DeviceRefresh => {
                self.device_asked(&ep, req, cookie)
            }
            Endpoint::Login(start) => self.login(cookie, &parts.origin(), start),
            Endpoint::Callback(query) => self.callback(cookie, &parts.origin(), &query),
            Endpoint::Logout { next } => {
                if let Some(refused) = self.refuse_cross_origin(req, parts, "logout_refused") {
                    return refused;
                }
                self.purpose = Purpose::Logout { next };
                self.load(cookie, None)
            }
        }
    }
}

mod device;
pub mod endpoints;
mod failure;
mod pages;
mod proxy;
mod sign_in;
mod step;
mod users_flow;
mod wire;
mod writes;

use failure::{check_bindings, check_route_mode, loop_cause};
pub use failure::{misconfigured, Failure};
pub use step::*;
pub use wire::HeaderEdit;

#[cfg(test)]
mod device_tests;
#[cfg(test)]
mod harness;
#[cfg(test)]
mod kv_tests;
#[cfg(test)]
mod sign_in_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod users_tests;
