//! A browser's proof of its key (`Secure-Session-Response`): a compact JWS whose header
//! is `typ` `dbsc+jwt` with `alg` (ES256 or RS256, the two the registration offers) and,
//! at registration, the public key as `jwk`; its payload's `jti` is the challenge it
//! answers. Chromium 150 sends `{"alg","jwk","typ"}` and `{"jti"}`, and no `iat` or
//! `aud`: freshness and the tie to one session are the challenge's.
//!
//! At a refresh the key bound before decides: a `jwk` in the header is ignored, and the
//! `alg` must be the bound key's.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::crypto::jws::{self, Alg, Compact, Verification};
use crate::util::b64;

/// The longest proof read: an RS256 proof with its 2048-bit key is under 1 KB; a
/// 4096-bit one under 2 KB.
pub const MAX_LEN: usize = 8 * 1024;

/// A key bound to a session: its algorithm and its public JWK (only the members
/// WebCrypto needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundKey {
    /// The algorithm it signs with.
    pub alg: Alg,
    /// Its public JWK.
    pub jwk: Value,
}

impl BoundKey {
    /// Its RFC 7638 thumbprint: base64url of the SHA-256 of its required members, in
    /// lexicographic order, without white space.
    pub fn thumbprint(&self) -> String {
        let m = |n: &str| Value::from(self.jwk.get(n).and_then(Value::as_str).unwrap_or(""));
        let canonical = match self.alg {
            Alg::Es256 => format!(
                r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
                m("crv"),
                m("x"),
                m("y")
            ),
            _ => format!(r#"{{"e":{},"kty":"RSA","n":{}}}"#, m("e"), m("n")),
        };
        b64(Sha256::digest(canonical.as_bytes()))
    }

    /// Its stored form: `<alg> <jwk>`.
    pub fn stored(&self) -> String {
        format!("{} {}", self.alg.name(), self.jwk)
    }

    /// The key [`BoundKey::stored`] wrote, when it reads as one keycard accepts.
    pub fn from_stored(text: &str) -> Option<BoundKey> {
        let (alg, jwk) = text.split_once(' ')?;
        let alg = accepted(alg)?;
        let jwk: Map<String, Value> = serde_json::from_str(jwk).ok()?;
        Some(BoundKey {
            alg,
            jwk: alg.public_key(&jwk).ok()?,
        })
    }
}

/// A proof read, its signature not yet checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Proof {
    /// The key it must verify with.
    pub key: BoundKey,
    /// The challenge it answers.
    pub jti: String,
    /// The signature check for the driver.
    pub verification: Verification,
}

/// The algorithms a registration offers, and so the only ones accepted.
fn accepted(name: &str) -> Option<Alg> {
    match name {
        "ES256" => Some(Alg::Es256),
        "RS256" => Some(Alg::Rs256),
        _ => None,
    }
}

/// Reads `token` as a proof, the JWS's checks first, then the header's: `typ`, `alg`
/// and the key.
fn read(token: &str) -> Result<(Compact, Alg), &'static str> {
    let jws = jws::read(token, MAX_LEN).map_err(|e| match e {
        jws::Malformed::TooLong => "the proof is too long",
        jws::Malformed::Crit => "the proof has critical header parameters",
        _ => "the proof is not a signed JWT",
    })?;
    let text = |n: &str| jws.header.get(n).and_then(Value::as_str);
    if text("typ") != Some("dbsc+jwt") {
        return Err("the proof's typ is not dbsc+jwt");
    }
    let alg = text("alg")
        .and_then(accepted)
        .ok_or("the proof's algorithm is not ES256 or RS256")?;
    if !alg.signature_fits(jws.signature.len()) {
        return Err("the proof's signature does not fit its algorithm");
    }
    Ok((jws, alg))
}

/// The challenge a proof answers.
fn jti(jws: &Compact) -> Result<String, &'static str> {
    match jws.payload.get("jti").and_then(Value::as_str) {
        Some(j) if !j.is_empty() => Ok(j.to_owned()),
        _ => Err("the proof has no jti"),
    }
}

fn proof(jws: Compact, key: BoundKey) -> Result<Proof, &'static str> {
    let jti = jti(&jws)?;
    let verification = Verification::new(key.alg, &key.jwk, &jws.signing_input, &jws.signature);
    Ok(Proof {
        key,
        jti,
        verification,
    })
}

/// A registration's proof: the key is the header's `jwk`, which must fit `alg`
/// (a P-256 key for ES256, an RSA key of at least 2048 bits for RS256).
pub fn registration(token: &str) -> Result<Proof, &'static str> {
    let (jws, alg) = read(token)?;
    let jwk = match jws.header.get("jwk") {
        Some(Value::Object(k)) => alg.public_key(k)?,
        _ => return Err("the registration's proof has no jwk"),
    };
    proof(jws, BoundKey { alg, jwk })
}

