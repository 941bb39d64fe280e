//! Shared fixtures for keycard's fuzz targets and for the seed generator
//! (`examples/seeds.rs`): fixed secrets, configurations and entropy, the input framing,
//! and the checks more than one target makes.
//!
//! # Input framing
//!
//! Targets take raw bytes rather than `arbitrary` structures so that the seed corpus can
//! be written by hand and read in a hex dump. Header values never contain a NUL byte, so
//! a NUL separates fields:
//!
//! | target | layout |
//! | --- | --- |
//! | `cookie_decode` | `mode` byte, then the text (see the target) |
//! | `cookie_header` | `config` byte, `when` byte, then the `Cookie` header |
//! | `control_headers` | `flags` byte, `extra` byte, then `set \0 action \0 max-age` |
//! | `config` | records separated by `\0`: one variable-picking char, then the value |
//! | `logout_next` | the `next` text |
//! | `exchange` | `config`, `bindings`, `when`, `script` bytes, then `method \0 path \0 cookie \0 fetch-site \0 set \0 action \0 max-age` |

use std::sync::OnceLock;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::Mac;
use keycard::session::codec::{self, Body, Claims};
use keycard::config::Config;
use keycard::crypto::keys::{Entropy, KeyRing, KeySet, Secret, SessionId};
use keycard::session::{self, Loaded, Location, Read, SessionState};
use keycard::util::b64;

/// The fuzz ring's current secret.
pub const SECRET: &str = "keycard fuzz secret: 0123456789abcdef0123456789abcdef";
/// The fuzz ring's previous secret (verification only).
pub const PREVIOUS: &str = "keycard previous fuzz secret: 0123456789abcdef01234567";
/// An `ORIGIN_SECRET` for the `jwt` configuration.
pub const ORIGIN_SECRET: &str = "keycard fuzz origin secret: 0123456789abcdef01234567";
/// The fixed "now" the seeds are issued at.
pub const T0: u64 = 1_700_000_000;
/// The cookie names `cookie_decode` binds values to.
pub const NAMES: [&str; 2] = ["__Host-keycard", "kc"];
/// The nonce `cookie_decode` seals with.
pub const NONCE: [u8; 24] = [7; 24];

/// Every variable `Config::from_lookup` reads, in a fixed order (new ones at the end):
/// the `config` target picks one by index (see [`var_char`]).
pub use keycard::config::names::KNOWN as VARS;

/// The variable a `config` record's first char picks: `D` is `VARS[0]`, and so on,
/// cyclically, so that a variable added at the end leaves every earlier input's meaning
/// as it was.
pub fn var_of(c: char) -> &'static str {
    let n = VARS.len();
    VARS[(c as usize + n - (usize::from(b'D') % n)) % n]
}

/// The char that picks `name` in a `config` record (see [`var_of`]).
pub fn var_char(name: &str) -> char {
    let i = VARS
        .iter()
        .position(|v| *v == name)
        .expect("a known variable");
    char::from(b'D' + i as u8)
}

/// The variables whose values are secret.
pub const SECRET_VARS: [&str; 4] = [
    "SESSION_SECRET",
    "SESSION_SECRET_PREVIOUS",
    "ORIGIN_SECRET",
    "KEYCARD_OIDC_CLIENT_SECRET",
];

fn secret(s: &str) -> Secret {
    Secret::try_from(s).expect("fixture secrets are long enough")
}

/// The ring: [`SECRET`] current, [`PREVIOUS`] for verification.
pub fn ring() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| KeyRing::new(&secret(SECRET), &[secret(PREVIOUS)]))
}

/// The current key set, or the previous one.
pub fn keys(previous: bool) -> &'static KeySet {
    static PREV: OnceLock<KeySet> = OnceLock::new();
    if previous {
        PREV.get_or_init(|| KeySet::derive(&secret(PREVIOUS)))
    } else {
        ring().current()
    }
}

