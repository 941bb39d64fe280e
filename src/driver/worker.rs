//! keycard inside your own Rust Worker: the `worker` cargo feature.
//!
//! [`Keycard::serve`] runs one request through the same [`Exchange`] the standalone
//! Worker runs, from a workers-rs `#[event(fetch)]` handler, and calls your handler
//! where the standalone Worker would forward to the origin:
//!
//! ```no_run
//! use keycard::worker::{Keycard, Session};
//! use worker::{event, Context, Env, Request, Response, Result};
//!
//! #[event(fetch)]
//! async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
//!     Keycard::from_env(&env).serve(req, &env, app).await
//! }
//!
//! async fn app(_req: Request, session: &mut Session) -> Result<Response> {
//!     let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
//!     session.insert("visits", visits)?;
//!     Response::ok(format!("visit {visits}"))
//! }
//! # fn main() {}
//! ```
//!
//! What it does, in order, is what the README's "How one request flows" says, with your handler as
//! the origin:
//!
//! - the configuration is the same environment variables, read and validated once per
//!   isolate; a bad one answers every request `500 keycard: misconfigured` and logs the
//!   variable, as the standalone Worker does;
//! - sessions live in the same signed (or sealed) cookie, in the same format, and in
//!   the same KV namespace (`SESSION_KV_BINDING`, through workers-rs' KV API): a cookie
//!   either one issues, the other reads, given the same secret and cookie name;
//! - keycard's own endpoints (`/.keycard/health`, `logout`, the inspector's JSON) and
//!   the guards answer before your handler is called;
//! - your handler gets the client's request as an origin would: without the session
//!   cookie or any reserved header, with `X-Session`, `X-Session-Status` and the other
//!   forwarded headers set by keycard. It changes the session through [`Session`]
//!   only: any `X-Session*` header it sets itself is removed and logged, never obeyed;
//! - when it returns, the [`Session`]'s edits become the origin protocol's control
//!   headers and apply exactly as an origin's would ([`crate::origin::embedded`]); the client
//!   gets your response with keycard's `Set-Cookie` added (your own `Set-Cookie`
//!   headers are kept) and never a control header.
//!
//! `ORIGIN_URL` and `ORIGIN_TIMEOUT` do not apply: there is no origin to reach.
//!
//! Sign out everywhere works as in the standalone Worker once your Worker exports
//! [`KeycardUsers`] and binds it (see its docs): with the binding, the exchange's calls
//! to a user's object go to that class; without it, keycard runs as the standalone
//! Worker does without it.

use std::rc::Rc;

use wasm_bindgen::JsValue;
use worker::{Env, Headers, KvStore, Request, Response, Result};

/// The configuration [`Keycard::config`] read, and what was wrong with it.
pub use crate::config::{Config, ConfigError};
use crate::crypto::keys::OsEntropy;
use crate::driver::js_env;
use crate::exchange::{
    self, Answer, Binding, Bindings, Exchange, Failure, Forward, Forwarding, HeaderEdit, Incoming,
    Level, Log, Reply, Step,
};
use crate::http::headers::{self, HeaderList};
pub use crate::origin::embedded::{Session, SessionError};
use crate::session::record::KV_CACHE_TTL;
use crate::session::Loaded;
pub use crate::session::Status;

mod provider;
mod users;
pub use users::KeycardUsers;

impl From<SessionError> for worker::Error {
    fn from(e: SessionError) -> worker::Error {
        worker::Error::RustError(e.to_string())
    }
}

/// keycard, configured from a Worker's environment.
#[derive(Debug, Clone)]
pub struct Keycard {
    cfg: js_env::IsolateConfig,
}

impl Keycard {
    /// Reads the configuration from `env`'s variables and secrets (`docs/configuration.md`), once per isolate: later calls return the first result.
    /// It does not fail: a misconfiguration is answered by [`Keycard::serve`], the way
    /// the standalone Worker answers it. [`Keycard::config`] says which it is.
    pub fn from_env(env: &Env) -> Keycard {
        Keycard {
            cfg: js_env::config(env),
        }
    }

    /// The validated configuration, or the variable at fault and what is wrong.
    pub fn config(&self) -> std::result::Result<&Config, &ConfigError> {
        self.cfg.as_deref()
    }

