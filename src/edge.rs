//! The wasm-only edge: `Env` -> [`Config`], the core's decisions -> Workers calls.
//!
//! Everything here is plumbing. It reads the request, asks the core what to do, talks
//! to KV and the origin, and builds the response. It works on the runtime's own
//! `Request`, `Headers` and `Response` objects (through `web_sys`) so that bodies
//! stream through untouched and the JS boundary is crossed as little as possible.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Promise, Reflect};
use serde_json::json;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Headers, Request as WsRequest, RequestInit, RequestRedirect, Response as WsResponse,
    ResponseInit,
};
use worker::Env;

use crate::config::{Config, ConfigError, KvFailure, StoreMode};
use crate::endpoints::{self, Endpoint};
use crate::keys::OsEntropy;
use crate::session::{self, Loaded};
use crate::store::kv::KvSessionStore;
use crate::store::{self, StoreError};
use crate::{control, forward};

thread_local! {
    /// The configuration, validated once per isolate (the result, good or bad).
    static CONFIG: RefCell<Option<Rc<Result<Config, ConfigError>>>> = const { RefCell::new(None) };
}

/// One structured log line. Callers never pass cookie values, secrets or session data.
fn log(level: &str, event: &str, detail: serde_json::Value) {
    let line = json!({ "keycard": event, "level": level, "detail": detail }).to_string();
    match level {
        "error" => web_sys::console::error_1(&line.into()),
        "warn" => web_sys::console::warn_1(&line.into()),
        _ => web_sys::console::log_1(&line.into()),
    }
}

/// A binding's value as a string: a secret or string var as it is, a TOML boolean or
/// number (which wrangler passes as JSON) in its usual spelling.
fn lookup(env: &Env, name: &str) -> Option<String> {
    let v = Reflect::get(env, &JsValue::from_str(name)).ok()?;
    if let Some(s) = v.as_string() {
        return Some(s);
    }
    if let Some(b) = v.as_bool() {
        return Some(b.to_string());
    }
    if let Some(n) = v.as_f64() {
        if n.fract() == 0.0 && n.abs() < 1e15 {
            return Some(format!("{}", n as i64));
        }
        return Some(n.to_string());
    }
    None
}

fn config(env: &Env) -> Rc<Result<Config, ConfigError>> {
    CONFIG.with(|c| {
        c.borrow_mut()
            .get_or_insert_with(|| Rc::new(Config::from_lookup(|name| lookup(env, name))))
            .clone()
    })
}

fn now() -> u64 {
    (js_sys::Date::now() / 1000.0) as u64
}

/// A small response from the edge itself: never cached.
fn plain(status: u16, content_type: &str, body: &str, extra: &[(&str, &str)]) -> WsResponse {
    let headers = Headers::new().expect("Headers can be built");
    let _ = headers.set("content-type", content_type);
    let _ = headers.set("cache-control", "no-store");
    for (k, v) in extra {
        let _ = headers.append(k, v);
    }
    let init = ResponseInit::new();
    init.set_status(status);
    init.set_headers(&headers);
    let body = (!body.is_empty()).then_some(body);
    WsResponse::new_with_opt_str_and_init(body, &init).expect("a plain Response can be built")
}

const TEXT: &str = "text/plain; charset=utf-8";

fn opaque(status: u16, body: &str) -> WsResponse {
    plain(status, TEXT, body, &[])
}

#[wasm_bindgen(inline_js = r#"
export function reserved_names(headers) {
  const out = [];
  for (const k of headers.keys()) {
    if (k.startsWith("x-session") && (k.length === 9 || k.charCodeAt(9) === 45)) out.push(k);
  }
  return out;
}

