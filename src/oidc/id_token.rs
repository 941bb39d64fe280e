//! The ID token (OpenID Connect Core §3.1.3.7): its header, the key that must have
//! signed it, and its claims.
//!
//! keycard decides everything here: which algorithm is acceptable, which key, what the
//! claims must say. Only the signature arithmetic is the runtime's (WebCrypto), as a
//! step of the exchange: a [`Verification`] the driver carries out.

use serde_json::{Map, Value};

use crate::crypto::jws::{self, Alg, Malformed, Verification};

/// How much clock difference with the provider is tolerated, in seconds.
pub const SKEW: u64 = 60;

/// The longest ID token read: a provider's token with many groups is a few kilobytes.
const MAX_TOKEN: usize = 64 * 1024;

/// An ID token read but not yet trusted.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    /// Its algorithm, one keycard accepts.
    pub alg: Alg,
    /// Its header's `kid`.
    pub kid: Option<String>,
    /// Its claims.
    pub claims: Map<String, Value>,
    /// What was signed: `header.payload`.
    pub signing_input: String,
    /// The signature.
    pub signature: Vec<u8>,
}

/// Reads a compact JWS: three base64url parts, a header with an accepted `alg`, no
/// `crit`, and a JSON object of claims.
pub fn parse(token: &str) -> Result<Parsed, &'static str> {
    let jws = jws::read(token, MAX_TOKEN).map_err(|e| match e {
        Malformed::TooLong => "the ID token is too long",
        Malformed::NotJws => "the ID token is not a signed JWT",
        Malformed::Header => "the ID token's header does not read",
        Malformed::Crit => "the ID token has critical header parameters",
        Malformed::Payload => "the ID token's claims do not read",
        Malformed::Signature => "the ID token's signature does not read",
    })?;
    let alg = jws.header.get("alg").and_then(Value::as_str).unwrap_or("");
    let alg = Alg::from_name(alg).ok_or("the ID token's algorithm is not one keycard accepts")?;
    if !alg.signature_fits(jws.signature.len()) {
        return Err("the ID token's signature does not fit its algorithm");
    }
    Ok(Parsed {
        alg,
        kid: jws
            .header
            .get("kid")
            .and_then(Value::as_str)
            .map(str::to_owned),
        claims: jws.payload,
        signing_input: jws.signing_input,
        signature: jws.signature,
    })
}

/// Why no key can check the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// No key has its `kid`: the provider may have rotated its keys.
    UnknownKid,
    /// A key is there, but not one for this token.
    Unfit(&'static str),
}

/// The check of `token`'s signature with its key among `keys` (a JWKS's `keys`).
pub fn verification(token: &Parsed, keys: &[Map<String, Value>]) -> Result<Verification, KeyError> {
    let alg = token.alg;
    let usable = |k: &&Map<String, Value>| {
        let text = |n: &str| k.get(n).and_then(Value::as_str);
        let named = |a: &str| a == alg.name() || (alg == Alg::EdDsa && a == "Ed25519");
        text("use").is_none_or(|u| u == "sig") && text("alg").is_none_or(named)
    };
    let jwk = match &token.kid {
        Some(kid) => {
            let mut same = keys
                .iter()
                .filter(|k| k.get("kid").and_then(Value::as_str) == Some(kid));
            let key = same.next().ok_or(KeyError::UnknownKid)?;
            if same.next().is_some() {
                return Err(KeyError::Unfit("two keys have the token's kid"));
            }
            if !usable(&key) {
                return Err(KeyError::Unfit(
                    "the key with the token's kid is not for this algorithm",
                ));
            }
            alg.public_key(key).map_err(KeyError::Unfit)?
        }
        None => {
            let mut fits = keys
                .iter()
                .filter(usable)
                .filter_map(|k| alg.public_key(k).ok());
            match (fits.next(), fits.next()) {
                (Some(k), None) => k,
                _ => {
                    return Err(KeyError::Unfit(
                        "the token has no kid, and not exactly one key fits it",
                    ))
                }
            }
        }
    };
    Ok(Verification::new(
        alg,
        &jwk,
        &token.signing_input,
        &token.signature,
    ))
}