/// The configurations `cookie_header` and `control_headers` pick from. All share the
/// ring, so a cookie issued under one verifies under the others with the same name.
pub const CONFIGS: [&[(&str, &str)]; 4] = [
    // 0: the defaults: signed, `__Host-keycard`, auto store.
    &[],
    // 1: sealed, `kc`, not secure, KV store, browser-session cookie.
    &[
        ("SESSION_COOKIE_NAME", "kc"),
        ("SESSION_COOKIE_SECURE", "false"),
        ("SESSION_COOKIE_ENCRYPT", "true"),
        ("SESSION_STORE", "kv"),
        ("SESSION_COOKIE_PERSISTENT", "false"),
    ],
    // 2: signed, cookie store only, short timeouts, a domain and a path.
    &[
        ("SESSION_STORE", "cookie"),
        ("SESSION_IDLE_TIMEOUT", "2h"),
        ("SESSION_ABSOLUTE_TIMEOUT", "1d"),
        ("SESSION_COOKIE_DOMAIN", "example.com"),
        ("SESSION_COOKIE_PATH", "/app"),
        ("SESSION_COOKIE_NAME", "sess"),
        ("SESSION_COOKIE_SAME_SITE", "Strict"),
    ],
    // 3: sealed, `__Host-keycard`, auto store, `jwt` header format.
    &[
        ("SESSION_COOKIE_ENCRYPT", "true"),
        ("SESSION_HEADER_FORMAT", "jwt"),
        ("ORIGIN_SECRET", ORIGIN_SECRET),
        ("SESSION_COOKIE_SAME_SITE", "None"),
    ],
];

/// Builds a config from `pairs` over the fuzz secrets.
pub fn config_from(pairs: &[(&str, &str)]) -> Result<Config, keycard::config::ConfigError> {
    let secrets = [("SESSION_SECRET", SECRET), ("SESSION_SECRET_PREVIOUS", PREVIOUS)];
    Config::from_pairs(&[pairs, &secrets].concat())
}

/// [`CONFIGS`], validated once.
pub fn configs() -> &'static [Config] {
    static CFGS: OnceLock<Vec<Config>> = OnceLock::new();
    CFGS.get_or_init(|| {
        CONFIGS
            .iter()
            .map(|p| config_from(p).expect("fixture configs are valid"))
            .collect()
    })
}

/// Deterministic entropy: a counter.
pub struct Counter(pub u8);

impl Entropy for Counter {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.0;
            self.0 = self.0.wrapping_add(1);
        }
    }
}

/// Entropy that replays fixed bytes (to re-seal with a cookie's own nonce).
pub struct Replay(pub Vec<u8>);

impl Entropy for Replay {
    fn fill(&mut self, buf: &mut [u8]) {
        assert!(
            buf.len() <= self.0.len(),
            "asked for more entropy than recorded"
        );
        let rest = self.0.split_off(buf.len());
        buf.copy_from_slice(&self.0);
        self.0 = rest;
    }
}

/// A session id drawn from a counter starting at `seed`.
pub fn sid(seed: u8) -> SessionId {
    SessionId::generate(&mut Counter(seed))
}

/// Claims issued at `issued`, created at `created`, with the default 7 d absolute expiry.
pub fn claims(issued: u64, created: u64, sid_seed: u8, body: Body) -> Claims {
    Claims {
        issued,
        created,
        abs_exp: created + 7 * 24 * 3600,
        sid: sid(sid_seed),
        body,
        bound: None,
    }
}

/// A cookie body carrying `json`.
pub fn inline(json: &str) -> Body {
    Body::Inline(b64(json))
}

/// Forges a signed cookie value: `signed_part` and its MAC under `keys` for `name`,
/// exactly as [`codec::encode_signed`] computes it, but over any text. This lets a
/// target reach the parsing that only happens after the MAC verifies.
pub fn sign(keys: &KeySet, name: &str, signed_part: &str) -> String {
    let mut mac = keys.cookie_mac();
    mac.update(name.as_bytes());
    mac.update(&[0]);
    mac.update(signed_part.as_bytes());
    format!("{signed_part}.{}", b64(mac.finalize().into_bytes()))
}

