//! Sign-in's steps inside your own Worker: the requests to the identity provider and
//! the ID token's signature check, with the runtime's `fetch` and WebCrypto, as
//! `src/driver/entry.js` does them for the standalone Worker. What to send and which
//! key and algorithm to use is decided by the exchange; this only carries it out.

use futures_util::StreamExt;
use js_sys::{Function, Promise, Reflect, Uint8Array, JSON};
use wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::{
    Fetch, Headers, Method, Request, RequestInit, RequestRedirect, Response, ResponseBody,
};

use crate::crypto::jws::Verification;
use crate::http::outbound::{Inbound, Outbound, MAX_BODY};

/// How long a provider has to answer, in milliseconds.
const TIMEOUT_MS: u32 = 10_000;

fn message(e: impl Into<JsValue>) -> String {
    let e = e.into();
    e.as_string()
        .or_else(|| {
            Reflect::get(&e, &"message".into())
                .ok()
                .and_then(|m| m.as_string())
        })
        .unwrap_or_else(|| "unknown error".into())
}

/// Sends `out` and reads its answer whole (up to [`MAX_BODY`] and a little more).
pub(super) async fn fetch(out: &Outbound) -> Result<Inbound, String> {
    let headers = Headers::new();
    super::apply_edits(&headers, &out.header_edits()).map_err(message)?;
    let mut init = RequestInit::new();
    init.with_method(Method::from(out.method.to_owned()))
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual);
    if let Some(body) = &out.body {
        init.with_body(Some(JsValue::from_str(body)));
    }
    let request = Request::new_with_init(&out.url, &init).map_err(message)?;
    let signal = web_sys::AbortSignal::timeout_with_u32(TIMEOUT_MS);
    let mut response = Fetch::Request(request)
        .send_with_signal(&signal.into())
        .await
        .map_err(message)?;
    let header = |name: &str| response.headers().get(name).ok().flatten();
    let too_long = header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
        .is_some_and(|l| l > 4 * MAX_BODY);
    if too_long {
        return Err("the answer is too long".into());
    }
    let (content_type, cache_control) = (header("content-type"), header("cache-control"));
    let body = match response.body() {
        ResponseBody::Stream(_) => read_capped(&mut response).await?,
        _ => response.text().await.map_err(message)?,
    };
    Ok(Inbound {
        status: response.status_code(),
        content_type,
        cache_control,
        body,
    })
}

/// The body, read as it streams in and given up past four times [`MAX_BODY`], whatever
/// `Content-Length` said (a chunked or compressed answer has none).
async fn read_capped(response: &mut Response) -> Result<String, String> {
    let mut stream = response.stream().map_err(message)?;
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend(chunk.map_err(message)?);
        if bytes.len() > 4 * MAX_BODY {
            return Err("the answer is too long".into());
        }
    }
    String::from_utf8(bytes).map_err(|_| "the answer is not UTF-8".to_owned())
}

/// Calls `crypto.subtle[method](...args)` and awaits it.
async fn subtle(method: &str, args: &[JsValue]) -> Result<JsValue, JsValue> {
    let crypto = Reflect::get(&js_sys::global(), &"crypto".into())?;
    let subtle = Reflect::get(&crypto, &"subtle".into())?;
    let f: Function = Reflect::get(&subtle, &method.into())?.dyn_into()?;
    let promise = Reflect::apply(&f, &subtle, &args.iter().collect())?;
    JsFuture::from(Promise::resolve(&promise)).await
}

/// Whether the signature verifies, with the key and algorithm the exchange chose.
pub(super) async fn verify(v: &Verification) -> Result<bool, String> {
    let json = |text: &str| JSON::parse(text).map_err(message);
    let usages = js_sys::Array::of1(&"verify".into());
    let key = subtle(
        "importKey",
        &[
            "jwk".into(),
            json(&v.jwk)?,
            json(&v.import)?,
            false.into(),
            usages.into(),
        ],
    )
    .await
    .map_err(message)?;
    let signature = Uint8Array::from(v.signature.as_slice());
    let data = Uint8Array::from(v.signing_input.as_bytes());
    let ok = subtle(
        "verify",
        &[json(&v.verify)?, key, signature.into(), data.into()],
    )
    .await
    .map_err(message)?;
    Ok(ok.as_bool() == Some(true))
}
