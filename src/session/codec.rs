//! The session cookie codec: encode, verify, seal and open.
//!
//! # Format
//!
//! A cookie value is a dot-separated string whose first field is its version:
//!
//! ```text
//! signed:  v1.<kid>.<iat>.<ctime>.<aexp>.<sid>.<body>[.<bound>].<mac>
//! sealed:  e1.<kid>.<box>
//! ```
//!
//! - `kid`: 8 base64url characters naming the key set ([`crate::crypto::keys::KeySet::kid`]);
//! - `iat`, `ctime`, `aexp`: issue time, creation time and absolute expiry, unix
//!   seconds in canonical decimal;
//! - `sid`: the session id, 43 base64url characters;
//! - `body`: the session data as base64url (no padding) of its UTF-8 JSON object when
//!   the data lives in the cookie, or `-` when it lives in KV;
//! - `bound`: only for a session bound to a device (`KEYCARD_DEVICE_BOUND`), the
//!   bound key's RFC 7638 thumbprint, 43 base64url characters, which its short-lived
//!   cookie must name; a cookie without it is not bound, or was issued before binding;
//! - `mac`: base64url of HMAC-SHA256 under the cookie MAC key, over the cookie name, a
//!   zero byte, and everything before the last dot (version, kid and payload);
//! - `box`: base64url of a 24-byte random nonce followed by the XChaCha20-Poly1305
//!   ciphertext of the payload `<iat>.<ctime>.<aexp>.<sid>.<body>[.<bound>]`, with the associated
//!   data `<cookie name> 0x00 e1.<kid>`.
//!
//! Verification looks the kid up in the ring (no trial of every key), then checks the
//! MAC in constant time (`verify_slice`) or opens the box, before anything else is
//! parsed. Anything that fails is a [`DecodeError`]: the visitor is anonymous.

use crate::crypto::keys::{mac_tag, verify_mac, Entropy, KeyRing, KeySet, SessionId};
use crate::crypto::sealed_box::{open_box, seal_box, OpenError};
use crate::util::{b64, parse_u64, unb64};

/// The signed format's version tag.
pub const SIGNED: &str = "v1";
/// The sealed (encrypted) format's version tag.
pub const SEALED: &str = "e1";
/// The body marker for "the data lives in KV".
pub const IN_KV: &str = "-";
/// The longest cookie value we even try to decode; longer values are refused unread.
pub const MAX_VALUE_LEN: usize = 4096;

/// Where a cookie says the data is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// base64url of the data's JSON object, carried in the cookie.
    Inline(String),
    /// The data lives in KV under the session id.
    InKv,
}

/// The signed contents of a session cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    /// When this cookie was issued (drives the idle expiry and refresh).
    pub issued: u64,
    /// When the session was created.
    pub created: u64,
    /// The absolute expiry.
    pub abs_exp: u64,
    /// The session id.
    pub sid: SessionId,
    /// Where the data is.
    pub body: Body,
    /// The thumbprint of the device key bound to the session, if any.
    pub bound: Option<String>,
}

/// A verified cookie: its claims and whether it was signed under the current key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The claims.
    pub claims: Claims,
    /// The kid it was signed with.
    pub kid: String,
    /// Whether that is the current key (if not, the cookie is re-issued).
    pub current_key: bool,
}

/// Why a cookie value was refused. None of these is an error of the edge: the visitor
/// is simply anonymous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("cookie value is empty or too long")]
    Length,
    #[error("cookie version is unknown")]
    Version,
    #[error("cookie is malformed")]
    Malformed,
    #[error("cookie key id is unknown")]
    UnknownKid,
    #[error("cookie MAC does not verify")]
    BadMac,
}

fn payload(c: &Claims) -> String {
    let body = match &c.body {
        Body::Inline(b) => b.as_str(),
        Body::InKv => IN_KV,
    };
    let mut p = String::with_capacity(64 + body.len());
    use std::fmt::Write;
    let _ = write!(
        p,
        "{}.{}.{}.{}.{}",
        c.issued,
        c.created,
        c.abs_exp,
        c.sid.as_str(),
        body
    );
    if let Some(t) = &c.bound {
        p.push('.');
        p.push_str(t);
    }
    p
}

/// What the cookie MAC covers: the cookie name, a zero byte, and the signed part.
fn mac_input<'a>(name: &'a str, signed_part: &'a str) -> [&'a [u8]; 3] {
    [name.as_bytes(), &[0], signed_part.as_bytes()]
}

