//! The wasm-only edge: the core's [`Exchange`] exported to the JS driver
//! (`src/driver/entry.js`) as a handful of synchronous calls (the Worker's `env` is read in
//! `js_env`).
//!
//! The driver does the platform's I/O (KV, the origin, the assets binding) and hands
//! each result back here; this module turns JS values into the core's types and back,
//! and writes the core's log lines. Nothing here awaits: a Rust future per request,
//! with its promise and closure plumbing, cost more CPU than all of keycard's own work
//! (BENCHMARKS.md).

use std::cell::RefCell;

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

/// One request in flight, as the JS driver sees it.
struct JsExchange {
    /// `None` when the request could not start (misconfigured): `step` is its answer.
    inner: Option<exchange::Exchange>,
    step: Step,
}

/// The exchanges in flight in this isolate. The driver holds a request's handle: its
/// slot's index in the low 16 bits, and a tag that `start` counts up in the high 16, so
/// that a handle used after its `end` (a bug in the driver) finds nothing rather than
/// another request. A handle rather than a JS object per request: wasm-bindgen gives
/// every object it hands out a `FinalizationRegistry` entry and a property of its own,
/// which cost about 4% of the isolate's time (BENCHMARKS.md).
#[derive(Default)]
struct Live {
    slots: Vec<Option<(u16, JsExchange)>>,
    tag: u16,
}

thread_local! {
    static LIVE: RefCell<Live> = RefCell::new(Live::default());
}

impl Live {
    fn insert(&mut self, ex: JsExchange) -> u32 {
        self.tag = self.tag.wrapping_add(1);
        let index = match self.slots.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.slots.push(None);
                self.slots.len() - 1
            }
        };
        self.slots[index] = Some((self.tag, ex));
        (u32::from(self.tag) << 16) | index as u32
    }

    fn get(&mut self, handle: u32) -> Option<&mut JsExchange> {
        let (tag, index) = ((handle >> 16) as u16, (handle & 0xffff) as usize);
        match self.slots.get_mut(index) {
            Some(Some((t, ex))) if *t == tag => Some(ex),
            _ => None,
        }
    }
}

/// Runs `f` on the exchange `handle` names; throws for a handle that names none.
fn with<T>(
    handle: u32,
    f: impl FnOnce(&mut JsExchange) -> Result<T, JsValue>,
) -> Result<T, JsValue> {
    LIVE.with(|live| match live.borrow_mut().get(handle) {
        Some(ex) => f(ex),
        None => Err(JsValue::from_str("no exchange has this handle")),
    })
}

/// The driver's calls, as static methods of `Exchange` in JS, each taking the handle
/// `start` gave. A getter asked for at a step that has no such data throws: that is a
/// bug in the driver.
#[wasm_bindgen]
pub struct Exchange;

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