// Builds the forwarded request's headers in one call: a copy of the client's headers
// without the reserved namespace, the Cookie header rewritten (mode 1: set to `cookie`,
// 2: removed, 0: untouched) and keycard's own headers set. Every decision was made in
// Rust; this only applies them, to cross the JS boundary once instead of ~12 times.
export function forward_headers(h, cookieMode, cookie, session, status, id, expires, xff, host, proto) {
  const out = new Headers(h);
  for (const k of reserved_names(h)) out.delete(k);
  if (cookieMode === 1) out.set("cookie", cookie);
  else if (cookieMode === 2) out.delete("cookie");
  if (session !== undefined) out.set("x-session", session);
  out.set("x-session-status", status);
  if (id !== undefined) out.set("x-session-id", id);
  if (expires !== undefined) out.set("x-session-expires", expires);
  if (xff !== undefined) out.set("x-forwarded-for", xff);
  out.set("x-forwarded-host", host);
  out.set("x-forwarded-proto", proto);
  return out;
}
"#)]
extern "C" {
    /// The names in the reserved `X-Session*` namespace present in `headers`
    /// (lower-cased, as `Headers` keeps them). One call across the JS boundary instead of
    /// one per header: usually it returns an empty array.
    fn reserved_names(headers: &Headers) -> js_sys::Array;

    /// See the JS above: applies the forwarding decisions to a copy of `headers`.
    #[allow(clippy::too_many_arguments)]
    fn forward_headers(
        headers: &Headers,
        cookie_mode: u32,
        cookie: &str,
        session: Option<String>,
        status: &str,
        id: Option<String>,
        expires: Option<String>,
        xff: Option<String>,
        host: &str,
        proto: &str,
    ) -> Headers;
}

/// The reserved header names in `headers`, checked again on the Rust side.
fn reserved(headers: &Headers) -> Vec<String> {
    reserved_names(headers)
        .iter()
        .filter_map(|v| v.as_string())
        .filter(|n| forward::is_reserved(n))
        .collect()
}

/// Any error inside the edge that is not the client's doing.
enum EdgeError {
    Misconfigured(ConfigError),
    Store(StoreError),
    Origin(String),
    TooLarge(usize),
    Js(String),
}

/// The message of a thrown JS value, for the log.
fn js_message(v: &JsValue) -> String {
    v.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| v.as_string())
        .unwrap_or_else(|| "unknown JS error".into())
}

impl From<JsValue> for EdgeError {
    fn from(v: JsValue) -> Self {
        EdgeError::Js(js_message(&v))
    }
}

impl EdgeError {
    /// The single place where edge errors become HTTP: opaque bodies, detail in the log.
    fn into_response(self) -> WsResponse {
        match self {
            EdgeError::Misconfigured(e) => {
                log(
                    "error",
                    "misconfigured",
                    json!({ "var": e.var, "problem": e.problem }),
                );
                opaque(500, "keycard: misconfigured")
            }
            EdgeError::Store(e) => {
                log(
                    "error",
                    "kv_unavailable",
                    json!({ "op": e.op, "error": e.detail }),
                );
                plain(
                    503,
                    TEXT,
                    "keycard: session store unavailable",
                    &[("retry-after", "5")],
                )
            }
            EdgeError::Origin(msg) => {
                log("error", "origin_unreachable", json!({ "error": msg }));
                opaque(502, "keycard: origin unreachable")
            }
            EdgeError::TooLarge(size) => {
                log(
                    "error",
                    "session_too_large",
                    json!({ "cookie_bytes": size, "limit": session::MAX_COOKIE_LEN,
                            "hint": "use SESSION_STORE=auto or kv with a KV binding" }),
                );
                opaque(500, "keycard: internal error")
            }
            EdgeError::Js(msg) => {
                log("error", "internal", json!({ "error": msg }));
                opaque(500, "keycard: internal error")
            }
        }
    }
}

/// The Worker's `fetch` entry, exported the way `#[event(fetch)]` would export it but
/// working on the runtime's own `Request` and `Response`: the macro's `worker::Request`
/// and `worker::Response` wrappers re-read the request and rebuild every response,
/// which cost CPU on every request and would lose a WebSocket upgrade's socket.
#[wasm_bindgen]
pub async fn fetch(
    req: WsRequest,
    env: Env,
    _ctx: worker::worker_sys::Context,
) -> Result<JsValue, JsValue> {
    let resp = match handle(req, &env).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    Ok(resp.into())
}

