//! A request for the origin, from its guards to the forward: the cross-origin check,
//! the paths that need a sign-in, loading the session (from the cookie, and KV when it
//! lives there), and what the origin is told.

use std::mem;
use std::rc::Rc;

use serde_json::{json, Value};

use super::failure::{method_for_log, unavailable};
use super::*;
use crate::config::{Config, KvFailure};
use crate::crypto::keys::Entropy;
use crate::guard::SignIn;
use crate::http::cookie_header::{self, Stripped};
use crate::http::cross_origin::{self, Provenance};
use crate::http::path_guard::Verdict;
use crate::http::{forward, headers};
use crate::oidc::flow;
use crate::origin::headers::{forward_headers, SessionHeaders};
use crate::session::{self, Changes, Loaded, Read, SessionState, Status};

impl<E: Entropy> Exchange<E> {
    /// The refusal of a cross-origin request to one of keycard's own unsafe endpoints
    /// (logged as `event`), or `None` when it may go ahead.
    pub(super) fn refuse_cross_origin(
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
    pub(super) fn cross_origin_refusal(&mut self, event: &'static str, detail: Value) -> Step {
        self.log(Level::Warn, event, detail);
        Step::Reply(Reply::opaque(403, "keycard: cross-origin request refused"))
    }

    /// A request for the origin: the guards first (on its path and query, which some
    /// origins route on), then the session.
    pub(super) fn proxy(&mut self, req: &Incoming<'_>, parts: forward::UrlParts<'_>) -> Step {
        let cfg = Rc::clone(&self.cfg);
        let (g, h) = (&cfg.guards, &req.headers);
        let target = parts.path_and_query;
        if g.cross_origin_refused(req.method, target, h, &parts) {
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
    pub(super) fn load(&mut self, cookie: Option<&str>, plan: Option<Box<Forward>>) -> Step {
        self.proofs = session::short_cookies(&self.cfg, cookie);
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
            Read::Ready(s) => Loaded::Valid(s).proven(&self.cfg, &self.proofs, self.now),
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
                    Ok(record) => pending.complete(record.as_deref()).proven(
                        &self.cfg,
                        &self.proofs,
                        self.now,
                    ),
                    Err(e) if self.cfg.kv_failure == KvFailure::Open => {
                        self.log_open_failure(&e);
                        Loaded::StoreUnavailable
                    }
                    Err(e) => return self.fail(Failure::Store(e)),
                };
                self.loaded(loaded, plan)
            }
            State::Checking(writes) => self.checked(writes, found),
            _ => self.out_of_order("kv_read"),
        }
    }

    pub(super) fn log_open_failure(&mut self, e: &StoreError) {
        self.log(
            Level::Error,
            unavailable(e),
            json!({ "op": e.op.as_str(), "error": e.detail, "policy": "open" }),
        );
    }

    pub(super) fn loaded(&mut self, loaded: Loaded, plan: Option<Box<Forward>>) -> Step {
        // keycard's own endpoints that act as the session (a sign-out, the device list,
        // a revoke, a sign-in that replaces it) take a cookie that names no device only
        // once its user's object says it is not a copy from before binding.
        let acts = matches!(
            self.purpose,
            Purpose::Logout { .. }
                | Purpose::ListSessions
                | Purpose::RevokeSession(_)
                | Purpose::Callback(_)
        );
        if acts && self.binding_unknown(&loaded) {
            let data = loaded.session().map(SessionState::data);
            if let Some(call) = self.check_of(&loaded, data.as_ref()) {
                self.state = State::Asking(users_flow::Ask::Endpoint { loaded });
                return Step::Users(call);
            }
        }
        self.dispatch(loaded, plan)
    }

    /// What the request is for, once its session is loaded (and, for an endpoint that
    /// acts as it, its binding known).
    pub(super) fn dispatch(&mut self, loaded: Loaded, plan: Option<Box<Forward>>) -> Step {
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
            (Purpose::Inspect { cookies }, _) => {
                let cookies = cookies.clone();
                self.inspect(loaded, cookies)
            }
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
            (Purpose::NoFlow { clear }, _) => {
                let clear = clear.clone();
                self.no_flow(&loaded, clear)
            }
            (Purpose::Callback(_), _) => {
                match mem::replace(&mut self.purpose, Purpose::ListSessions) {
                    Purpose::Callback(r) => self.returned(r, loaded),
                    _ => self.out_of_order("loaded"),
                }
            }
            (Purpose::Device(_), _) => {
                match mem::replace(&mut self.purpose, Purpose::ListSessions) {
                    Purpose::Device(asked) => self.device(asked, loaded),
                    _ => self.out_of_order("loaded"),
                }
            }
            (Purpose::SignedIn { .. } | Purpose::DeviceBound(_), _) => self.out_of_order("loaded"),
            (Purpose::Proxy { .. }, None) => self.out_of_order("loaded"),
        }
    }

    /// Forwards the request with the session's headers, unless its path needs a
    /// signed-in user and there is none. The session data read for the guards counts
    /// only while the session is valid: one its user's object revoked, or that did not
    /// prove its device, signs no one in.
    pub(super) fn forward(&mut self, loaded: Loaded, guarded: Guarded) -> Step {
        let cfg = Rc::clone(&self.cfg);
        let g = &cfg.guards;
        let Guarded {
            mut plan,
            data,
            required,
            navigation,
        } = guarded;
        let data = data.filter(|_| loaded.session().is_some());
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
        plan.session = forward_headers(&cfg, &loaded, self.now, &self.method, &self.url);
        plan.pass_unless = self
            .passes_quietly(&loaded)
            .then_some(headers::SESSION_ALIAS_MARK);
        self.state = State::Forwarding(loaded);
        Step::Forward(plan)
    }

    /// The answer to a request on a required path without a signed-in user: a page
    /// load goes to the login page, anything else gets a 401 saying where to sign in;
    /// either way the login URL says whether the session was revoked. Nothing is
    /// forwarded; a bad cookie is still cleared.
    pub(super) fn sign_in_first(&mut self, loaded: &Loaded, navigation: bool) -> Step {
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
}

/// The client's `Cookie` without keycard's own: the session cookie (unless
/// `SESSION_FORWARD_COOKIE`), with sign-in on the cookies of sign-ins in flight, and
/// with device-bound sessions on the short-lived cookie, which no origin has a use for.
fn strip_cookies(cfg: &Config, header: &str) -> Stripped {
    let session = cfg.cookie.name.as_str();
    let flow = cfg
        .sign_in
        .as_ref()
        .map(|_| flow::cookie_prefix(cfg.cookie.secure));
    let bound = cfg.device_bound.as_ref().map(|d| d.cookie.as_str());
    match (flow, bound, cfg.forward_cookie) {
        (None, None, true) => Stripped::Unchanged,
        (None, None, false) => cookie_header::strip(header, session),
        (_, _, forward) => cookie_header::strip_where(header, |n| {
            (n == session && !forward) || flow.is_some_and(|f| n.starts_with(f)) || bound == Some(n)
        }),
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
    let cookie = match h.get("cookie").map(|c| strip_cookies(cfg, c)) {
        None | Some(Stripped::Unchanged) => CookieEdit::Keep,
        Some(Stripped::Rest(rest)) => CookieEdit::Set(rest),
        Some(Stripped::Empty) => CookieEdit::Remove,
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
        pass_unless: None,
    }
}
