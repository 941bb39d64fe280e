//! The wasm-only edge: the Worker's `env` -> [`Config`], and the core's [`Exchange`]
//! exported to the JS driver (`src/entry.js`) as a handful of synchronous calls.
//!
//! The driver does the platform's I/O (KV, the origin, the assets binding) and hands
//! each result back here; this module turns JS values into the core's types and back,
//! and writes the core's log lines. Nothing here awaits: a Rust future per request,
//! with its promise and closure plumbing, cost more CPU than all of keycard's own work
//! (BENCHMARKS.md).

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Reflect;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use web_sys::{Headers, Response, ResponseInit};

use crate::config::{Config, ConfigError, StoreMode};
use crate::exchange::{self, Answer, Bindings, CookieEdit, Incoming, Step};
use crate::keys::OsEntropy;
use crate::store::StoreError;

type Loaded = Rc<Result<Config, ConfigError>>;

thread_local! {
    /// The configuration, validated once per isolate (the result, good or bad).
    static CONFIG: RefCell<Option<Loaded>> = const { RefCell::new(None) };
}

/// A binding's value as a string: a secret or string var as it is, a TOML boolean or
/// number (which wrangler passes as JSON) in its usual spelling.
fn lookup(env: &JsValue, name: &str) -> Option<String> {
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

fn config(env: &JsValue) -> Loaded {
    CONFIG.with(|c| {
        c.borrow_mut()
            .get_or_insert_with(|| Rc::new(Config::from_lookup(|name| lookup(env, name))))
            .clone()
    })
}

/// Whether `env` has a binding (an object: KV namespace, service, assets) called `name`.
fn has_binding(env: &JsValue, name: &str) -> bool {
    Reflect::get(env, &JsValue::from_str(name)).is_ok_and(|v| v.is_object())
}

/// What the driver must do next; the data for it is on the [`Exchange`].
#[wasm_bindgen]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Do {
    /// Answer with `reply()`; done.
    Reply = 0,
    /// Read `key` from the KV binding named `binding`, then `record(..)`.
    KvGet = 1,
    /// Write `key` = `value` with `expirationTtl: ttl`, then `written(..)`.
    KvPut = 2,
    /// Delete `key`, then `written(..)`.
    KvDelete = 3,
    /// Send the client's request to the origin as `plan` says; then `answered(..)`
    /// or `unreachable(..)`.
    Forward = 4,
    /// Answer with the assets binding's response for `url`; done.
    Asset = 5,
    /// Answer with the origin's response untouched; done.
    Pass = 6,
    /// Answer with the origin's response without its `X-Session*` headers, with
    /// `set_cookie` appended when it is defined; done.
    Rewrap = 7,
}

/// One request in flight, as the JS driver sees it.
#[wasm_bindgen]
pub struct Exchange {
    cfg: Loaded,
    inner: exchange::Exchange,
    step: Step,
}

fn kind(step: &Step) -> Do {
    match step {
        Step::Reply(_) => Do::Reply,
        Step::KvGet { .. } => Do::KvGet,
        Step::KvPut(_) => Do::KvPut,
        Step::KvDelete { .. } => Do::KvDelete,
        Step::Forward(_) => Do::Forward,
        Step::Asset { .. } => Do::Asset,
        Step::Pass => Do::Pass,
        Step::Rewrap { .. } => Do::Rewrap,
    }
}

