//! Secrets, purpose keys derived from them with HKDF-SHA256, and the key ring.
//!
//! One master secret yields several purpose keys, so that no key is used for two jobs:
//! the cookie MAC key, the cookie encryption key, the handle key, and the kid (a short
//! public id of the secret). `SESSION_SECRET_PREVIOUS` adds older secrets to the ring,
//! for verification only.

use std::fmt;

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::util::b64;

/// HMAC-SHA256, the MAC for cookies and handles.
pub type HmacSha256 = Hmac<Sha256>;

/// The shortest secret accepted, in bytes (SPEC §2).
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
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("kid", &self.kid)
            .field("keys", &"<redacted>")
            .finish()
    }
}

fn expand(hk: &Hkdf<Sha256>, info: &[u8]) -> [u8; 32] {
    let mut okm = [0u8; 32];
    hk.expand(info, &mut okm)
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    okm
}

impl KeySet {
    /// Derives every purpose key from `secret` with HKDF-SHA256 (salt `keycard v1`,
    /// one `info` label per purpose).
    pub fn derive(secret: &Secret) -> KeySet {
        let hk = Hkdf::<Sha256>::new(Some(HKDF_SALT), &secret.0);
        let kid_bytes = expand(&hk, b"keycard kid");
        let mac = expand(&hk, b"keycard cookie-mac");
        let enc = expand(&hk, b"keycard cookie-enc");
        let handle = expand(&hk, b"keycard session-handle");
        KeySet {
            kid: b64(&kid_bytes[..6]),
            mac: HmacSha256::new_from_slice(&mac).expect("HMAC takes any key length"),
            enc: Key(enc),
            handle: HmacSha256::new_from_slice(&handle).expect("HMAC takes any key length"),
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
        let mut mac = self.handle.clone();
        mac.update(sid.as_str().as_bytes());
        let tag = mac.finalize().into_bytes();
        b64(&tag[..16])
    }
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

    /// How many previous key sets the ring holds.
    pub fn previous_len(&self) -> usize {
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

    /// The KV key for this session: `prefix` + base64url(SHA-256(id)), so a KV dump
    /// holds no usable ids.
    pub fn kv_key(&self, prefix: &str) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        let mut key = String::with_capacity(prefix.len() + 43);
        key.push_str(prefix);
        key.push_str(&b64(digest));
        key
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
    fn handle_is_not_the_id_and_is_stable() {
        let ks = KeySet::derive(&secret(&"h".repeat(32)));
        let sid = SessionId::generate(&mut CountingEntropy(0));
        assert_eq!(ks.handle(&sid), ks.handle(&sid));
        assert_ne!(ks.handle(&sid), sid.as_str());
        assert_eq!(ks.handle(&sid).len(), 22);
    }

    #[test]
    fn kv_key_hashes_the_id() {
        let sid = SessionId::generate(&mut CountingEntropy(0));
        let key = sid.kv_key("keycard:");
        assert!(key.starts_with("keycard:"));
        assert!(!key.contains(sid.as_str()));
        assert_eq!(key.len(), "keycard:".len() + 43);
    }

    #[test]
    fn session_id_parse_is_strict() {
        let sid = SessionId::generate(&mut CountingEntropy(3));
        assert!(SessionId::parse(sid.as_str()).is_some());
        assert!(SessionId::parse(&sid.as_str()[1..]).is_none());
        assert!(SessionId::parse(&format!("{}=", &sid.as_str()[1..])).is_none());
    }
}