    /// Serves `req`: keycard's endpoints and guards, then the session, then `app` in
    /// place of the origin (see the [module docs](self)), then the session's changes.
    ///
    /// Store failures follow `SESSION_KV_FAILURE` and keycard's other failures are
    /// answered as the standalone Worker answers them (opaque 5xx bodies, the detail in
    /// a log line). An `Err` from `app` is returned as it is, and no session change
    /// applies.
    pub async fn serve<F>(&self, req: Request, env: &Env, app: F) -> Result<Response>
    where
        F: AsyncFnOnce(Request, &mut Session) -> Result<Response>,
    {
        let cfg = match &self.cfg {
            Ok(cfg) => Rc::clone(cfg),
            Err(e) => {
                let (step, log) = exchange::misconfigured(e);
                js_env::write_logs([log]);
                return match step {
                    Step::Reply(r) => reply(r),
                    _ => internal("misconfigured without a reply"),
                };
            }
        };
        let bindings = Bindings {
            // No inspector page: its JSON endpoint still answers.
            assets: Binding::Absent,
            // The handler is the origin: route mode on workers.dev is no mistake here.
            forwarding: Forwarding::Handler,
            ..js_env::bindings(env, &cfg)
        };
        let (method, url) = (req.inner().method(), req.inner().url());
        let request_headers = lines(req.headers());
        let incoming = Incoming {
            method: &method,
            url: &url,
            headers: HeaderList::new(&request_headers),
        };
        let now = (js_sys::Date::now() / 1000.0) as u64;
        let (ex, step) = Exchange::start(cfg, bindings, &incoming, now, OsEntropy);
        Drive {
            ex,
            env,
            req: &req,
            app: Some(app),
            kv: None,
            response: None,
        }
        .run(step)
        .await
    }
}

/// One request in flight: the exchange and what carrying out its steps needs.
struct Drive<'a, F> {
    ex: Exchange,
    env: &'a Env,
    req: &'a Request,
    /// The handler, until it is called.
    app: Option<F>,
    /// The KV namespace, once asked for.
    kv: Option<KvStore>,
    /// The handler's response, once there is one.
    response: Option<Response>,
}

impl<F> Drive<'_, F>
where
    F: AsyncFnOnce(Request, &mut Session) -> Result<Response>,
{
    /// Carries out each step and hands its result back, until a final one. The one
    /// place that knows every kind of step.
    async fn run(mut self, mut step: Step) -> Result<Response> {
        loop {
            js_env::write_logs(self.ex.take_logs());
            step = match step {
                Step::Reply(r) => return reply(r),
                Step::KvGet { key } => {
                    let found = match self.kv() {
                        Ok(kv) => kv.get(&key).cache_ttl(KV_CACHE_TTL).text().await,
                        Err(e) => Err(e),
                    };
                    self.ex.kv_read(found.map_err(|e| e.to_string()))
                }
                Step::KvPut(put) => {
                    let done = match self
                        .kv()
                        .and_then(|kv| kv.put(&put.key, put.value.as_str()))
                    {
                        Ok(builder) => builder.expiration_ttl(put.ttl).execute().await,
                        Err(e) => Err(e),
                    };
                    self.ex.written(done.map_err(|e| e.to_string()))
                }
                Step::KvDelete { key } => {
                    let done = match self.kv() {
                        Ok(kv) => kv.delete(&key).await,
                        Err(e) => Err(e),
                    };
                    self.ex.written(done.map_err(|e| e.to_string()))
                }
                Step::Forward(plan) => self.call_app(&plan).await?,
                Step::Pass => return self.response.take().map_or_else(no_response, Ok),
                Step::Rewrap(edits) => {
                    let Some(mut response) = self.response.take() else {
                        return no_response();
                    };
                    apply_edits(response.headers_mut(), &edits.header_edits())?;
                    return Ok(response);
                }
                Step::Users(u) => {
                    let binding = &self.ex.config().users.binding;
                    let call = u.json(country(self.req).as_deref());
                    let answer = users::ask(self.env, binding, &u.object, &call).await;
                    self.ex.users_answered(answer)
                }
                Step::Fetch(out) => {
                    let answer = provider::fetch(&out).await;
                    self.ex.fetched(answer)
                }
                Step::Verify(v) => {
                    let verified = provider::verify(&v).await;
                    self.ex.verified(verified)
                }
                // The exchange never asks for this: there is no assets binding here.
                Step::Asset { .. } => return internal("asset asked for without ASSETS"),
            };
        }
    }

    fn kv(&mut self) -> std::result::Result<&KvStore, worker::kv::KvError> {
        if self.kv.is_none() {
            let name = &self.ex.config().kv_binding;
            self.kv = Some(
                self.env
                    .kv(name)
                    .map_err(|e| worker::kv::KvError::InvalidKvStore(format!("{name}: {e}")))?,
            );
        }
        Ok(self.kv.as_ref().expect("set above"))
    }

    /// The handler in place of the origin: called with the request as it would be
    /// forwarded and the session it was forwarded with; its response and the session's
    /// edits, as control headers, are the origin's answer.
    async fn call_app(&mut self, plan: &Forward) -> Result<Step> {
        let Some(app) = self.app.take() else {
            return Ok(self.ex.unreachable("the handler was already called"));
        };
        let loaded = self.ex.forwarded();
        let mut session = Session::new(
            loaded.map_or(Status::None, Loaded::status),
            plan.session.handle.clone(),
            loaded
                .and_then(Loaded::session)
                .map(crate::session::SessionState::data)
                .unwrap_or_default(),
        );
        let response = app(forwarded_request(self.req, plan)?, &mut session).await?;

        let mut answer = String::new();
        for (name, value) in session.control_headers() {
            push_line(&mut answer, name, &value);
        }
        let kept = Headers::new();
        for (name, value) in response.headers().entries() {
            if headers::is_session_alias(&name) {
                js_env::write_logs([Log {
                    level: Level::Warn,
                    event: "handler_control_header",
                    detail: serde_json::json!({ "header": name, "hint": "change the session through Session" }),
                }]);
                continue;
            }
            kept.append(&name, &value)?;
            push_line(&mut answer, &name, &value);
        }
        let response = response.with_headers(kept);
        let step = self.ex.answered(&Answer {
            status: response.status_code(),
            headers: HeaderList::new(&answer),
        });
        self.response = Some(response);
        Ok(step)
    }
}

