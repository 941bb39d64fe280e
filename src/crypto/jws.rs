//! Signed JWTs from others, in compact form (RFC 7515), read here and checked with the
//! runtime's WebCrypto: an identity provider's ID token (`oidc::id_token`) and a
//! browser's device-bound session proof (`dbsc::proof`).
//!
//! keycard decides everything but the signature arithmetic: which algorithm is
//! acceptable, which key, and the WebCrypto parameters. The arithmetic is a
//! [`Verification`] the driver carries out, as a step of the exchange: public-key code
//! in the wasm would cost about 29 KB gzipped and be slower than the runtime's.

use serde_json::{json, Map, Value};

use crate::util::unb64;

/// The signature algorithms keycard accepts. Never `none`, never an HMAC: a client
/// secret is no proof of who signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl Alg {
    /// The algorithm a JWS header's `alg` names, when keycard accepts it.
    pub fn from_name(name: &str) -> Option<Alg> {
        match name {
            "RS256" => Some(Alg::Rs256),
            "PS256" => Some(Alg::Ps256),
            "ES256" => Some(Alg::Es256),
            "EdDSA" | "Ed25519" => Some(Alg::EdDsa),
            _ => None,
        }
    }

    /// Its JWS name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Ps256 => "PS256",
            Alg::Es256 => "ES256",
            Alg::EdDsa => "EdDSA",
        }
    }

    /// WebCrypto's `importKey` algorithm for its key, as JSON.
    pub fn import_params(self) -> Value {
        match self {
            Alg::Rs256 => json!({ "name": "RSASSA-PKCS1-v1_5", "hash": "SHA-256" }),
            Alg::Ps256 => json!({ "name": "RSA-PSS", "hash": "SHA-256" }),
            Alg::Es256 => json!({ "name": "ECDSA", "namedCurve": "P-256" }),
            Alg::EdDsa => json!({ "name": "Ed25519" }),
        }
    }

    /// WebCrypto's `verify` algorithm, as JSON.
    pub fn verify_params(self) -> Value {
        match self {
            Alg::Rs256 => json!({ "name": "RSASSA-PKCS1-v1_5" }),
            // RFC 7518 §3.5: the salt is as long as the hash.
            Alg::Ps256 => json!({ "name": "RSA-PSS", "saltLength": 32 }),
            Alg::Es256 => json!({ "name": "ECDSA", "hash": "SHA-256" }),
            Alg::EdDsa => json!({ "name": "Ed25519" }),
        }
    }

    /// The public members of `jwk` that WebCrypto needs, when `jwk` is a key of this
    /// algorithm's kind and strength.
    pub fn public_key(self, jwk: &Map<String, Value>) -> Result<Value, &'static str> {
        let text = |name: &str| jwk.get(name).and_then(Value::as_str);
        let bytes = |name: &str| text(name).and_then(unb64);
        match self {
            Alg::Rs256 | Alg::Ps256 => {
                let n = bytes("n")
                    .filter(|_| text("kty") == Some("RSA"))
                    .ok_or("the key is not an RSA key")?;
                let n: Vec<u8> = n.into_iter().skip_while(|b| *b == 0).collect();
                let bits = n
                    .first()
                    .map_or(0, |top| n.len() * 8 - top.leading_zeros() as usize);
                if bits < 2048 {
                    return Err("the RSA key is shorter than 2048 bits");
                }
                bytes("e").ok_or("the RSA key has no exponent")?;
                Ok(json!({ "kty": "RSA", "n": text("n"), "e": text("e") }))
            }
            Alg::Es256 => {
                let fits = text("kty") == Some("EC")
                    && text("crv") == Some("P-256")
                    && bytes("x").is_some_and(|x| x.len() == 32)
                    && bytes("y").is_some_and(|y| y.len() == 32);
                fits.then(|| json!({ "kty": "EC", "crv": "P-256", "x": text("x"), "y": text("y") }))
                    .ok_or("the key is not a P-256 key")
            }
            Alg::EdDsa => {
                let fits = text("kty") == Some("OKP")
                    && text("crv") == Some("Ed25519")
                    && bytes("x").is_some_and(|x| x.len() == 32);
                fits.then(|| json!({ "kty": "OKP", "crv": "Ed25519", "x": text("x") }))
                    .ok_or("the key is not an Ed25519 key")
            }
        }
    }

    /// Whether a signature of `len` bytes can be one of this algorithm's.
    pub fn signature_fits(self, len: usize) -> bool {
        match self {
            Alg::Es256 | Alg::EdDsa => len == 64,
            Alg::Rs256 | Alg::Ps256 => len >= 256,
        }
    }
}

/// A compact JWS split and decoded, not yet trusted.
#[derive(Debug, Clone, PartialEq)]
pub struct Compact {
    /// Its JOSE header.
    pub header: Map<String, Value>,
    /// Its payload, a JSON object.
    pub payload: Map<String, Value>,
    /// What was signed: `header.payload` as sent.
    pub signing_input: String,
    /// The signature.
    pub signature: Vec<u8>,
}

/// Why a token is not a compact JWS keycard reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Longer than the caller allows.
    TooLong,
    /// Not three base64url parts.
    NotJws,
    /// The header is not a JSON object.
    Header,
    /// The header has `crit`: an extension keycard does not know.
    Crit,
    /// The payload is not a JSON object.
    Payload,
    /// The signature is not base64url.
    Signature,
}

fn object(part: &str) -> Option<Map<String, Value>> {
    match serde_json::from_slice(&unb64(part)?) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// Splits and decodes a compact JWS of at most `max_len` bytes.
pub fn read(token: &str, max_len: usize) -> Result<Compact, Malformed> {
    if token.len() > max_len {
        return Err(Malformed::TooLong);
    }
    let (h, p, s) = crate::util::three_parts(token).ok_or(Malformed::NotJws)?;
    let header = object(h).ok_or(Malformed::Header)?;
    if header.contains_key("crit") {
        return Err(Malformed::Crit);
    }
    Ok(Compact {
        payload: object(p).ok_or(Malformed::Payload)?,
        signature: unb64(s).ok_or(Malformed::Signature)?,
        signing_input: format!("{h}.{p}"),
        header,
    })
}

/// A signature for the driver to check with the runtime's WebCrypto: import `jwk`
/// with `import`, then `verify(verify, key, signature, signing_input)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The public key, as a JWK (JSON).
    pub jwk: String,
    /// `importKey`'s algorithm (JSON).
    pub import: String,
    /// `verify`'s algorithm (JSON).
    pub verify: String,
    /// What was signed.
    pub signing_input: String,
    /// The signature.
    pub signature: Vec<u8>,
}

impl Verification {
    /// The check of `signature` over `signing_input` with `public_key` (a JWK
    /// [`Alg::public_key`] gave) under `alg`.
    pub fn new(alg: Alg, public_key: &Value, signing_input: &str, signature: &[u8]) -> Self {
        Verification {
            jwk: public_key.to_string(),
            import: alg.import_params().to_string(),
            verify: alg.verify_params().to_string(),
            signing_input: signing_input.to_owned(),
            signature: signature.to_vec(),
        }
    }
}
