//! The wasm-only edge: the core's [`Exchange`] exported to the JS driver
//! (`src/driver/entry.js`) as a handful of synchronous calls (the Worker's `env` is read in
//! `js_env`).
//!
//! The driver does the platform's I/O (KV, the origin, the assets binding) and hands
//! each result back here; this module turns JS values into the core's types and back,
//! and writes the core's log lines. Nothing here awaits: a Rust future per request,
//! with its promise and closure plumbing, cost more CPU than all of keycard's own work
//! (BENCHMARKS.md).

use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::JsValue;
use web_sys::{Headers, Response, ResponseInit};

use crate::crypto::keys::OsEntropy;
use crate::driver::js_env::{bindings, config, write_logs};
use crate::exchange::{self, Answer, Incoming, Step};
use crate::http::headers::HeaderList;
use crate::http::outbound::Inbound;

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
    /// Send `call(country)` to the object named `object` in the Durable Object
    /// namespace `binding` (its `answer` method), then `users_answered(..)`.
    Users = 8,
    /// Send `method` to `url` with the headers `edits` sets and `body`
    /// (`undefined` for none), read the answer whole, then `fetched(..)`.
    Fetch = 9,
    /// Import `jwk` with `import_params`, then verify `signature` over `signing_input`
    /// with `verify_params` (WebCrypto; the JSON texts as they are), then `verified(..)`.
    Verify = 10,
}

/// One request in flight, as the JS driver sees it (`Exchange` in JS). A getter (or
/// `call`) asked for at a step that has no such data throws: that is a bug in the
/// driver.
#[wasm_bindgen(js_name = Exchange)]
pub struct JsExchange {
    /// `None` when the request could not start (misconfigured): `step` is its answer.
    inner: Option<exchange::Exchange>,
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
        Step::Users(_) => Do::Users,
        Step::Fetch(_) => Do::Fetch,
        Step::Verify(_) => Do::Verify,
    }
}

fn wrong_step(getter: &str) -> JsValue {
    JsValue::from_str(&format!("{getter} asked for at the wrong step"))
}