/// The client's request as the plan forwards it: a copy of it (method, URL, body) with
/// the plan's header edits applied, and without the body when the plan says so.
fn forwarded_request(req: &Request, plan: &Forward) -> Result<Request> {
    let headers = Headers(web_sys::Headers::new_with_headers(&req.headers().0)?);
    apply_edits(&headers, &plan.header_edits())?;
    let init = web_sys::RequestInit::new();
    init.set_headers(&headers.0);
    if plan.drop_body {
        init.set_body(&JsValue::NULL);
    }
    Ok(web_sys::Request::new_with_request_and_init(req.inner(), &init)?.into())
}

/// Applies the core's header edits to `headers`, in order.
fn apply_edits(headers: &Headers, edits: &[HeaderEdit<'_>]) -> Result<()> {
    for edit in edits {
        match edit {
            HeaderEdit::Delete(name) => headers.delete(name)?,
            HeaderEdit::Set(name, value) => headers.set(name, value)?,
            HeaderEdit::Append(name, value) => headers.append(name, value)?,
        }
    }
    Ok(())
}

/// `request.cf.country` when it is a string. Not worker's `Cf::country`, which panics
/// when it is something else: where the host lets a client set `cf` (plain workerd's
/// `cfBlobHeader`, say), that would be a client-made trap.
fn country(req: &Request) -> Option<String> {
    let cf = js_sys::Reflect::get(req.inner(), &JsValue::from_str("cf")).ok()?;
    js_sys::Reflect::get(&cf, &JsValue::from_str("country"))
        .ok()?
        .as_string()
}

/// Every header as `name:value` lines, the form the core reads.
fn lines(headers: &Headers) -> String {
    let mut out = String::new();
    for (name, value) in headers.entries() {
        push_line(&mut out, &name, &value);
    }
    out
}

fn push_line(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push(':');
    out.push_str(value);
    out.push('\n');
}

/// keycard's own response, with every header it carries.
fn reply(r: Reply) -> Result<Response> {
    let headers = Headers::new();
    for (name, value) in r.all_headers() {
        headers.append(name, value)?;
    }
    let builder = Response::builder()
        .with_status(r.status)
        .with_headers(headers);
    Ok(match r.body.is_empty() {
        true => builder.empty(),
        false => builder.fixed(r.body.into_bytes()),
    })
}

/// A bug in this driver, answered as one: an opaque 500 and a log line.
fn internal(detail: &str) -> Result<Response> {
    let (r, log) = Failure::Internal(detail.to_owned()).reply();
    js_env::write_logs([log]);
    reply(r)
}

fn no_response() -> Result<Response> {
    internal("final step without the handler's response")
}