/// A refresh's proof, which only the `bound` key can have signed.
pub fn refresh(token: &str, bound: &BoundKey) -> Result<Proof, &'static str> {
    let (jws, alg) = read(token)?;
    if alg != bound.alg {
        return Err("the proof's algorithm is not the bound key's");
    }
    proof(jws, bound.clone())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// RFC 7638 §3.1's example key, whose thumbprint the RFC gives.
    const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    fn ec_jwk(x: u8) -> Value {
        json!({ "kty": "EC", "crv": "P-256", "x": b64([x; 32]), "y": b64([2u8; 32]) })
    }

    fn token(header: Value, payload: Value, sig_len: usize) -> String {
        crate::testing::compact_jws(header, payload, &vec![9u8; sig_len])
    }

    /// The shape Chromium 150 sends at registration.
    fn chromium_registration(jwk: Value) -> String {
        token(
            json!({ "alg": "ES256", "jwk": jwk, "typ": "dbsc+jwt" }),
            json!({ "jti": "c1" }),
            64,
        )
    }

    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        let key = BoundKey {
            alg: Alg::Rs256,
            jwk: json!({ "kty": "RSA", "n": RFC7638_N, "e": "AQAB" }),
        };
        assert_eq!(
            key.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert_eq!(BoundKey::from_stored(&key.stored()), Some(key));
        // A P-256 key's, as npm jose's calculateJwkThumbprint gives it.
        let ec = BoundKey {
            alg: Alg::Es256,
            jwk: ec_jwk(1),
        };
        assert_eq!(
            ec.thumbprint(),
            "kOFKxjJdOqJD5G4Yuw-cxHe64VGyxKEO_hoV83QfGj0"
        );
        assert_eq!(BoundKey::from_stored(&ec.stored()), Some(ec));
        assert_eq!(BoundKey::from_stored("HS256 {}"), None);
    }

    #[test]
    fn a_registration_brings_its_key_and_answers_a_challenge() {
        let p = registration(&chromium_registration(ec_jwk(1))).unwrap();
        assert_eq!(p.jti, "c1");
        assert_eq!(p.key.alg, Alg::Es256);
        assert_eq!(p.key.jwk, ec_jwk(1));
        assert_eq!(p.verification.signature.len(), 64);
        let verify: Value = serde_json::from_str(&p.verification.verify).unwrap();
        assert_eq!(verify, json!({ "name": "ECDSA", "hash": "SHA-256" }));
    }

    #[test]
    fn a_proof_that_is_not_dbsc_es256_or_rs256_is_refused() {
        let ok = json!({ "alg": "ES256", "jwk": ec_jwk(1), "typ": "dbsc+jwt" });
        let with = |k: &str, v: Value| {
            let mut h = ok.clone();
            h[k] = v;
            h
        };
        for (header, why) in [
            (with("typ", json!("JWT")), "the proof's typ is not dbsc+jwt"),
            (
                with("alg", json!("none")),
                "the proof's algorithm is not ES256 or RS256",
            ),
            (
                with("alg", json!("HS256")),
                "the proof's algorithm is not ES256 or RS256",
            ),
            (
                with("alg", json!("PS256")),
                "the proof's algorithm is not ES256 or RS256",
            ),
            (
                with("alg", json!("EdDSA")),
                "the proof's algorithm is not ES256 or RS256",
            ),
            (
                with("jwk", json!("key")),
                "the registration's proof has no jwk",
            ),
            (
                with("crit", json!(["exp"])),
                "the proof has critical header parameters",
            ),
        ] {
            assert_eq!(
                registration(&token(header, json!({ "jti": "c" }), 64)),
                Err(why)
            );
        }
        let rsa = json!({ "kty": "RSA", "n": b64([0xc5u8; 128]), "e": "AQAB" });
        let short = token(
            json!({ "alg": "RS256", "jwk": rsa, "typ": "dbsc+jwt" }),
            json!({ "jti": "c" }),
            256,
        );
        assert_eq!(
            registration(&short),
            Err("the RSA key is shorter than 2048 bits")
        );
        let ec_as_rsa = token(with("alg", json!("RS256")), json!({ "jti": "c" }), 256);
        assert_eq!(registration(&ec_as_rsa), Err("the key is not an RSA key"));
        assert_eq!(
            registration(&token(ok.clone(), json!({}), 64)),
            Err("the proof has no jti")
        );
        assert_eq!(
            registration(&token(ok.clone(), json!({ "jti": "" }), 64)),
            Err("the proof has no jti")
        );
        let unsigned = format!(
            "{}.{}.",
            b64(with("alg", json!("none")).to_string()),
            b64(r#"{"jti":"c"}"#)
        );
        assert!(registration(&unsigned).is_err());
        assert_eq!(
            registration(&token(ok, json!({ "jti": "c" }), 63)),
            Err("the proof's signature does not fit its algorithm")
        );
        assert_eq!(
            registration(&"a".repeat(MAX_LEN + 1)),
            Err("the proof is too long")
        );
    }

    #[test]
    fn a_refresh_is_checked_with_the_bound_key_whatever_its_header_says() {
        let bound = BoundKey {
            alg: Alg::Es256,
            jwk: ec_jwk(1),
        };
        // A thief's proof, signed with its own key and naming it in the header.
        let swapped = token(
            json!({ "alg": "ES256", "jwk": ec_jwk(7), "typ": "dbsc+jwt" }),
            json!({ "jti": "c2" }),
            64,
        );
        let p = refresh(&swapped, &bound).unwrap();
        assert_eq!(p.key, bound, "the header's jwk is ignored");
        let jwk: Value = serde_json::from_str(&p.verification.jwk).unwrap();
        assert_eq!(jwk, ec_jwk(1), "WebCrypto gets the bound key");
        // What Chromium 150 sends at a refresh: no jwk.
        let plain = token(
            json!({ "alg": "ES256", "typ": "dbsc+jwt" }),
            json!({ "jti": "c3" }),
            64,
        );
        assert_eq!(refresh(&plain, &bound).unwrap().jti, "c3");
        let rs = token(
            json!({ "alg": "RS256", "typ": "dbsc+jwt" }),
            json!({ "jti": "c3" }),
            256,
        );
        assert_eq!(
            refresh(&rs, &bound),
            Err("the proof's algorithm is not the bound key's")
        );
    }
}
