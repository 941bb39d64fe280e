//! Secrets, purpose keys derived from them with HKDF-SHA256, and the key ring.
//!
//! One master secret yields several purpose keys, so that no key is used for two jobs:
//! the cookie MAC key, the cookie encryption key, the handle key, the key that names
//! each user's Durable Object, and the kid (a short
//! public id of the secret). `SESSION_SECRET_PREVIOUS` adds older secrets to the ring,
//! for verification only.

use std::fmt;

use hkdf::Hkdf;
use hmac::digest::MacError;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::util::b64;

/// HMAC-SHA256, the MAC for cookies, handles and the `jwt` header.
pub type HmacSha256 = Hmac<Sha256>;

/// An HMAC-SHA256 instance keyed with `key`. HMAC takes a key of any length; keycard's
/// own MAC keys are 32 bytes.
pub fn mac_key(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC takes any key length")
}

/// The HMAC-SHA256 tag, under the keyed instance `mac`, of `parts` concatenated.
pub fn mac_tag(mut mac: HmacSha256, parts: &[&[u8]]) -> [u8; 32] {
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Checks `tag` against the HMAC-SHA256 of `parts` concatenated under `mac`, in constant
/// time (`verify_slice`, never `==`).
///
/// # Errors
///
/// [`MacError`] when the tag differs. Only a full 32-byte tag can verify: a truncated
/// one is refused whatever its bytes.
pub fn verify_mac(mut mac: HmacSha256, parts: &[&[u8]], tag: &[u8]) -> Result<(), MacError> {
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(tag)
}

/// HKDF-SHA256 (RFC 5869): extracts a pseudorandom key from `ikm` under `salt`, then
/// expands it with `info` to fill `okm`. Every purpose key is derived here.
///
/// # Errors
///
/// [`OkmTooLong`] when `okm` is longer than HKDF-SHA256 can expand (255 × 32 bytes).
pub fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], okm: &mut [u8]) -> Result<(), OkmTooLong> {
    let len = okm.len();
    Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, okm)
        .map_err(|_| OkmTooLong(len))
}

/// An HKDF-SHA256 output length over the maximum of 255 × 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("HKDF-SHA256 cannot expand to {0} bytes (at most 8160)")]
pub struct OkmTooLong(pub usize);

/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

const HKDF_SALT: &[u8] = b"keycard v1";

/// Why a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Shorter than [`MIN_SECRET_LEN`] bytes.
    #[error("is {0} bytes long; at least 32 are required (64 or more characters recommended)")]
    TooShort(usize),
}

/// A master secret. Its `Debug` never prints the bytes.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl TryFrom<&str> for Secret {
    type Error = SecretError;

    fn try_from(value: &str) -> Result<Self, Self::Error> {
        if value.len() < MIN_SECRET_LEN {
            return Err(SecretError::TooShort(value.len()));
        }
        Ok(Secret(value.as_bytes().to_vec()))
    }
}

impl Secret {
    /// The secret's bytes, for keying a MAC. Never log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A 256-bit key. Its `Debug` never prints the bytes.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl From<[u8; 32]> for Key {
    fn from(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }
}

impl Key {
    /// The raw bytes, for handing to a MAC or cipher.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// The purpose keys derived from one secret, and its kid.
#[derive(Clone)]
pub struct KeySet {
    kid: String,
    mac: HmacSha256,
    enc: Key,
    handle: HmacSha256,
    users: HmacSha256,
    device: HmacSha256,
    loop_mark: String,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("kid", &self.kid)
            .field("keys", &"<redacted>")
            .finish()
    }
}

/// The 32-byte purpose key labelled `info`, derived from `secret`.
fn purpose_key(secret: &Secret, info: &[u8]) -> [u8; 32] {
    let mut okm = [0u8; 32];
    hkdf_sha256(HKDF_SALT, &secret.0, info, &mut okm)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    okm
}

impl KeySet {
    /// Derives every purpose key from `secret` with HKDF-SHA256 (salt `keycard v1`,
    /// one `info` label per purpose).
    pub fn derive(secret: &Secret) -> KeySet {
        let kid_bytes = purpose_key(secret, b"keycard kid");
        let mac = purpose_key(secret, b"keycard cookie-mac");
        let enc = purpose_key(secret, b"keycard cookie-enc");
        let handle = purpose_key(secret, b"keycard session-handle");
        let users = purpose_key(secret, b"keycard users-object");
        let loop_mark = purpose_key(secret, b"keycard loop-mark");
        let device = purpose_key(secret, b"keycard device-bound");
        KeySet {
            kid: b64(&kid_bytes[..6]),
            mac: mac_key(&mac),
            enc: Key(enc),
            handle: mac_key(&handle),
            users: mac_key(&users),
            device: mac_key(&device),
            loop_mark: b64(&loop_mark[..16]),
        }
    }

    /// The key id: 8 base64url characters, public, derived from the secret.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A fresh HMAC instance keyed with the cookie MAC key.
    pub fn cookie_mac(&self) -> HmacSha256 {
        self.mac.clone()
    }

