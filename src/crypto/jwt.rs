//! The `jwt` header format (`docs/origin.md`, "The `jwt` header format"): a compact JWS, HS256
//! under `ORIGIN_SECRET`.
//!
//! Hand-written on `hmac`/`sha2`/`base64`/`serde_json` because signing one fixed HS256
//! header is twenty lines, while `jsonwebtoken` would pull RSA and elliptic-curve code
//! into the wasm; origins verify it with any JWT library (the e2e suite checks it with
//! `jose`, `jsonwebtoken` and PyJWT, and `tests/vectors.rs` checks [`compact_hs256`]
//! against RFC 7515's HS256 example).

use crate::crypto::keys::{mac_key, mac_tag, Secret};
use crate::util::b64;

/// The fixed JOSE header.
const HEADER: &[u8] = br#"{"alg":"HS256","typ":"JWT"}"#;

/// Issuer claim.
pub const ISSUER: &str = "keycard";

/// Signs the session header for one request. `data_json` is the session's JSON object,
/// `url` the request URL (its query and fragment are cut for `htu`).
pub fn session_jwt(
    key: &Secret,
    handle: &str,
    iat: u64,
    exp: u64,
    data_json: &str,
    method: &str,
    url: &str,
) -> String {
    let htu = crate::http::forward::url_without_query(url);
    let claims = format!(
        "{{\"iss\":\"{ISSUER}\",\"sub\":{},\"iat\":{iat},\"exp\":{exp},\"session\":{data_json},\"htm\":{},\"htu\":{}}}",
        serde_json::Value::from(handle),
        serde_json::Value::from(method),
        serde_json::Value::from(htu),
    );
    compact_hs256(key.expose(), HEADER, claims.as_bytes())
}

/// A JWS in compact serialization (RFC 7515 §7.1) signed HS256 under `key`:
/// `base64url(header).base64url(payload).base64url(HMAC-SHA256(key, signing input))`,
/// where the signing input is the first two parts joined by a dot. `header` and
/// `payload` are the JOSE header and payload octets, encoded exactly as given.
pub fn compact_hs256(key: &[u8], header: &[u8], payload: &[u8]) -> String {
    let mut token = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 48);
    token.push_str(&b64(header));
    token.push('.');
    token.push_str(&b64(payload));
    let tag = mac_tag(mac_key(key), &[token.as_bytes()]);
    token.push('.');
    token.push_str(&b64(tag));
    token
}

#[cfg(test)]
mod tests {
    use hmac::Mac;
    use serde_json::Value;

    use super::*;
    use crate::util::unb64;

    #[test]
    fn structure_and_signature() {
        let key = Secret::try_from("origin-secret-0123456789abcdef0123456789").unwrap();
        let t = session_jwt(&key, "h", 10, 70, r#"{"a":1}"#, "POST", "https://x/p?q=1");
        let parts: Vec<&str> = t.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(unb64(parts[0]).unwrap(), br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims: Value = serde_json::from_slice(&unb64(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "keycard");
        assert_eq!(claims["sub"], "h");
        assert_eq!(claims["exp"], 70);
        assert_eq!(claims["session"]["a"], 1);
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], "https://x/p");
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.expose()).unwrap();
        mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
        mac.verify_slice(&unb64(parts[2]).unwrap()).unwrap();
    }
}
