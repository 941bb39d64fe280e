//! The size floor: the libraries keycard links, each used as keycard uses it, so that
//! their code is in the wasm, and nothing else. Each export takes and returns strings,
//! as keycard's do, and feeds every result into its answer, so that nothing is
//! optimised away. It is never run: only its size is measured.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsValue;

/// A KV record read with a derived `Deserialize`, its data kept raw (keycard's record).
#[derive(serde::Deserialize)]
struct Record {
    v: u32,
    data: Box<RawValue>,
    exp: u64,
}

fn error(e: impl std::fmt::Display) -> JsValue {
    JsValue::from_str(&e.to_string())
}

/// serde_json: a JSON object in and out, a `json!` value, and a derived record.
#[wasm_bindgen]
pub fn json(text: &str) -> Result<String, JsValue> {
    let mut map: Map<String, Value> = serde_json::from_str(text).map_err(error)?;
    map.insert("n".into(), json!({ "a": 1, "b": [1.5, "x"] }));
    let record: Record = serde_json::from_str(text).map_err(error)?;
    let out = serde_json::to_string(&map).map_err(error)?;
    Ok(format!(
        "{out}{}{}{}",
        record.v,
        record.data.get(),
        record.exp
    ))
}

/// hmac and sha2: a MAC made and checked, a digest; base64url both ways.
#[wasm_bindgen]
pub fn mac(key: &str, message: &str) -> Result<String, JsValue> {
    let new = |k: &[u8]| <Hmac<Sha256> as Mac>::new_from_slice(k).map_err(error);
    let tag = new(key.as_bytes())?
        .chain_update(message)
        .finalize()
        .into_bytes();
    let body = URL_SAFE_NO_PAD.decode(message).map_err(error)?;
    let valid = new(&body)?.chain_update(key).verify_slice(&tag).is_ok();
    let digest = Sha256::digest(message.as_bytes());
    Ok(format!(
        "{}{valid}{}",
        URL_SAFE_NO_PAD.encode(tag),
        URL_SAFE_NO_PAD.encode(digest)
    ))
}

/// hkdf, getrandom and XChaCha20-Poly1305: a derived key seals and opens.
#[wasm_bindgen]
pub fn seal(secret: &str, message: &str) -> Result<String, JsValue> {
    let mut key = [0u8; 32];
    hkdf::Hkdf::<Sha256>::new(Some(b"salt"), secret.as_bytes())
        .expand(b"purpose", &mut key)
        .map_err(error)?;
    let mut nonce = [0u8; 24];
    getrandom::fill(&mut nonce).map_err(error)?;
    let cipher = XChaCha20Poly1305::new((&key).into());
    let nonce = XNonce::from_slice(&nonce);
    let sealed = cipher
        .encrypt(
            nonce,
            Payload {
                msg: message.as_bytes(),
                aad: b"aad",
            },
        )
        .map_err(error)?;
    let opened = cipher
        .decrypt(
            nonce,
            Payload {
                msg: &sealed,
                aad: b"aad",
            },
        )
        .map_err(error)?;
    Ok(format!(
        "{}{}",
        URL_SAFE_NO_PAD.encode(&sealed),
        opened.len()
    ))
}

/// humantime, form_urlencoded, percent-encoding, strsim, js-sys and web-sys: a duration,
/// a query, a path, a distance between names, a number from `env` and a log line.
#[wasm_bindgen]
pub fn text(env: &JsValue, input: &str) -> String {
    let seconds = humantime::parse_duration(input).map_or(0, |d| d.as_secs());
    let pairs = form_urlencoded::parse(input.as_bytes()).count();
    let encoded = percent_encoding::utf8_percent_encode(input, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    let decoded = percent_encoding::percent_decode_str(input).count();
    let number = js_sys::Reflect::get(env, &JsValue::from_str(input))
        .ok()
        .and_then(|v| v.as_f64())
        .map(|n| n.to_string());
    web_sys::console::warn_1(&JsValue::from_str(&encoded));
    let distance = strsim::osa_distance(input, "SESSION_IDLE_TIMEOUT");
    format!("{seconds}{pairs}{decoded}{distance}{number:?}")
}
