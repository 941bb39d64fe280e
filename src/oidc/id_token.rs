//! The ID token (OpenID Connect Core §3.1.3.7): its header, the key that must have
//! signed it, and its claims.
//!
//! keycard decides everything here: which algorithm is acceptable, which key, what the
//! claims must say. Only the signature arithmetic is the runtime's (WebCrypto), as a
//! step of the exchange: a [`Verification`] the driver carries out.

use serde_json::{json, Map, Value};

use crate::util::unb64;

/// How much clock difference with the provider is tolerated, in seconds.
pub const SKEW: u64 = 60;

/// The longest ID token read: a provider's token with many groups is a few kilobytes.
const MAX_TOKEN: usize = 64 * 1024;

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
    fn from_name(name: &str) -> Option<Alg> {
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
    fn public_key(self, jwk: &Map<String, Value>) -> Result<Value, &'static str> {
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
    fn signature_fits(self, len: usize) -> bool {
        match self {
            Alg::Es256 | Alg::EdDsa => len == 64,
            Alg::Rs256 | Alg::Ps256 => len >= 256,
        }
    }
}

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

fn object(part: &str) -> Option<Map<String, Value>> {
    match serde_json::from_slice(&unb64(part)?) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// Reads a compact JWS: three base64url parts, a header with an accepted `alg`, no
/// `crit`, and a JSON object of claims.
pub fn parse(token: &str) -> Result<Parsed, &'static str> {
    if token.len() > MAX_TOKEN {
        return Err("the ID token is too long");
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the ID token is not a signed JWT");
    };
    let header = object(h).ok_or("the ID token's header does not read")?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let alg = Alg::from_name(alg).ok_or("the ID token's algorithm is not one keycard accepts")?;
    if header.contains_key("crit") {
        return Err("the ID token has critical header parameters");
    }
    let claims = object(p).ok_or("the ID token's claims do not read")?;
    let signature = unb64(s).ok_or("the ID token's signature does not read")?;
    if !alg.signature_fits(signature.len()) {
        return Err("the ID token's signature does not fit its algorithm");
    }
    Ok(Parsed {
        alg,
        kid: header.get("kid").and_then(Value::as_str).map(str::to_owned),
        claims,
        signing_input: format!("{h}.{p}"),
        signature,
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
    Ok(Verification {
        jwk: jwk.to_string(),
        import: alg.import_params().to_string(),
        verify: alg.verify_params().to_string(),
        signing_input: token.signing_input.clone(),
        signature: token.signature.clone(),
    })
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
    use super::*;
    use crate::util::b64;

    fn jws(header: Value, claims: Value, sig_len: usize) -> String {
        format!(
            "{}.{}.{}",
            b64(header.to_string()),
            b64(claims.to_string()),
            b64(vec![7u8; sig_len])
        )
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