fn aad(name: &str, kid: &str) -> Vec<u8> {
    let mut a = Vec::with_capacity(name.len() + 4 + kid.len());
    a.extend_from_slice(name.as_bytes());
    a.push(0);
    a.extend_from_slice(SEALED.as_bytes());
    a.push(b'.');
    a.extend_from_slice(kid.as_bytes());
    a
}

/// Encodes `claims` as a signed cookie value under `keys`, for the cookie `name`.
pub fn encode_signed(keys: &KeySet, name: &str, claims: &Claims) -> String {
    let mut out = String::with_capacity(160);
    out.push_str(SIGNED);
    out.push('.');
    out.push_str(keys.kid());
    out.push('.');
    out.push_str(&payload(claims));
    let tag = mac_tag(keys.cookie_mac(), &mac_input(name, &out));
    out.push('.');
    out.push_str(&b64(tag));
    out
}

/// Encodes `claims` as a sealed cookie value: XChaCha20-Poly1305 with a fresh random
/// nonce from `entropy`, the cookie name bound as associated data.
pub fn encode_sealed(
    keys: &KeySet,
    name: &str,
    claims: &Claims,
    entropy: &mut dyn Entropy,
) -> String {
    let mut nonce = [0u8; 24];
    entropy.fill(&mut nonce);
    let sealed = seal_box(
        keys.cookie_enc(),
        &nonce,
        &aad(name, keys.kid()),
        payload(claims).as_bytes(),
    );
    format!("{SEALED}.{}.{}", keys.kid(), b64(sealed))
}

fn is_b64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn parse_payload(fields: &[&str]) -> Result<Claims, DecodeError> {
    let (iat, ctime, aexp, sid, body, bound) = match fields {
        [iat, ctime, aexp, sid, body] => (iat, ctime, aexp, sid, body, None),
        [iat, ctime, aexp, sid, body, t] if t.len() == 43 && is_b64url(t) => {
            (iat, ctime, aexp, sid, body, Some((*t).to_owned()))
        }
        _ => return Err(DecodeError::Malformed),
    };
    let issued = parse_u64(iat).ok_or(DecodeError::Malformed)?;
    let created = parse_u64(ctime).ok_or(DecodeError::Malformed)?;
    let abs_exp = parse_u64(aexp).ok_or(DecodeError::Malformed)?;
    let sid = SessionId::parse(sid).ok_or(DecodeError::Malformed)?;
    let body = if *body == IN_KV {
        Body::InKv
    } else if !body.is_empty() && is_b64url(body) {
        Body::Inline((*body).to_owned())
    } else {
        return Err(DecodeError::Malformed);
    };
    if created > issued || issued > abs_exp {
        return Err(DecodeError::Malformed);
    }
    Ok(Claims {
        issued,
        created,
        abs_exp,
        sid,
        body,
        bound,
    })
}