/// Forges a sealed cookie value: `plain` (any bytes) sealed under `keys` for `name`
/// with `nonce`, exactly as [`codec::encode_sealed`] does.
pub fn seal(keys: &KeySet, name: &str, plain: &[u8], nonce: [u8; 24]) -> String {
    let cipher = XChaCha20Poly1305::new(keys.cookie_enc().bytes().into());
    let mut aad = Vec::new();
    aad.extend_from_slice(name.as_bytes());
    aad.push(0);
    aad.extend_from_slice(format!("{}.{}", codec::SEALED, keys.kid()).as_bytes());
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: &aad,
            },
        )
        .expect("sealing cannot fail");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    format!("{}.{}.{}", codec::SEALED, keys.kid(), b64(out))
}

/// The versioned KV record for a session with `data` (a JSON object's text), as
/// keycard writes it.
pub fn record(created: u64, abs_exp: u64, data: &str) -> String {
    format!("{{\"v\":1,\"created\":{created},\"abs_exp\":{abs_exp},\"data\":{data}}}")
}

/// A valid session for `cfg`: issued and created at `issued`, data `json`, kept in
/// `location`, signed under the current key or the previous one.
pub fn session(
    cfg: &Config,
    issued: u64,
    json: &str,
    location: Location,
    previous_key: bool,
) -> SessionState {
    SessionState {
        sid: sid(42),
        created: issued,
        abs_exp: issued + cfg.absolute_timeout,
        issued,
        data_b64: b64(json),
        location,
        kid: keys(previous_key).kid().to_owned(),
        current_key: !previous_key,
        bound: None,
    }
}

/// Plays the browser: takes keycard's `Set-Cookie` value, sends the cookie back at
/// `now`, and returns the session keycard reads from it (`None` for a clearing cookie).
/// `kv` is the record store as `(key, value)`. Panics if a cookie keycard just issued
/// does not read back as a valid session, or its attributes are not the configured ones.
pub fn read_back(
    cfg: &Config,
    set_cookie: &str,
    kv: Option<(&str, &str)>,
    now: u64,
) -> Option<SessionState> {
    assert!(
        set_cookie.len() <= session::MAX_COOKIE_LEN,
        "Set-Cookie over 4096 bytes"
    );
    assert!(
        !set_cookie.contains(['\r', '\n', '\0']),
        "Set-Cookie with a line break: {set_cookie:?}"
    );
    let c = cookie::Cookie::parse(set_cookie).expect("keycard's Set-Cookie parses");
    assert_eq!(c.name(), cfg.cookie.name);
    assert_eq!(c.path(), Some(cfg.cookie.path.as_str()));
    // A browser drops one leading dot of `Domain` and needs non-empty labels after it.
    let domain = cfg
        .cookie
        .domain
        .as_deref()
        .map(|d| d.strip_prefix('.').unwrap_or(d));
    if let Some(d) = domain {
        assert!(
            d.split('.').all(|l| !l.is_empty()),
            "Domain {d:?} has an empty label"
        );
    }
    assert_eq!(
        c.domain(),
        domain,
        "the Domain attribute is not the configured one"
    );
    assert_eq!(c.secure(), cfg.cookie.secure.then_some(true));
    assert_eq!(c.http_only(), cfg.cookie.http_only.then_some(true));
    if c.max_age() == Some(cookie::time::Duration::ZERO) {
        assert_eq!(c.value(), "", "a clearing cookie carries no value");
        return None;
    }
    assert_eq!(c.max_age().is_some(), cfg.cookie.persistent);
    let header = format!("other=1; {}={}; z=2", c.name(), c.value());
    match session::read(cfg, Some(&header), now) {
        Read::Ready(s) => {
            assert_eq!(s.location, Location::Cookie);
            Some(s)
        }
        Read::NeedsRecord(p) => {
            let (key, value) = kv.expect("a KV cookie was issued with no record");
            assert_eq!(p.key, key, "the cookie names another record");
            match p.complete(Some(value)) {
                Loaded::Valid(s) => Some(s),
                other => panic!("the record written with the cookie does not load: {other:?}"),
            }
        }
        other => panic!("a cookie keycard just issued does not read back: {other:?}"),
    }
}