fn seconds(v: Option<&Value>) -> Option<u64> {
    v.and_then(Value::as_f64)
        .filter(|f| f.is_finite() && *f >= 0.0)
        .map(|f| f as u64)
}

/// Checks the claims: `iss`, `aud` (and `azp`), `exp`, `iat`, `nonce` and `sub`.
pub fn check_claims(
    claims: &Map<String, Value>,
    issuer: &str,
    client_id: &str,
    nonce: &str,
    now: u64,
) -> Result<(), &'static str> {
    let text = |n: &str| claims.get(n).and_then(Value::as_str);
    if text("iss") != Some(issuer) {
        return Err("the ID token's iss is not the provider's issuer");
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&client_id) {
        return Err("the ID token's aud is not this client");
    }
    match text("azp") {
        Some(azp) if azp != client_id => return Err("the ID token's azp is another client"),
        None if audiences.len() > 1 => return Err("the ID token has several audiences and no azp"),
        _ => {}
    }
    match seconds(claims.get("exp")) {
        Some(exp) if now < exp.saturating_add(SKEW) => {}
        Some(_) => return Err("the ID token has expired"),
        None => return Err("the ID token has no exp"),
    }
    match seconds(claims.get("iat")) {
        Some(iat) if iat <= now.saturating_add(SKEW) => {}
        Some(_) => return Err("the ID token was issued in the future"),
        None => return Err("the ID token has no iat"),
    }
    // Compared as a whole: the nonce is a one-time secret, not a prefix.
    if text("nonce") != Some(nonce) {
        return Err("the ID token's nonce is not this sign-in's");
    }
    match text("sub") {
        Some(s) if !s.is_empty() => Ok(()),
        _ => Err("the ID token has no sub"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::util::b64;

    fn jws(header: Value, claims: Value, sig_len: usize) -> String {
        crate::testing::compact_jws(header, claims, &vec![7u8; sig_len])
    }

    fn rsa_key(kid: &str, bits: usize) -> Map<String, Value> {
        let mut n = vec![0u8];
        n.extend(vec![0xc5u8; bits / 8]);
        json!({ "kty": "RSA", "kid": kid, "use": "sig", "n": b64(n), "e": "AQAB" })
            .as_object()
            .unwrap()
            .clone()
    }

    fn ec_key(kid: &str) -> Map<String, Value> {
        json!({ "kty": "EC", "crv": "P-256", "kid": kid, "x": b64([1u8; 32]), "y": b64([2u8; 32]) })
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn none_and_hmac_and_unknown_algorithms_are_refused() {
        for alg in ["none", "HS256", "HS512", "RS1", "ES384", ""] {
            let t = jws(json!({ "alg": alg, "kid": "k" }), json!({}), 256);
            assert_eq!(
                parse(&t),
                Err("the ID token's algorithm is not one keycard accepts"),
                "{alg}"
            );
        }
        let unsigned = format!("{}.{}.", b64(r#"{"alg":"none"}"#), b64("{}"));
        assert!(parse(&unsigned).is_err());
        assert!(parse("a.b").is_err());
        assert!(parse("a.b.c.d").is_err());
        let crit = jws(json!({ "alg": "RS256", "crit": ["exp"] }), json!({}), 256);
        assert!(parse(&crit).is_err());
        let short = jws(json!({ "alg": "ES256" }), json!({}), 63);
        assert!(parse(&short).is_err());
    }

    #[test]
    fn the_key_is_picked_by_kid_and_must_fit_the_algorithm() {
        let keys = [rsa_key("r", 2048), ec_key("e")];
        let t = parse(&jws(json!({ "alg": "RS256", "kid": "r" }), json!({}), 256)).unwrap();
        let v = verification(&t, &keys).unwrap();
        let jwk: Value = serde_json::from_str(&v.jwk).unwrap();
        assert_eq!(jwk["kty"], "RSA");
        assert!(jwk.get("kid").is_none(), "only what WebCrypto needs");
        assert_eq!(v.signing_input, t.signing_input);
        // ES256 naming the RSA key: refused, not verified with a confused key.
        let t = parse(&jws(json!({ "alg": "ES256", "kid": "r" }), json!({}), 64)).unwrap();
        assert!(matches!(verification(&t, &keys), Err(KeyError::Unfit(_))));
        let t = parse(&jws(json!({ "alg": "ES256", "kid": "zz" }), json!({}), 64)).unwrap();
        assert_eq!(verification(&t, &keys), Err(KeyError::UnknownKid));
        let t = parse(&jws(json!({ "alg": "ES256" }), json!({}), 64)).unwrap();
        assert!(
            verification(&t, &keys).is_ok(),
            "one key fits, no kid needed"
        );
    }

    #[test]
    fn short_rsa_keys_are_refused() {
        let keys = [rsa_key("r", 1024)];
        let t = parse(&jws(json!({ "alg": "RS256", "kid": "r" }), json!({}), 256)).unwrap();
        assert_eq!(
            verification(&t, &keys),
            Err(KeyError::Unfit("the RSA key is shorter than 2048 bits"))
        );
    }

    #[test]
    fn rsa_keys_are_measured_in_bits() {
        let mut k = rsa_key("r", 2048);
        // 2041 bits: the top byte holds one bit.
        let mut n = vec![0x01u8];
        n.extend(vec![0xc5u8; 255]);
        k.insert("n".into(), json!(b64(n)));
        let t = parse(&jws(json!({ "alg": "RS256", "kid": "r" }), json!({}), 256)).unwrap();
        assert!(matches!(verification(&t, &[k]), Err(KeyError::Unfit(_))));
    }

    #[test]
    fn a_key_for_another_algorithm_is_refused() {
        let mut k = rsa_key("r", 2048);
        k.insert("alg".into(), json!("PS256"));
        let t = parse(&jws(json!({ "alg": "RS256", "kid": "r" }), json!({}), 256)).unwrap();
        assert!(matches!(verification(&t, &[k]), Err(KeyError::Unfit(_))));
    }

    fn claims() -> Map<String, Value> {
        json!({
            "iss": "https://id.example", "aud": "app", "sub": "u1", "nonce": "n0",
            "exp": 2000, "iat": 1000,
        })
        .as_object()
        .unwrap()
        .clone()
    }

    #[test]
    fn claims_are_checked() {
        let check =
            |c: &Map<String, Value>, now| check_claims(c, "https://id.example", "app", "n0", now);
        assert_eq!(check(&claims(), 1500), Ok(()));
        assert_eq!(check(&claims(), 2059), Ok(()), "within the skew");
        assert!(check(&claims(), 2060).is_err());
        assert!(check(&claims(), 939).is_err(), "issued in the future");
        for (k, v) in [
            ("iss", json!("https://id.example/")),
            ("aud", json!("other")),
            ("aud", json!(["app", "other"])),
            ("nonce", json!("n0x")),
            ("sub", json!("")),
            ("exp", json!("2000")),
            ("azp", json!("other")),
        ] {
            let mut c = claims();
            c.insert(k.into(), v.clone());
            assert!(check(&c, 1500).is_err(), "{k}: {v}");
        }
        for k in ["iss", "aud", "exp", "iat", "nonce", "sub"] {
            let mut c = claims();
            c.remove(k);
            assert!(check(&c, 1500).is_err(), "{k} missing");
        }
        let mut c = claims();
        c.insert("aud".into(), json!(["app", "other"]));
        c.insert("azp".into(), json!("app"));
        assert_eq!(check(&c, 1500), Ok(()));
    }
}
