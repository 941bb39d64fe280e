//! Device-bound sessions (DBSC, W3C WebAppSec's Device Bound Session Credentials): the
//! protocol's rules, as plain functions the exchange calls (`exchange/device.rs`).
//!
//! A browser with DBSC keeps a key pair in the device's secure hardware. When a site
//! offers binding (`Secure-Session-Registration` on a response), the browser registers
//! the public key with a signed proof (`Secure-Session-Response`, a `dbsc+jwt`); the
//! site then issues only a short-lived cookie, and each renewal (a POST to the refresh
//! URL, answered with a `Secure-Session-Challenge` first) needs a fresh proof from that
//! key, which malware on the device cannot export. A stolen session cookie dies with its
//! short-lived cookie, within minutes.
//!
//! What is here, each checked by its own tests:
//! - [`challenge`]: the challenges keycard mints, each tied to one session and a time
//!   by a MAC, so that none needs storing to be checked, and one whose time is not later
//!   than the last one used is refused;
//! - [`proof`]: a browser's proof read and judged: only ES256 and RS256, `typ`
//!   `dbsc+jwt`, the key a registration brings or, on a refresh, the key bound before;
//!   the signature itself is the runtime's WebCrypto, a step of the exchange;
//! - [`short_cookie`]: the short-lived cookie, tied by a MAC to the session id, the
//!   bound key's thumbprint and its expiry;
//! - [`wire`]: the headers' text and the session configuration the browser reads.
//!
//! Header names are Chrome's current ones (Chromium 150 sends and reads these); the
//! older `Sec-Session-*` names are gone from Chromium 156.

pub mod challenge;
pub mod proof;
pub mod short_cookie;
pub mod wire;

use proof::BoundKey;

/// The response header that offers binding.
pub const REGISTRATION: &str = "secure-session-registration";
/// The request header that carries a proof.
pub const RESPONSE: &str = "secure-session-response";
/// The response header that asks for a proof on a refresh.
pub const CHALLENGE: &str = "secure-session-challenge";
/// The request header that names the session on a refresh.
pub const SESSION_ID: &str = "sec-secure-session-id";

/// A device bound to a session: its key, the time of the last challenge it answered, so
/// that no challenge is answered twice (`crate::dbsc::challenge`), and when the latest
/// short-lived cookie issued to it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The device's public key in its stored form ([`BoundKey::stored`]), read only
    /// at a refresh.
    pub key: String,
    /// Its thumbprint, which the short-lived cookie names: kept beside the key, so that
    /// an ordinary request neither parses nor hashes a JWK (BENCHMARKS.md).
    pub thumbprint: String,
    /// When the last challenge it answered was minted (unix milliseconds).
    pub last_ms: u64,
    /// When the latest short-lived cookie issued to it expires (unix seconds): past it,
    /// none is valid. The device list shows it; 0 when not known (a binding kept before
    /// it was, or one read from a cookie's mark).
    pub until: u64,
}

impl Binding {
    /// A binding of `key`, whose last challenge was minted at `last_ms`, and whose
    /// short-lived cookie issued with it expires at `until`.
    pub fn new(key: &BoundKey, last_ms: u64, until: u64) -> Binding {
        Binding {
            key: key.stored(),
            thumbprint: key.thumbprint(),
            last_ms,
            until,
        }
    }

    /// The bound key, as a proof's check needs it.
    pub fn key(&self) -> Option<BoundKey> {
        BoundKey::from_stored(&self.key)
    }

    /// A binding as a session cookie names it: its thumbprint alone. The key and the
    /// last challenge are kept by the user's object, which a refresh asks.
    pub fn marked(thumbprint: &str) -> Binding {
        Binding {
            key: String::new(),
            thumbprint: thumbprint.to_owned(),
            last_ms: 0,
            until: 0,
        }
    }

    /// The bound key's algorithm, as its stored form names it.
    pub fn alg(&self) -> &str {
        self.key.split(' ').next().unwrap_or("")
    }
}