/// The KV store, when the configuration uses one and the binding exists.
fn kv_store(cfg: &Config, env: &Env) -> Result<Option<KvSessionStore>, EdgeError> {
    if cfg.store == StoreMode::Cookie {
        return Ok(None);
    }
    match env.kv(&cfg.kv_binding) {
        Ok(kv) => Ok(Some(KvSessionStore(kv))),
        Err(_) if cfg.store == StoreMode::Auto => Ok(None),
        Err(_) => Err(EdgeError::Misconfigured(ConfigError {
            var: "SESSION_KV_BINDING",
            problem: format!("names {:?}, which is not a KV namespace binding of this Worker (required by SESSION_STORE=kv)", cfg.kv_binding),
        })),
    }
}

/// Reads and loads the session, applying `SESSION_KV_FAILURE` when KV cannot be read.
async fn load_session(
    cfg: &Config,
    kv: Option<&KvSessionStore>,
    cookie: Option<&str>,
    now: u64,
) -> Result<Loaded, EdgeError> {
    let read = session::read(cfg, cookie, now);
    if let session::Read::Bad(status, why) = &read {
        log(
            "warn",
            "bad_cookie",
            json!({ "status": status.as_str(), "reason": why.to_string() }),
        );
    }
    match store::load(read, kv).await {
        Ok(l) => Ok(l),
        Err(e) if cfg.kv_failure == KvFailure::Open => {
            log(
                "error",
                "kv_unavailable",
                json!({ "op": e.op, "error": e.detail, "policy": "open" }),
            );
            Ok(Loaded::store_unavailable())
        }
        Err(e) => Err(EdgeError::Store(e)),
    }
}

async fn handle(req: WsRequest, env: &Env) -> Result<WsResponse, EdgeError> {
    let cfg_rc = config(env);
    let cfg = match &*cfg_rc {
        Ok(c) => c,
        Err(e) => return Err(EdgeError::Misconfigured(e.clone())),
    };
    let kv = kv_store(cfg, env)?;
    let now = now();
    let url = req.url();
    let method = req.method();
    let parts = forward::split_url(&url)
        .ok_or_else(|| EdgeError::Js("request URL has no scheme".into()))?;
    let (path, query) = match parts.path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (parts.path_and_query, None),
    };
    let in_headers = req.headers();
    let cookie = in_headers.get("cookie").ok().flatten();

    if let Some(ep) = endpoints::route(cfg, &method, path, query) {
        return endpoint(ep, cfg, env, kv.as_ref(), &req, cookie.as_deref(), now).await;
    }

    let loaded = load_session(cfg, kv.as_ref(), cookie.as_deref(), now).await?;
    let fwd = session::forward_headers(cfg, &loaded, now, &method, &url);

    // The forwarded request: the client's headers minus the reserved namespace, the
    // session cookie removed, and ours added.
    let (cookie_mode, rest) = match (&cookie, cfg.forward_cookie) {
        (Some(c), false) => match forward::strip_cookie(c, &cfg.cookie.name) {
            Some(rest) => (1, rest),
            None => (2, String::new()),
        },
        _ => (0, String::new()),
    };
    let client_ip = in_headers.get("cf-connecting-ip").ok().flatten();
    let xff = in_headers.get("x-forwarded-for").ok().flatten();
    let out_headers = forward_headers(
        &in_headers,
        cookie_mode,
        &rest,
        fwd.session,
        fwd.status,
        fwd.handle,
        fwd.expires.map(|e| e.to_string()),
        forward::forwarded_for(xff.as_deref(), client_ip.as_deref()),
        parts.host,
        parts.scheme,
    );

    let init = RequestInit::new();
    init.set_method(&method);
    init.set_headers_headers(&out_headers);
    init.set_redirect(RequestRedirect::Manual);
    if let Some(body) = req.body() {
        init.set_body(&body);
    }
    let target = forward::origin_url(cfg.origin_url.as_ref().map(|o| o.0.as_str()), &url);
    let out_req = WsRequest::new_with_str_and_init(&target, &init)?;

    let promise: Promise = match &cfg.origin_service {
        Some(name) => {
            let binding = Reflect::get(env, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED);
            if binding.is_undefined() {
                return Err(EdgeError::Misconfigured(ConfigError {
                    var: "ORIGIN_SERVICE",
                    problem: format!(
                        "names {name:?}, which is not a service binding of this Worker"
                    ),
                }));
            }
            binding
                .unchecked_into::<worker::worker_sys::Fetcher>()
                .fetch(&out_req)
                .map_err(|e| EdgeError::Origin(js_message(&e)))?
        }
        None => {
            let global: web_sys::WorkerGlobalScope = js_sys::global().unchecked_into();
            global.fetch_with_request(&out_req)
        }
    };
    let origin_resp: WsResponse = match JsFuture::from(promise).await {
        Ok(r) => r.unchecked_into(),
        Err(e) => return Err(EdgeError::Origin(js_message(&e))),
    };

    respond(cfg, kv.as_ref(), loaded, origin_resp, now).await
}