#[wasm_bindgen(js_class = Exchange)]
impl JsExchange {
    /// Starts the exchange for a request. `headers` is every request header as
    /// `name:value` lines (see [`HeaderList`]); `now_ms` is `Date.now()`.
    pub fn start(env: &JsValue, method: &str, url: &str, headers: &str, now_ms: f64) -> JsExchange {
        let cfg = match config(env) {
            Ok(cfg) => cfg,
            Err(e) => {
                let (step, log) = exchange::misconfigured(&e);
                write_logs([log]);
                return JsExchange { inner: None, step };
            }
        };
        let bindings = bindings(env, &cfg);
        let req = Incoming {
            method,
            url,
            headers: HeaderList::new(headers),
        };
        let now = (now_ms / 1000.0) as u64;
        let (mut inner, step) = exchange::Exchange::start(cfg, bindings, &req, now, OsEntropy);
        write_logs(inner.take_logs());
        JsExchange {
            inner: Some(inner),
            step,
        }
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
            Step::KvGet { .. } => Ok(crate::session::record::KV_CACHE_TTL as f64),
            _ => Err(wrong_step("cache_ttl")),
        }
    }

    /// The name of the binding to use: the KV namespace (`SESSION_KV_BINDING`) or the
    /// users' Durable Object namespace (`SESSION_USERS_BINDING`).
    #[wasm_bindgen(getter)]
    pub fn binding(&self) -> Result<String, JsValue> {
        match (&self.step, &self.inner) {
            (Step::KvGet { .. } | Step::KvPut(_) | Step::KvDelete { .. }, Some(ex)) => {
                Ok(ex.config().kv_binding.clone())
            }
            (Step::Users(_), Some(ex)) => Ok(ex.config().users.binding.clone()),
            _ => Err(wrong_step("binding")),
        }
    }

    /// The name of the user's object to call.
    #[wasm_bindgen(getter)]
    pub fn object(&self) -> Result<String, JsValue> {
        match &self.step {
            Step::Users(u) => Ok(u.object.clone()),
            _ => Err(wrong_step("object")),
        }
    }

    /// The call to send it (JSON), with `country`, the request's `request.cf.country`,
    /// which the driver reads only now ([`UsersCall::json`]).
    ///
    /// [`UsersCall::json`]: crate::users::UsersCall::json
    pub fn call(&self, country: Option<String>) -> Result<String, JsValue> {
        match &self.step {
            Step::Users(u) => Ok(u.json(country.as_deref())),
            _ => Err(wrong_step("call")),
        }
    }

    /// The asset, or the provider's URL, to fetch.
    #[wasm_bindgen(getter)]
    pub fn url(&self) -> Result<String, JsValue> {
        match &self.step {
            Step::Asset { url } => Ok(url.clone()),
            Step::Fetch(out) => Ok(out.url.clone()),
            _ => Err(wrong_step("url")),
        }
    }

    /// The method of a request to a provider.
    #[wasm_bindgen(getter)]
    pub fn method(&self) -> Result<String, JsValue> {
        match &self.step {
            Step::Fetch(out) => Ok(out.method.to_owned()),
            _ => Err(wrong_step("method")),
        }
    }

    /// The body of a request to a provider, if any.
    #[wasm_bindgen(getter)]
    pub fn body(&self) -> Result<Option<String>, JsValue> {
        match &self.step {
            Step::Fetch(out) => Ok(out.body.clone()),
            _ => Err(wrong_step("body")),
        }
    }

    /// The public key to verify with, as a JWK (JSON).
    #[wasm_bindgen(getter)]
    pub fn jwk(&self) -> Result<String, JsValue> {
        match &self.step {
            Step::Verify(v) => Ok(v.jwk.clone()),
            _ => Err(wrong_step("jwk")),
        }
    }

    /// `importKey`'s algorithm (JSON).
    #[wasm_bindgen(getter)]
    pub fn import_params(&self) -> Result<String, JsValue> {
        match &self.step {
            Step::Verify(v) => Ok(v.import.clone()),
            _ => Err(wrong_step("import_params")),
        }
    }

    /// `verify`'s algorithm (JSON).
    #[wasm_bindgen(getter)]
    pub fn verify_params(&self) -> Result<String, JsValue> {
        match &self.step {
            Step::Verify(v) => Ok(v.verify.clone()),
            _ => Err(wrong_step("verify_params")),
        }
    }

    /// What was signed.
    #[wasm_bindgen(getter)]
    pub fn signing_input(&self) -> Result<String, JsValue> {
        match &self.step {
            Step::Verify(v) => Ok(v.signing_input.clone()),
            _ => Err(wrong_step("signing_input")),
        }
    }

    /// The signature.
    #[wasm_bindgen(getter)]
    pub fn signature(&self) -> Result<Vec<u8>, JsValue> {
        match &self.step {
            Step::Verify(v) => Ok(v.signature.clone()),
            _ => Err(wrong_step("signature")),
        }
    }

    /// The forwarding plan, in the text form of `exchange::Forward::wire`.
    #[wasm_bindgen(getter)]
    pub fn plan(&self) -> Result<String, JsValue> {
        match &self.step {
            Step::Forward(f) => Ok(f.wire()),
            _ => Err(wrong_step("plan")),
        }
    }

    /// The edits to the origin's response headers, or the headers of a request to a
    /// provider (as edits to an empty list), in the same text form.
    #[wasm_bindgen(getter)]
    pub fn edits(&self) -> Result<String, JsValue> {
        match &self.step {
            Step::Rewrap(r) => Ok(r.wire()),
            Step::Fetch(out) => Ok(out.wire()),
            _ => Err(wrong_step("edits")),
        }
    }

    /// keycard's own response, with every header it carries.
    pub fn reply(&self) -> Result<Response, JsValue> {
        let Step::Reply(r) = &self.step else {
            return Err(wrong_step("reply"));
        };
        let headers = Headers::new()?;
        for (name, value) in r.all_headers() {
            headers.append(name, value)?;
        }
        let init = ResponseInit::new();
        init.set_status(r.status);
        init.set_headers(&headers);
        let body = (!r.body.is_empty()).then_some(r.body.as_str());
        Response::new_with_opt_str_and_init(body, &init)
    }

    /// The KV read's result: the value (`undefined` when there is none), or the
    /// error's message.
    pub fn kv_read(&mut self, value: Option<String>, error: Option<String>) -> Do {
        let found = match error {
            Some(e) => Err(e),
            None => Ok(value),
        };
        self.advance(|ex| ex.kv_read(found))
    }

    /// The KV write's or delete's result: `undefined`, or the error's message.
    pub fn written(&mut self, error: Option<String>) -> Do {
        self.advance(|ex| ex.written(error.map_or(Ok(()), Err)))
    }

    /// The origin's answer: its status and every response header as `name:value`
    /// lines.
    pub fn answered(&mut self, status: u16, headers: &str) -> Do {
        let answer = Answer {
            status,
            headers: HeaderList::new(headers),
        };
        self.advance(|ex| ex.answered(&answer))
    }

    /// The user's object's answer (JSON), or the error's message.
    pub fn users_answered(&mut self, answer: Option<String>, error: Option<String>) -> Do {
        let result = match (answer, error) {
            (_, Some(e)) => Err(e),
            (Some(a), None) => Ok(a),
            (None, None) => Err("the object gave no answer".to_owned()),
        };
        self.advance(|ex| ex.users_answered(result))
    }

    /// A provider's answer: its status, `Content-Type`, `Cache-Control` and body; or
    /// the error's message.
    pub fn fetched(
        &mut self,
        status: Option<u16>,
        content_type: Option<String>,
        cache_control: Option<String>,
        body: Option<String>,
        error: Option<String>,
    ) -> Do {
        let result = match (status, error) {
            (_, Some(e)) => Err(e),
            (Some(status), None) => Ok(Inbound {
                status,
                content_type,
                cache_control,
                body: body.unwrap_or_default(),
            }),
            (None, None) => Err("the fetch gave no answer".to_owned()),
        };
        self.advance(|ex| ex.fetched(result))
    }

    /// Whether the signature verified; or the error's message.
    pub fn verified(&mut self, ok: Option<bool>, error: Option<String>) -> Do {
        let result = match error {
            Some(e) => Err(e),
            None => Ok(ok == Some(true)),
        };
        self.advance(|ex| ex.verified(result))
    }

    /// The origin could not be reached; `error` is for the log.
    pub fn unreachable(&mut self, error: &str) -> Do {
        self.advance(|ex| ex.unreachable(error))
    }

    /// The origin did not answer within the plan's timeout.
    pub fn timed_out(&mut self) -> Do {
        self.advance(|ex| ex.timed_out())
    }
}

impl JsExchange {
    fn advance(&mut self, f: impl FnOnce(&mut exchange::Exchange) -> Step) -> Do {
        // A request that could not start (misconfigured) ended at its first step; a
        // driver that goes on is answered with that step again.
        if let Some(ex) = &mut self.inner {
            self.step = f(ex);
            write_logs(ex.take_logs());
        }
        kind(&self.step)
    }
}

/// A user's object (`KeycardUsers` in `src/driver/entry.js`) carrying out one call: `state` is
/// its stored value (`undefined` at first), `call` the call's JSON. Returns
/// `[answer, state]`: the answer's JSON, and the value to store (`undefined` when it
/// did not change). Throws when the state or the call does not read.
#[wasm_bindgen(js_name = usersAnswer)]
pub fn users_answer(state: Option<String>, call: &str) -> Result<js_sys::Array, JsValue> {
    let (answer, stored) =
        crate::users::answer(state.as_deref(), call).map_err(|e| JsValue::from_str(&e))?;
    let stored = stored.map_or(JsValue::UNDEFINED, |s| JsValue::from_str(&s));
    Ok(js_sys::Array::of2(&JsValue::from_str(&answer), &stored))
}