/// Verifies a cookie `value` for the cookie `name` against `ring` and returns its
/// claims, or why it was refused. Expiry is not checked here (see
/// [`crate::session`]).
pub fn decode(ring: &KeyRing, name: &str, value: &str) -> Result<Verified, DecodeError> {
    if value.is_empty() || value.len() > MAX_VALUE_LEN {
        return Err(DecodeError::Length);
    }
    let (version, rest) = value.split_once('.').ok_or(DecodeError::Malformed)?;
    let sealed = match version {
        SIGNED => false,
        SEALED => true,
        _ => return Err(DecodeError::Version),
    };
    let (kid, rest) = rest.split_once('.').ok_or(DecodeError::Malformed)?;
    let (keys, current_key) = ring.find(kid).ok_or(DecodeError::UnknownKid)?;
    let claims = if sealed {
        let sealed_bytes = unb64(rest).ok_or(DecodeError::Malformed)?;
        let plain =
            open_box(keys.cookie_enc(), &aad(name, kid), &sealed_bytes).map_err(|e| match e {
                OpenError::Short => DecodeError::Malformed,
                OpenError::Forged => DecodeError::BadMac,
            })?;
        let text = std::str::from_utf8(&plain).map_err(|_| DecodeError::Malformed)?;
        let fields: Vec<&str> = text.split('.').collect();
        parse_payload(&fields)?
    } else {
        let (signed_part, tag) = value.rsplit_once('.').ok_or(DecodeError::Malformed)?;
        if tag.len() != 43 {
            return Err(DecodeError::BadMac);
        }
        let tag = unb64(tag).ok_or(DecodeError::BadMac)?;
        verify_mac(keys.cookie_mac(), &mac_input(name, signed_part), &tag)
            .map_err(|_| DecodeError::BadMac)?;
        // `v1.<kid>.<mac>` has no payload: `get` rather than a slice that would panic.
        let payload = signed_part
            .get(version.len() + 1 + kid.len() + 1..)
            .ok_or(DecodeError::Malformed)?;
        let fields: Vec<&str> = payload.split('.').collect();
        parse_payload(&fields)?
    };
    Ok(Verified {
        claims,
        kid: kid.to_owned(),
        current_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::tests::{secret, CountingEntropy};
    use crate::crypto::keys::Secret;

    const NAME: &str = "__Host-keycard";

    fn ring() -> KeyRing {
        KeyRing::new(
            &secret("test vector secret: 0123456789abcdef0123456789abcdef"),
            &[],
        )
    }

    fn claims(body: Body) -> Claims {
        Claims {
            issued: 1_700_000_100,
            created: 1_700_000_000,
            abs_exp: 1_700_604_800,
            sid: SessionId::generate(&mut CountingEntropy(0)),
            body,
            bound: None,
        }
    }

    fn data_body() -> Body {
        Body::Inline(b64(br#"{"user":"ada"}"#))
    }

    /// Fixed-key test vector: any change to the format, the key derivation or the MAC
    /// input breaks this test, and must come with a new version tag.
    #[test]
    fn signed_test_vector() {
        let ring = ring();
        let value = encode_signed(ring.current(), NAME, &claims(data_body()));
        assert_eq!(
            value,
            "v1.8moAwKUG.1700000100.1700000000.1700604800.AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8.eyJ1c2VyIjoiYWRhIn0.WLV03EhOje4AWpAmwsxjE1vmrrWVzPh4d3Hc4-4lO0Y"
        );
        let v = decode(&ring, NAME, &value).unwrap();
        assert_eq!(v.claims, claims(data_body()));
        assert!(v.current_key);
    }

    #[test]
    fn kv_body_test_vector() {
        let ring = ring();
        let value = encode_signed(ring.current(), NAME, &claims(Body::InKv));
        assert!(value.contains(".-."), "{value}");
        assert_eq!(decode(&ring, NAME, &value).unwrap().claims.body, Body::InKv);
    }

    /// A bound session's cookie names its key's thumbprint after the body, under the
    /// MAC or inside the box; one without it reads as unbound, as cookies issued before
    /// the field existed do. Anything else in its place is refused.
    #[test]
    fn the_bound_mark_is_signed_sealed_and_optional() {
        let ring = ring();
        let thumb = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
        let marked = Claims {
            bound: Some(thumb.into()),
            ..claims(Body::InKv)
        };
        let signed = encode_signed(ring.current(), NAME, &marked);
        assert!(signed.contains(&format!(".-.{thumb}.")), "{signed}");
        assert_eq!(decode(&ring, NAME, &signed).unwrap().claims, marked);
        let sealed = encode_sealed(ring.current(), NAME, &marked, &mut CountingEntropy(3));
        assert_eq!(decode(&ring, NAME, &sealed).unwrap().claims, marked);
        // Dropping the mark breaks the MAC: a bound cookie cannot be made unbound.
        let unmarked = signed.replacen(&format!(".{thumb}"), "", 1);
        assert_eq!(decode(&ring, NAME, &unmarked), Err(DecodeError::BadMac));
        for bad in ["short", "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9X!"] {
            let c = Claims {
                bound: Some(bad.into()),
                ..claims(Body::InKv)
            };
            let v = encode_signed(ring.current(), NAME, &c);
            assert_eq!(
                decode(&ring, NAME, &v),
                Err(DecodeError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn sealed_round_trip_hides_data_and_uses_fresh_nonces() {
        let ring = ring();
        let mut e = CountingEntropy(9);
        let a = encode_sealed(ring.current(), NAME, &claims(data_body()), &mut e);
        let b = encode_sealed(ring.current(), NAME, &claims(data_body()), &mut e);
        assert_ne!(a, b, "every issue draws a new nonce");
        assert!(a.starts_with("e1."));
        assert!(!a.contains(&b64(br#"{"user":"ada"}"#)));
        let v = decode(&ring, NAME, &a).unwrap();
        assert_eq!(v.claims, claims(data_body()));
    }

    #[test]
    fn cookie_signed_for_another_name_is_refused() {
        let ring = ring();
        let mut e = CountingEntropy(1);
        let s = encode_signed(ring.current(), "other", &claims(data_body()));
        assert_eq!(decode(&ring, NAME, &s), Err(DecodeError::BadMac));
        let e1 = encode_sealed(ring.current(), "other", &claims(data_body()), &mut e);
        assert_eq!(decode(&ring, NAME, &e1), Err(DecodeError::BadMac));
    }

    /// Changes every byte of a valid cookie, one at a time, to every other printable
    /// byte class we can think of; each must be refused.
    #[test]
    fn tamper_every_byte() {
        let ring = ring();
        let mut e = CountingEntropy(5);
        let signed = encode_signed(ring.current(), NAME, &claims(data_body()));
        let sealed = encode_sealed(ring.current(), NAME, &claims(data_body()), &mut e);
        for value in [signed, sealed] {
            let bytes = value.as_bytes();
            for i in 0..bytes.len() {
                for repl in [b'A', b'z', b'0', b'.', b'-', b'_', b'=', b'+'] {
                    if bytes[i] == repl {
                        continue;
                    }
                    let mut t = bytes.to_vec();
                    t[i] = repl;
                    let t = String::from_utf8(t).unwrap();
                    assert!(
                        decode(&ring, NAME, &t).is_err(),
                        "byte {i} -> {} accepted: {t}",
                        repl as char
                    );
                }
            }
            // Truncation at every length is refused too.
            for n in 0..value.len() {
                assert!(decode(&ring, NAME, &value[..n]).is_err(), "prefix {n}");
            }
        }
    }

    #[test]
    fn previous_key_verifies_and_is_not_current() {
        let old: Secret = secret(&"o".repeat(40));
        let new: Secret = secret(&"n".repeat(40));
        let old_ring = KeyRing::new(&old, &[]);
        let value = encode_signed(old_ring.current(), NAME, &claims(data_body()));
        let rotated = KeyRing::new(&new, std::slice::from_ref(&old));
        let v = decode(&rotated, NAME, &value).unwrap();
        assert!(!v.current_key);
        let dropped = KeyRing::new(&new, &[]);
        assert_eq!(decode(&dropped, NAME, &value), Err(DecodeError::UnknownKid));
    }

    #[test]
    fn unknown_version_and_junk_are_refused() {
        let ring = ring();
        let value = encode_signed(ring.current(), NAME, &claims(data_body()));
        assert_eq!(
            decode(&ring, NAME, &value.replacen("v1", "v2", 1)),
            Err(DecodeError::Version)
        );
        assert_eq!(decode(&ring, NAME, ""), Err(DecodeError::Length));
        assert_eq!(
            decode(&ring, NAME, &"a".repeat(5000)),
            Err(DecodeError::Length)
        );
        assert_eq!(decode(&ring, NAME, "v1"), Err(DecodeError::Malformed));
        assert_eq!(
            decode(&ring, NAME, "v1.nokid.x"),
            Err(DecodeError::UnknownKid)
        );
        // Padded and standard-alphabet MACs are refused even when they carry the same bytes.
        let (head, tag) = value.rsplit_once('.').unwrap();
        assert!(decode(&ring, NAME, &format!("{head}.{tag}=")).is_err());
        let std_tag = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            unb64(tag).unwrap(),
        );
        if std_tag.trim_end_matches('=') != tag {
            assert!(decode(&ring, NAME, &format!("{head}.{std_tag}")).is_err());
        }
    }

    /// Found by fuzzing (`fuzz/regressions/cookie_decode/`): a correctly signed
    /// `v1.<kid>` with no payload at all panicked slicing past its end. Only the key
    /// holder can make one, but a panic aborts the Worker.
    #[test]
    fn signed_cookie_without_payload_is_malformed_not_a_panic() {
        let ring = ring();
        let keys = ring.current();
        let signed_part = format!("{SIGNED}.{}", keys.kid());
        let tag = mac_tag(keys.cookie_mac(), &mac_input(NAME, &signed_part));
        let value = format!("{signed_part}.{}", b64(tag));
        assert_eq!(decode(&ring, NAME, &value), Err(DecodeError::Malformed));
    }

    /// A forged cookie with the right structure but claims out of order is refused
    /// even under a valid MAC (created after issued).
    #[test]
    fn inconsistent_times_are_malformed() {
        let ring = ring();
        let mut c = claims(data_body());
        c.created = c.issued + 1;
        let value = encode_signed(ring.current(), NAME, &c);
        assert_eq!(decode(&ring, NAME, &value), Err(DecodeError::Malformed));
    }
}