#[wasm_bindgen]
impl Exchange {
    /// Starts the exchange for a request; `now_ms` is `Date.now()`.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        env: &JsValue,
        method: &str,
        url: &str,
        cookie: Option<String>,
        client_ip: Option<String>,
        forwarded_for: Option<String>,
        fetch_site: Option<String>,
        now_ms: f64,
    ) -> Exchange {
        let cfg = config(env);
        let (inner, step) = match &*cfg {
            Err(e) => exchange::Exchange::misconfigured(e),
            Ok(c) => {
                let bindings = Bindings {
                    kv: c.store != StoreMode::Cookie && has_binding(env, &c.kv_binding),
                    origin_service: c
                        .origin_service
                        .as_ref()
                        .is_some_and(|n| has_binding(env, n)),
                    assets: c.inspect && has_binding(env, "ASSETS"),
                };
                let req = Incoming {
                    method,
                    url,
                    cookie: cookie.as_deref(),
                    client_ip: client_ip.as_deref(),
                    forwarded_for: forwarded_for.as_deref(),
                    fetch_site: fetch_site.as_deref(),
                };
                let now = (now_ms / 1000.0) as u64;
                exchange::Exchange::start(c, bindings, &req, now, &mut OsEntropy)
            }
        };
        let mut ex = Exchange { cfg, inner, step };
        ex.write_logs();
        ex
    }

    /// What to do now.
    #[wasm_bindgen(getter)]
    pub fn todo(&self) -> Do {
        kind(&self.step)
    }

    /// The KV key to read, write or delete.
    #[wasm_bindgen(getter)]
    pub fn key(&self) -> String {
        match &self.step {
            Step::KvGet { key } | Step::KvDelete { key } => key.clone(),
            Step::KvPut(p) => p.key.clone(),
            _ => String::new(),
        }
    }

    /// The record to write.
    #[wasm_bindgen(getter)]
    pub fn value(&self) -> String {
        match &self.step {
            Step::KvPut(p) => p.value.clone(),
            _ => String::new(),
        }
    }

    /// The record's `expirationTtl`, in seconds.
    #[wasm_bindgen(getter)]
    pub fn ttl(&self) -> f64 {
        match &self.step {
            Step::KvPut(p) => p.ttl as f64,
            _ => 0.0,
        }
    }

    /// The name of the KV namespace binding (`SESSION_KV_BINDING`).
    #[wasm_bindgen(getter)]
    pub fn binding(&self) -> String {
        self.cfg
            .as_ref()
            .as_ref()
            .map(|c| c.kv_binding.clone())
            .unwrap_or_default()
    }

    /// The asset to fetch.
    #[wasm_bindgen(getter)]
    pub fn url(&self) -> String {
        match &self.step {
            Step::Asset { url } => url.clone(),
            _ => String::new(),
        }
    }

    /// The forwarding decisions, as one string of newline-separated fields (one
    /// crossing of the JS boundary instead of eleven; no header value or URL can hold a
    /// newline). An empty field is an absent value. In order: the URL to forward to;
    /// the service binding to forward through; the `Cookie` edit (`k` keep, `s` set,
    /// `r` remove) and the value to set; `X-Session`, `X-Session-Status`,
    /// `X-Session-Id`, `X-Session-Expires`, `X-Forwarded-For`, `X-Forwarded-Host`,
    /// `X-Forwarded-Proto`.
    #[wasm_bindgen(getter)]
    pub fn plan(&self) -> String {
        let (Step::Forward(f), Ok(cfg)) = (&self.step, &*self.cfg) else {
            return String::new();
        };
        let service = match (&cfg.origin_service, f.via_service) {
            (Some(s), true) => s.as_str(),
            _ => "",
        };
        let (edit, cookie) = match &f.cookie {
            CookieEdit::Keep => ("k", ""),
            CookieEdit::Set(c) => ("s", c.as_str()),
            CookieEdit::Remove => ("r", ""),
        };
        let s = &f.session;
        let expires = s.expires.map(|e| e.to_string()).unwrap_or_default();
        let fields = [
            f.url.as_str(),
            service,
            edit,
            cookie,
            s.session.as_deref().unwrap_or(""),
            s.status,
            s.handle.as_deref().unwrap_or(""),
            &expires,
            f.forwarded_for.as_deref().unwrap_or(""),
            &f.forwarded_host,
            &f.forwarded_proto,
        ];
        fields.join("\n")
    }

    /// The `Set-Cookie` value to append to the origin's response, if any.
    #[wasm_bindgen(getter)]
    pub fn set_cookie(&self) -> Option<String> {
        match &self.step {
            Step::Rewrap { set_cookie } => set_cookie.clone(),
            _ => None,
        }
    }

    /// keycard's own response (never cached).
    pub fn reply(&self) -> Result<Response, JsValue> {
        let Step::Reply(r) = &self.step else {
            return Err(JsValue::from_str("no reply at this step"));
        };
        let headers = Headers::new()?;
        headers.set("content-type", r.content_type)?;
        headers.set("cache-control", "no-store")?;
        for (k, v) in &r.headers {
            headers.append(k, v)?;
        }
        let init = ResponseInit::new();
        init.set_status(r.status);
        init.set_headers(&headers);
        let body = (!r.body.is_empty()).then_some(r.body.as_str());
        Response::new_with_opt_str_and_init(body, &init)
    }

    /// The KV read's result: the record (`undefined` when there is none), or the
    /// error's message.
    pub fn record(&mut self, value: Option<String>, error: Option<String>) -> Do {
        let found = match error {
            Some(detail) => Err(StoreError { op: "get", detail }),
            None => Ok(value),
        };
        self.advance(|ex, cfg| ex.record(cfg, found, &mut OsEntropy))
    }

    /// The KV write's or delete's result: `undefined`, or the error's message.
    pub fn written(&mut self, error: Option<String>) -> Do {
        let op = if matches!(self.step, Step::KvDelete { .. }) {
            "delete"
        } else {
            "put"
        };
        let result = match error {
            Some(detail) => Err(StoreError { op, detail }),
            None => Ok(()),
        };
        self.advance(|ex, cfg| ex.written(cfg, result))
    }

    /// The origin's answer: its status, whether any `X-Session*` header was present,
    /// and the three control headers.
    pub fn answered(
        &mut self,
        status: u16,
        reserved: bool,
        set: Option<String>,
        action: Option<String>,
        max_age: Option<String>,
    ) -> Do {
        let answer = Answer {
            status,
            reserved,
            set: set.as_deref(),
            action: action.as_deref(),
            max_age: max_age.as_deref(),
        };
        self.advance(|ex, cfg| ex.answered(cfg, &answer, &mut OsEntropy))
    }

    /// The origin could not be reached; `error` is for the log.
    pub fn unreachable(&mut self, error: &str) -> Do {
        self.advance(|ex, _| ex.unreachable(error))
    }
}

impl Exchange {
    fn advance(&mut self, f: impl FnOnce(&mut exchange::Exchange, &Config) -> Step) -> Do {
        let cfg = Rc::clone(&self.cfg);
        self.step = match &*cfg {
            Ok(c) => f(&mut self.inner, c),
            // A misconfigured exchange ends at its first step; the driver never gets here.
            Err(e) => exchange::Exchange::misconfigured(e).1,
        };
        self.write_logs();
        kind(&self.step)
    }

    fn write_logs(&mut self) {
        for l in self.inner.take_logs() {
            let line = JsValue::from_str(&l.line());
            match l.level {
                "error" => web_sys::console::error_1(&line),
                "warn" => web_sys::console::warn_1(&line),
                _ => web_sys::console::log_1(&line),
            }
        }
    }
}