/// Applies the origin's control headers, strips them, and issues the cookie.
async fn respond(
    cfg: &Config,
    kv: Option<&KvSessionStore>,
    loaded: Loaded,
    origin: WsResponse,
    now: u64,
) -> Result<WsResponse, EdgeError> {
    let status = origin.status();
    let o_headers = origin.headers();
    let names = reserved(&o_headers);
    let has_control = !names.is_empty();
    let changes = if !has_control {
        control::Changes::default()
    } else {
        let get = |n: &str| o_headers.get(n).ok().flatten();
        let (set, action, max_age) = (
            get("x-session-set"),
            get("x-session-action"),
            get("x-session-max-age"),
        );
        if status >= 500 {
            log(
                "warn",
                "control_ignored",
                json!({ "reason": "origin answered 5xx", "status": status }),
            );
            control::Changes::default()
        } else {
            let (changes, errors) =
                control::parse(set.as_deref(), action.as_deref(), max_age.as_deref());
            for e in errors {
                log(
                    "error",
                    "bad_control_header",
                    json!({ "error": e.to_string() }),
                );
            }
            changes
        }
    };

    let outcome = match session::finish(cfg, loaded, changes, now, &mut OsEntropy, kv.is_some()) {
        Ok(o) => o,
        Err(session::FinishError::TooLarge { size }) => return Err(EdgeError::TooLarge(size)),
    };
    let mut set_cookie = outcome.set_cookie.clone();
    if let Some(store) = kv {
        if let Err(e) = store::apply(&outcome, store).await {
            match cfg.kv_failure {
                KvFailure::Closed => return Err(EdgeError::Store(e)),
                KvFailure::Open => {
                    // Keep the browser's current cookie rather than point it at a
                    // record that was never written.
                    log(
                        "error",
                        "kv_unavailable",
                        json!({ "op": e.op, "error": e.detail, "policy": "open" }),
                    );
                    if outcome.kv_put.is_some() {
                        set_cookie = None;
                    }
                }
            }
        }
    }
    if !has_control && set_cookie.is_none() {
        // Nothing to strip or add: hand the origin's response through untouched (the
        // common read-only request; this also keeps WebSocket upgrades as they are).
        return Ok(origin);
    }
    let headers = Headers::new_with_headers(&o_headers)?;
    for name in &names {
        headers.delete(name)?;
    }
    if let Some(sc) = &set_cookie {
        headers.append("set-cookie", sc)?;
    }

    let init = ResponseInit::new();
    init.set_status(status);
    init.set_status_text(&origin.status_text());
    init.set_headers(&headers);
    if status == 101 {
        // A WebSocket upgrade: hand the socket through.
        if let Ok(ws) = Reflect::get(&origin, &JsValue::from_str("webSocket")) {
            let _ = Reflect::set(&init, &JsValue::from_str("webSocket"), &ws);
        }
    }
    Ok(WsResponse::new_with_opt_readable_stream_and_init(
        origin.body().as_ref(),
        &init,
    )?)
}

