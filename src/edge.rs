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
use crate::exchange::{self, Answer, Bindings, Incoming, Step};
use crate::headers::HeaderList;
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
    /// Read `key` from the KV binding named `binding` with `cacheTtl: cache_ttl`, then
    /// `record(..)`.
    KvGet = 1,
    /// Write `key` = `value` with `expirationTtl: ttl`, then `written(..)`.
    KvPut = 2,
    /// Delete `key`, then `written(..)`.
    KvDelete = 3,
    /// Send the client's request to the origin as `plan` says; then `answered(..)`,
    /// `unreachable(..)` or `timed_out()`.
    Forward = 4,
    /// Answer with the assets binding's response for `url`; done.
    Asset = 5,
    /// Answer with the origin's response untouched; done.
    Pass = 6,
    /// Answer with the origin's response with `edits` applied to its headers; done.
    Rewrap = 7,
}

/// One request in flight, as the JS driver sees it. A getter asked for at a step that
/// has no such data throws: that is a bug in the driver.
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
        Step::Rewrap(_) => Do::Rewrap,
    }
}

fn wrong_step(getter: &str) -> JsValue {
    JsValue::from_str(&format!("{getter} asked for at the wrong step"))
}

#[wasm_bindgen]
impl Exchange {
    /// Starts the exchange for a request. `headers` is every request header as
    /// `name:value` lines (see [`HeaderList`]); `now_ms` is `Date.now()`.
    pub fn start(env: &JsValue, method: &str, url: &str, headers: &str, now_ms: f64) -> Exchange {
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
                    headers: HeaderList(headers),
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
    pub fn step(&self) -> Do {
        kind(&self.step)
    }

    /// The KV key to read, write or delete.
    #[wasm_bindgen(getter)]
    pub fn key(&self) -> Result<String, JsValue> {
        match &self.step {
            Step::KvGet { key } | Step::KvDelete { key } => Ok(key.clone()),
            Step::KvPut(p) => Ok(p.key.clone()),
            _ => Err(wrong_step("key")),
        }
    }

    /// The value to write.
    #[wasm_bindgen(getter)]
    pub fn value(&self) -> Result<String, JsValue> {
        match &self.step {
            Step::KvPut(p) => Ok(p.value.clone()),
            _ => Err(wrong_step("value")),
        }
    }

    /// The value's `expirationTtl`, in seconds.
    #[wasm_bindgen(getter)]
    pub fn ttl(&self) -> Result<f64, JsValue> {
        match &self.step {
            Step::KvPut(p) => Ok(p.ttl as f64),
            _ => Err(wrong_step("ttl")),
        }
    }

    /// The `cacheTtl` of a read, in seconds.
    #[wasm_bindgen(getter)]
    pub fn cache_ttl(&self) -> Result<f64, JsValue> {
        match &self.step {
            Step::KvGet { .. } => Ok(exchange::KV_CACHE_TTL as f64),
            _ => Err(wrong_step("cache_ttl")),
        }
    }

    /// The name of the KV namespace binding (`SESSION_KV_BINDING`).
    #[wasm_bindgen(getter)]
    pub fn binding(&self) -> Result<String, JsValue> {
        match (&self.step, &*self.cfg) {
            (Step::KvGet { .. } | Step::KvPut(_) | Step::KvDelete { .. }, Ok(c)) => {
                Ok(c.kv_binding.clone())
            }
            _ => Err(wrong_step("binding")),
        }
    }

    /// The asset to fetch.
    #[wasm_bindgen(getter)]
    pub fn url(&self) -> Result<String, JsValue> {
        match &self.step {
            Step::Asset { url } => Ok(url.clone()),
            _ => Err(wrong_step("url")),
        }
    }

    /// The forwarding plan, in the wire form described on `exchange::Forward::wire`.
    #[wasm_bindgen(getter)]
    pub fn plan(&self) -> Result<String, JsValue> {
        match &self.step {
            Step::Forward(f) => Ok(f.wire()),
            _ => Err(wrong_step("plan")),
        }
    }

    /// The edits to the origin's response headers, in the same wire form.
    #[wasm_bindgen(getter)]
    pub fn edits(&self) -> Result<String, JsValue> {
        match &self.step {
            Step::Rewrap(r) => Ok(r.wire()),
            _ => Err(wrong_step("edits")),
        }
    }

    /// keycard's own response (never cached).
    pub fn reply(&self) -> Result<Response, JsValue> {
        let Step::Reply(r) = &self.step else {
            return Err(wrong_step("reply"));
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

    /// The KV read's result: the value (`undefined` when there is none), or the
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

    /// The origin's answer: its status and every response header as `name:value`
    /// lines.
    pub fn answered(&mut self, status: u16, headers: &str) -> Do {
        let answer = Answer {
            status,
            headers: HeaderList(headers),
        };
        self.advance(|ex, cfg| ex.answered(cfg, &answer, &mut OsEntropy))
    }

    /// The origin could not be reached; `error` is for the log.
    pub fn unreachable(&mut self, error: &str) -> Do {
        self.advance(|ex, _| ex.unreachable(error))
    }

    /// The origin did not answer within the plan's timeout.
    pub fn timed_out(&mut self) -> Do {
        self.advance(|ex, cfg| ex.timed_out(cfg))
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