#[wasm_bindgen]
impl Exchange {
    /// Starts the exchange for a request; returns its handle. `headers` is every request header as
    /// `name:value` lines (see [`HeaderList`]); `now_ms` is `Date.now()`.
    pub fn start(env: &JsValue, method: &str, url: &str, headers: &str, now_ms: f64) -> u32 {
        let cfg = match config(env) {
            Ok(cfg) => cfg,
            Err(e) => {
                let (step, log) = exchange::misconfigured(&e);
                write_logs([log]);
                return LIVE.with(|l| l.borrow_mut().insert(JsExchange { inner: None, step }));
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
        let ex = JsExchange {
            inner: Some(inner),
            step,
        };
        LIVE.with(|l| l.borrow_mut().insert(ex))
    }

    /// Ends the request: its handle names nothing from now on.
    pub fn end(handle: u32) {
        LIVE.with(|live| {
            let mut live = live.borrow_mut();
            if live.get(handle).is_some() {
                live.slots[(handle & 0xffff) as usize] = None;
            }
        });
    }

    /// What to do now.
    pub fn step(handle: u32) -> Result<Do, JsValue> {
        with(handle, |ex| Ok(kind(&ex.step)))
    }

    /// The KV key to read, write or delete.
    pub fn key(handle: u32) -> Result<String, JsValue> {
        with(handle, |ex| match &ex.step {
            Step::KvGet { key } | Step::KvDelete { key } => Ok(key.clone()),
            Step::KvPut(p) => Ok(p.key.clone()),
            _ => Err(wrong_step("key")),
        })
    }

    /// The value to write.
    pub fn value(handle: u32) -> Result<String, JsValue> {
        with(handle, |ex| match &ex.step {
            Step::KvPut(p) => Ok(p.value.clone()),
            _ => Err(wrong_step("value")),
        })
    }

    /// The value's `expirationTtl`, in seconds.
    pub fn ttl(handle: u32) -> Result<f64, JsValue> {
        with(handle, |ex| match &ex.step {
            Step::KvPut(p) => Ok(p.ttl as f64),
            _ => Err(wrong_step("ttl")),
        })
    }

    /// The `cacheTtl` of a read, in seconds.
    pub fn cache_ttl(handle: u32) -> Result<f64, JsValue> {
        with(handle, |ex| match &ex.step {
            Step::KvGet { .. } => Ok(crate::session::record::KV_CACHE_TTL as f64),
            _ => Err(wrong_step("cache_ttl")),
        })
    }

    /// The name of the binding to use: the KV namespace (`SESSION_KV_BINDING`) or the
    /// users' Durable Object namespace (`SESSION_USERS_BINDING`).
    pub fn binding(handle: u32) -> Result<String, JsValue> {
        with(handle, |ex| match (&ex.step, &ex.inner) {
            (Step::KvGet { .. } | Step::KvPut(_) | Step::KvDelete { .. }, Some(ex)) => {
                Ok(ex.config().kv_binding.clone())
            }
            (Step::Users(_), Some(ex)) => Ok(ex.config().users.binding.clone()),
            _ => Err(wrong_step("binding")),
        })
    }

    /// The name of the user's object to call.
    pub fn object(handle: u32) -> Result<String, JsValue> {
        with(handle, |ex| match &ex.step {
            Step::Users(u) => Ok(u.object.clone()),
            _ => Err(wrong_step("object")),
        })
    }

    /// The call to send it (JSON), with `country`, the request's `request.cf.country`,
    /// which the driver reads only now ([`UsersCall::json`]).
    ///
    /// [`UsersCall::json`]: crate::users::UsersCall::json
    pub fn call(handle: u32, country: Option<String>) -> Result<String, JsValue> {
        with(handle, |ex| match &ex.step {
            Step::Users(u) => Ok(u.json(country.as_deref())),
            _ => Err(wrong_step("call")),
        })
    }

    /// The asset, or the provider's URL, to fetch.
    pub fn url(handle: u32) -> Result<String, JsValue> {
        with(handle, |ex| match &ex.step {
            Step::Asset { url } => Ok(url.clone()),
            Step::Fetch(out) => Ok(out.url.clone()),
            _ => Err(wrong_step("url")),
        })
    }

    /// The method of a request to a provider.
    pub fn method(handle: u32) -> Result<String, JsValue> {
        with(handle, |ex| match &ex.step {
            Step::Fetch(out) => Ok(out.method.to_owned()),
            _ => Err(wrong_step("method")),
        })
    }

    /// The body of a request to a provider, if any.
    pub fn body(handle: u32) -> Result<Option<String>, JsValue> {
        with(handle, |ex| match &ex.step {
            Step::Fetch(out) => Ok(out.body.clone()),
            _ => Err(wrong_step("body")),
        })
    }

    /// The public key to verify with, as a JWK (JSON).
    pub fn jwk(handle: u32) -> Result<String, JsValue> {
        with(handle, |ex| match &ex.step {
            Step::Verify(v) => Ok(v.jwk.clone()),
            _ => Err(wrong_step("jwk")),
        })
    }

    /// `importKey`'s algorithm (JSON).
    pub fn import_params(handle: u32) -> Result<String, JsValue> {
        with(handle, |ex| match &ex.step {
            Step::Verify(v) => Ok(v.import.clone()),
            _ => Err(wrong_step("import_params")),
        })
    }

    /// `verify`'s algorithm (JSON).
    pub fn verify_params(handle: u32) -> Result<String, JsValue> {
        with(handle, |ex| match &ex.step {
            Step::Verify(v) => Ok(v.verify.clone()),
            _ => Err(wrong_step("verify_params")),
        })
    }

    /// What was signed.
    pub fn signing_input(handle: u32) -> Result<String, JsValue> {
        with(handle, |ex| match &ex.step {
            Step::Verify(v) => Ok(v.signing_input.clone()),
            _ => Err(wrong_step("signing_input")),
        })
    }

    /// The signature.
    pub fn signature(handle: u32) -> Result<Vec<u8>, JsValue> {
        with(handle, |ex| match &ex.step {
            Step::Verify(v) => Ok(v.signature.clone()),
            _ => Err(wrong_step("signature")),
        })
    }

    /// The forwarding plan, in the text form of `exchange::Forward::wire`.
    pub fn plan(handle: u32) -> Result<String, JsValue> {
        with(handle, |ex| match &ex.step {
            Step::Forward(f) => Ok(f.wire()),
            _ => Err(wrong_step("plan")),
        })
    }

    /// The edits to the origin's response headers, or the headers of a request to a
    /// provider (as edits to an empty list), in the same text form.
    pub fn edits(handle: u32) -> Result<String, JsValue> {
        with(handle, |ex| match &ex.step {
            Step::Rewrap(r) => Ok(r.wire()),
            Step::Fetch(out) => Ok(out.wire()),
            _ => Err(wrong_step("edits")),
        })
    }

    /// keycard's own response, with every header it carries.
    pub fn reply(handle: u32) -> Result<Response, JsValue> {
        with(handle, |ex| {
            let Step::Reply(r) = &ex.step else {
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
        })
    }

    /// The KV read's result: the value (`undefined` when there is none), or the
    /// error's message.
    pub fn kv_read(
        handle: u32,
        value: Option<String>,
        error: Option<String>,
    ) -> Result<Do, JsValue> {
        with(handle, |ex| {
            let found = match error {
                Some(e) => Err(e),
                None => Ok(value),
            };
            Ok(ex.advance(|core| core.kv_read(found)))
        })
    }

    /// The KV write's or delete's result: `undefined`, or the error's message.
    pub fn written(handle: u32, error: Option<String>) -> Result<Do, JsValue> {
        with(handle, |ex| {
            Ok(ex.advance(|core| core.written(error.map_or(Ok(()), Err))))
        })
    }

    /// The origin's answer: its status and every response header as `name:value`
    /// lines.
    pub fn answered(handle: u32, status: u16, headers: &str) -> Result<Do, JsValue> {
        with(handle, |ex| {
            let answer = Answer {
                status,
                headers: HeaderList::new(headers),
            };
            Ok(ex.advance(|core| core.answered(&answer)))
        })
    }

    /// The user's object's answer (JSON), or the error's message.
    pub fn users_answered(
        handle: u32,
        answer: Option<String>,
        error: Option<String>,
    ) -> Result<Do, JsValue> {
        with(handle, |ex| {
            let result = match (answer, error) {
                (_, Some(e)) => Err(e),
                (Some(a), None) => Ok(a),
                (None, None) => Err("the object gave no answer".to_owned()),
            };
            Ok(ex.advance(|core| core.users_answered(result)))
        })
    }

    /// A provider's answer: its status, `Content-Type`, `Cache-Control` and body; or
    /// the error's message.
    pub fn fetched(
        handle: u32,
        status: Option<u16>,
        content_type: Option<String>,
        cache_control: Option<String>,
        body: Option<String>,
        error: Option<String>,
    ) -> Result<Do, JsValue> {
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
        with(handle, |ex| Ok(ex.advance(|core| core.fetched(result))))
    }

    /// Whether the signature verified; or the error's message.
    pub fn verified(handle: u32, ok: Option<bool>, error: Option<String>) -> Result<Do, JsValue> {
        with(handle, |ex| {
            let result = match error {
                Some(e) => Err(e),
                None => Ok(ok == Some(true)),
            };
            Ok(ex.advance(|core| core.verified(result)))
        })
    }

    /// The origin could not be reached; `error` is for the log.
    pub fn unreachable(handle: u32, error: &str) -> Result<Do, JsValue> {
        with(handle, |ex| Ok(ex.advance(|core| core.unreachable(error))))
    }

    /// The origin did not answer within the plan's timeout.
    pub fn timed_out(handle: u32) -> Result<Do, JsValue> {
        with(handle, |ex| Ok(ex.advance(|core| core.timed_out())))
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