    /// The cookie encryption key (XChaCha20-Poly1305).
    pub fn cookie_enc(&self) -> &Key {
        &self.enc
    }

    /// The session's public handle: base64url of the first 16 bytes of
    /// `HMAC(handle key, session id)`.
    pub fn handle(&self, sid: &SessionId) -> String {
        let tag = mac_tag(self.handle.clone(), &[sid.as_str().as_bytes()]);
        b64(&tag[..16])
    }

    /// The mark keycard puts on every request it forwards (`X-Session-Via`), so that a
    /// request that comes back to it is known for a loop: 16 bytes of its own purpose
    /// key, base64url. Another keycard, under another secret, has another mark.
    pub fn loop_mark(&self) -> &str {
        &self.loop_mark
    }

    /// A fresh HMAC instance keyed with the device-bound sessions' key: their
    /// challenges and short-lived cookies (`crate::dbsc`).
    pub fn device_mac(&self) -> HmacSha256 {
        self.device.clone()
    }

    /// The name of the Durable Object that keeps `user`'s sessions: base64url of
    /// `HMAC(users key, user)`, so no user name appears in an object's name.
    pub fn users_object(&self, user: &str) -> String {
        b64(mac_tag(self.users.clone(), &[user.as_bytes()]))
    }
}

/// Whether `h` can be a handle ([`KeySet::handle`]: base64url of 16 bytes). A client
/// names sessions by handle (`sessions/revoke?id=`, `X-Session-Revoke`), so this is the
/// shape checked before any of them is looked up.
pub fn is_handle(h: &str) -> bool {
    h.len() == 22
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The current key set and the previous ones, looked up by kid.
#[derive(Clone, Debug)]
pub struct KeyRing {
    current: KeySet,
    previous: Vec<KeySet>,
}

impl KeyRing {
    /// A ring with `current` for signing and `previous` for verification only.
    /// Previous secrets equal to the current one (same kid) are dropped.
    pub fn new(current: &Secret, previous: &[Secret]) -> KeyRing {
        let current = KeySet::derive(current);
        let mut prev: Vec<KeySet> = Vec::new();
        for s in previous {
            let k = KeySet::derive(s);
            if k.kid != current.kid && !prev.iter().any(|p| p.kid == k.kid) {
                prev.push(k);
            }
        }
        KeyRing {
            current,
            previous: prev,
        }
    }

    /// The key set new cookies are issued under.
    pub fn current(&self) -> &KeySet {
        &self.current
    }

    /// The key set whose kid is `kid`, and whether it is the current one. The kid picks
    /// the key directly: no MAC is tried against every key.
    pub fn find(&self, kid: &str) -> Option<(&KeySet, bool)> {
        if self.current.kid == kid {
            return Some((&self.current, true));
        }
        self.previous
            .iter()
            .find(|k| k.kid == kid)
            .map(|k| (k, false))
    }

    /// Every key set, the current one first.
    pub fn all(&self) -> impl Iterator<Item = &KeySet> {
        std::iter::once(&self.current).chain(&self.previous)
    }

    /// How many previous key sets the ring holds.
    #[cfg(test)]
    fn previous_len(&self) -> usize {
        self.previous.len()
    }
}

/// A session id: 32 bytes from the platform CSPRNG, base64url (43 characters).
/// It is a bearer secret, so its `Debug` is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl SessionId {
    /// Draws a new id from `entropy`.
    pub fn generate(entropy: &mut dyn Entropy) -> SessionId {
        let mut bytes = [0u8; 32];
        entropy.fill(&mut bytes);
        SessionId(b64(bytes))
    }

    /// Accepts exactly 43 base64url characters that decode to 32 bytes.
    pub fn parse(text: &str) -> Option<SessionId> {
        if text.len() != 43 {
            return None;
        }
        crate::util::unb64(text)
            .filter(|b| b.len() == 32)
            .map(|_| SessionId(text.to_owned()))
    }

    /// The base64url text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// base64url(SHA-256(id)): a name for the session that does not change with a
    /// secret rotation and cannot be turned back into the id.
    pub fn digest(&self) -> String {
        b64(Sha256::digest(self.0.as_bytes()))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

/// A source of random bytes. The edge uses the platform CSPRNG; tests use fixed bytes.
pub trait Entropy {
    /// Fills `buf` with random bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

/// The platform CSPRNG (`getrandom`: `crypto.getRandomValues` on Workers).
pub struct OsEntropy;

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        getrandom::fill(buf).expect("the platform CSPRNG is available");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic entropy for tests: a counter.
    pub struct CountingEntropy(pub u8);

    impl Entropy for CountingEntropy {
        fn fill(&mut self, buf: &mut [u8]) {
            for b in buf {
                *b = self.0;
                self.0 = self.0.wrapping_add(1);
            }
        }
    }

    pub fn secret(s: &str) -> Secret {
        Secret::try_from(s).unwrap()
    }

    #[test]
    fn short_secret_is_refused_with_its_length() {
        assert_eq!(
            Secret::try_from("too short").unwrap_err(),
            SecretError::TooShort(9)
        );
        assert!(Secret::try_from("a".repeat(32).as_str()).is_ok());
    }

    #[test]
    fn debug_does_not_leak_key() {
        let raw = "correct horse battery staple, 32+ bytes of secret";
        let s = secret(raw);
        let ks = KeySet::derive(&s);
        let ring = KeyRing::new(&s, &[secret(&"p".repeat(40))]);
        let sid = SessionId::generate(&mut CountingEntropy(7));
        for text in [
            format!("{s:?}"),
            format!("{ks:?}"),
            format!("{ring:?}"),
            format!("{:?}", ks.cookie_enc()),
            format!("{sid:?}"),
        ] {
            assert!(!text.contains("horse"), "{text}");
            assert!(!text.contains(sid.as_str()), "{text}");
            assert!(text.contains("redacted"), "{text}");
        }
    }

    /// The purpose keys come from [`hkdf_sha256`] (the function the Wycheproof vectors in
    /// `tests/vectors.rs` check) with salt `keycard v1` and one label per purpose.
    #[test]
    fn purpose_keys_are_hkdf_sha256_with_their_labels() {
        let raw = "purpose key secret, 0123456789abcdef0123456789";
        let ks = KeySet::derive(&secret(raw));
        let okm = |info: &[u8]| {
            let mut okm = [0u8; 32];
            hkdf_sha256(b"keycard v1", raw.as_bytes(), info, &mut okm).unwrap();
            okm
        };
        assert_eq!(ks.kid(), b64(&okm(b"keycard kid")[..6]));
        assert_eq!(ks.cookie_enc().bytes(), &okm(b"keycard cookie-enc"));
        assert_eq!(ks.loop_mark(), b64(&okm(b"keycard loop-mark")[..16]));
        let sid = SessionId::generate(&mut CountingEntropy(0));
        let handle = mac_tag(
            mac_key(&okm(b"keycard session-handle")),
            &[sid.as_str().as_bytes()],
        );
        assert_eq!(ks.handle(&sid), b64(&handle[..16]));
        let users = mac_tag(mac_key(&okm(b"keycard users-object")), &[b"ada"]);
        assert_eq!(ks.users_object("ada"), b64(users));
        let cookie = mac_tag(ks.cookie_mac(), &[b"x"]);
        assert_eq!(
            cookie,
            mac_tag(mac_key(&okm(b"keycard cookie-mac")), &[b"x"])
        );
        assert_eq!(
            mac_tag(ks.device_mac(), &[b"x"]),
            mac_tag(mac_key(&okm(b"keycard device-bound")), &[b"x"])
        );
    }

    #[test]
    fn kid_is_stable_and_differs_per_secret() {
        let a = KeySet::derive(&secret(&"a".repeat(32)));
        let a2 = KeySet::derive(&secret(&"a".repeat(32)));
        let b = KeySet::derive(&secret(&"b".repeat(32)));
        assert_eq!(a.kid(), a2.kid());
        assert_ne!(a.kid(), b.kid());
        assert_eq!(a.kid().len(), 8);
    }

    #[test]
    fn ring_finds_by_kid_and_drops_duplicates() {
        let cur = secret(&"c".repeat(32));
        let old = secret(&"o".repeat(32));
        let ring = KeyRing::new(&cur, &[old.clone(), cur.clone(), old.clone()]);
        assert_eq!(ring.previous_len(), 1);
        let old_kid = KeySet::derive(&old).kid().to_owned();
        assert!(matches!(ring.find(&old_kid), Some((_, false))));
        assert!(matches!(ring.find(ring.current().kid()), Some((_, true))));
        assert!(ring.find("nope").is_none());
    }

    #[test]
    fn handles_are_22_base64url_characters() {
        assert!(is_handle("AAAAAAAAAAAAAAAAAAAA-_"));
        assert!(!is_handle("AAAAAAAAAAAAAAAAAAAA-"));
        assert!(!is_handle("AAAAAAAAAAAAAAAAAAAA+/"));
    }

    #[test]
    fn handle_is_not_the_id_and_is_stable() {
        let ks = KeySet::derive(&secret(&"h".repeat(32)));
        let sid = SessionId::generate(&mut CountingEntropy(0));
        assert_eq!(ks.handle(&sid), ks.handle(&sid));
        assert_ne!(ks.handle(&sid), sid.as_str());
        assert_eq!(ks.handle(&sid).len(), 22);
        assert!(is_handle(&ks.handle(&sid)));
    }

    #[test]
    fn session_id_parse_is_strict() {
        let sid = SessionId::generate(&mut CountingEntropy(3));
        assert!(SessionId::parse(sid.as_str()).is_some());
        assert!(SessionId::parse(&sid.as_str()[1..]).is_none());
        assert!(SessionId::parse(&format!("{}=", &sid.as_str()[1..])).is_none());
    }
}