async fn endpoint(
    ep: Endpoint,
    cfg: &Config,
    env: &Env,
    kv: Option<&KvSessionStore>,
    req: &WsRequest,
    cookie: Option<&str>,
    now: u64,
) -> Result<WsResponse, EdgeError> {
    const JSON: &str = "application/json";
    Ok(match ep {
        Endpoint::Health => plain(200, JSON, &endpoints::health_json(cfg, kv.is_some()), &[]),
        Endpoint::NotFound => opaque(404, "keycard: not found"),
        Endpoint::AddSlash => plain(308, TEXT, "", &[("location", &cfg.path_prefix)]),
        Endpoint::MethodNotAllowed(allow) => plain(
            405,
            TEXT,
            "keycard: method not allowed",
            &[("allow", allow)],
        ),
        Endpoint::Inspect => {
            let loaded = load_session(cfg, kv, cookie, now).await?;
            let len = cookie
                .and_then(|c| {
                    session::cookie_values(c, &cfg.cookie.name)
                        .next()
                        .map(|v| v.len() + cfg.cookie.name.len() + 1)
                })
                .unwrap_or(0);
            plain(
                200,
                JSON,
                &endpoints::inspect_json(cfg, &loaded, len, now),
                &[],
            )
        }
        Endpoint::InspectorAsset(name) => inspector_asset(env, req, &name).await?,
        Endpoint::Logout { next } => {
            let site = req.headers().get("sec-fetch-site").ok().flatten();
            if site.as_deref() == Some("cross-site") {
                log(
                    "warn",
                    "logout_refused",
                    json!({ "reason": "cross-site request" }),
                );
                return Ok(opaque(403, "keycard: cross-site logout refused"));
            }
            let loaded = load_session(cfg, kv, cookie, now).await?;
            let destroy = control::Changes {
                destroy: true,
                ..Default::default()
            };
            let outcome = session::finish(cfg, loaded, destroy, now, &mut OsEntropy, kv.is_some())
                .map_err(|_| EdgeError::Js("destroy cannot overflow".into()))?;
            if let Some(store) = kv {
                store::apply(&outcome, store)
                    .await
                    .map_err(EdgeError::Store)?;
            }
            let sc = outcome
                .set_cookie
                .unwrap_or_else(|| session::clearing_cookie(cfg));
            match next {
                Some(n) => plain(303, TEXT, "", &[("location", &n), ("set-cookie", &sc)]),
                None => plain(204, TEXT, "", &[("set-cookie", &sc)]),
            }
        }
    })
}

/// Serves the inspector's static files from the `ASSETS` binding (Workers static
/// assets), only ever reached when `KEYCARD_INSPECT=true`.
async fn inspector_asset(env: &Env, req: &WsRequest, name: &str) -> Result<WsResponse, EdgeError> {
    let Ok(assets) = Reflect::get(env, &JsValue::from_str("ASSETS")) else {
        return Ok(opaque(404, "keycard: not found"));
    };
    if assets.is_undefined() {
        return Ok(opaque(404, "keycard: not found"));
    }
    let file = if name.is_empty() { "index.html" } else { name };
    let url = forward::split_url(&req.url())
        .map(|p| format!("{}://{}/{file}", p.scheme, p.host))
        .ok_or_else(|| EdgeError::Js("bad URL".into()))?;
    let fetcher: worker::worker_sys::Fetcher = assets.unchecked_into();
    let resp: WsResponse = JsFuture::from(fetcher.fetch_with_str(&url)?)
        .await?
        .unchecked_into();
    Ok(resp)
}
