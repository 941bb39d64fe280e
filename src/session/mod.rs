//! Sessions: reading them from the cookie, the expiry and refresh policy, and turning
//! the origin's [`Changes`] into decisions for the edge to carry out.
//!
//! The flow of one request is three pure steps, which [`crate::exchange`] strings
//! together, with the edge doing the I/O between them:
//!
//! 1. [`read()`] the `Cookie` header into a [`Read`]: no session, a bad one, a complete
//!    session (data in the cookie) or one whose record must be loaded from KV
//!    ([`Pending`], finished by [`Pending::complete`]).
//! 2. [`crate::origin::headers::forward_headers`] says what the origin is told.
//! 3. [`finish`] turns the origin's changes into an [`Outcome`]: the `Set-Cookie` to
//!    send and the KV writes and deletes to make.
//!
//! # Policy
//!
//! - A cookie is *expired* when `now >= issued + idle` or `now >= abs_exp`: the
//!   boundary second itself is expired.
//! - A cookie is *due for refresh* when `now - issued >= refresh_after` (the boundary
//!   second refreshes), or when it was signed under a previous key.
//! - A cookie issued more than [`MAX_SKEW`] seconds in the future is invalid.

use codec::{Claims, DecodeError};
use serde_json::{Map, Value};

use crate::config::Config;
use crate::crypto::keys::SessionId;
pub use crate::dbsc::Binding;
use crate::util::{b64, unb64};

mod changes;
pub mod codec;
mod read;
pub mod record;
mod write;

pub use changes::{merge, Changes};
pub use read::{read, short_cookies};
pub use write::{
    clearing_cookie, finish, regenerate, reissue, revoke, set_cookie, Ending, FinishError, KvPut,
    Outcome, RecordEnd, Revocation,
};

/// How long after a `regenerate` the old id's cookie is left alone ([`Loaded::Regenerated`]);
/// defined with the users' objects, which keep the replaced key that long too.
pub use crate::users::REGENERATED_WINDOW;

/// The largest `Set-Cookie` value (name, value and attributes) keycard sends.
pub const MAX_COOKIE_LEN: usize = 4096;
/// How far in the future an issue time may be before the cookie is refused.
pub const MAX_SKEW: u64 = 300;

/// The session status forwarded in `X-Session-Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// No session cookie.
    None,
    /// A valid session.
    Valid,
    /// A well-signed cookie past its idle or absolute expiry.
    Expired,
    /// A bad MAC, malformed cookie, unknown key, or a KV record that is gone.
    Invalid,
}

impl Status {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::None => "none",
            Status::Valid => "valid",
            Status::Expired => "expired",
            Status::Invalid => "invalid",
        }
    }
}

/// Where a session's data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Cookie,
    Kv,
}

impl Location {
    /// `cookie` or `kv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Location::Cookie => "cookie",
            Location::Kv => "kv",
        }
    }
}

/// A valid session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    /// The session id (secret).
    pub sid: SessionId,
    /// Creation time.
    pub created: u64,
    /// Absolute expiry.
    pub abs_exp: u64,
    /// When its cookie was last issued.
    pub issued: u64,
    /// base64url of the data's JSON object: exactly what `X-Session` carries.
    pub data_b64: String,
    /// Where the data lives now.
    pub location: Location,
    /// The kid its cookie was signed with.
    pub kid: String,
    /// Whether that kid is the current key.
    pub current_key: bool,
    /// The device bound to it (`KEYCARD_DEVICE_BOUND`): its KV record's binding, or the
    /// one its cookie names ([`Binding::marked`]) or its user's object keeps.
    pub bound: Option<Binding>,
}

impl SessionState {
    /// The data as a JSON object. Data that does not decode (which a verified cookie
    /// cannot produce) reads as empty.
    pub fn data(&self) -> Map<String, Value> {
        unb64(&self.data_b64)
            .and_then(|j| serde_json::from_slice::<Map<String, Value>>(&j).ok())
            .unwrap_or_default()
    }

    /// The data's JSON text.
    pub fn data_json(&self) -> String {
        unb64(&self.data_b64)
            .and_then(|j| String::from_utf8(j).ok())
            .unwrap_or_else(|| "{}".into())
    }

    /// When the session ends if unused, as of its last issue.
    pub fn expires(&self, cfg: &Config) -> u64 {
        (self.issued + cfg.idle_timeout).min(self.abs_exp)
    }

    /// Whether its cookie is due for re-issue at `now`: old enough, or signed under a
    /// previous key.
    pub fn refresh_due(&self, cfg: &Config, now: u64) -> bool {
        self.time_refresh_due(cfg, now) || !self.current_key
    }

    fn time_refresh_due(&self, cfg: &Config, now: u64) -> bool {
        now.saturating_sub(self.issued) >= cfg.refresh_after
    }

    /// The KV key of its record.
    pub fn kv_key(&self, cfg: &Config) -> String {
        record::record_key(&cfg.kv_prefix, &self.sid)
    }

    /// The KV key of its tombstone.
    pub fn tombstone_key(&self, cfg: &Config) -> String {
        record::tombstone_key(&cfg.kv_prefix, &self.sid)
    }
}

/// A cookie that verified and names a KV record still to be loaded.
#[derive(Debug, Clone)]
pub struct Pending {
    claims: Claims,
    kid: String,
    current_key: bool,
    /// The KV key to load.
    pub key: String,
}

impl Pending {
    /// Finishes loading with the record text found in KV (`None` when missing). A
    /// missing, unreadable or wrong-version record is an invalid session, and one a new
    /// id replaced a moment ago is [`Loaded::Regenerated`]. The device bound to it is
    /// the record's, or else the one its cookie names.
    pub fn complete(self, record: Option<&str>) -> Loaded {
        let Some(rec) = record.and_then(record::decode) else {
            return match record.is_some_and(record::regenerated) {
                true => Loaded::Regenerated,
                false => Loaded::Bad(Status::Invalid),
            };
        };
        let bound = rec
            .bound
            .or_else(|| self.claims.bound.as_deref().map(Binding::marked));
        Loaded::Valid(SessionState {
            sid: self.claims.sid,
            created: self.claims.created,
            abs_exp: self.claims.abs_exp,
            issued: self.claims.issued,
            data_b64: b64(rec.data),
            location: Location::Kv,
            kid: self.kid,
            current_key: self.current_key,
            bound,
        })
    }
}

/// What the cookie said.
#[derive(Debug, Clone)]
pub enum Read {
    /// No session cookie at all.
    None,
    /// One or more session cookies, none usable: `Invalid` or `Expired`.
    Bad(Status, DecodeError),
    /// A valid session with its data in the cookie.
    Ready(SessionState),
    /// A valid cookie whose data is in KV.
    NeedsRecord(Pending),
}

/// What is known about the request's session once reading is over.
#[derive(Debug, Clone)]
pub enum Loaded {
    /// No session cookie.
    None,
    /// Session cookies, none usable: `Invalid` or `Expired`. The browser's cookie is
    /// cleared.
    Bad(Status),
    /// A valid session.
    Valid(SessionState),
    /// The store could not be read (`SESSION_KV_FAILURE=open`): forwarded as
    /// `invalid`, but the browser's cookie is left alone rather than cleared, and
    /// nothing is created or issued.
    StoreUnavailable,
    /// A session bound to a device, without its valid short-lived cookie: a copy of the
    /// cookie in another hand, or the real browser between two refreshes. Forwarded as
    /// no session, and, as with `StoreUnavailable`, the cookie is left alone (the real
    /// browser may be refreshing at this moment): of the origin's answer only a new
    /// session (`regenerate`) or a sign-out (`destroy`) applies, as for any visitor.
    /// Only the refresh endpoint reads the session it holds, to check the device's
    /// proof.
    Unproven(Box<SessionState>),
    /// The cookie of a session that a new id replaced (`regenerate`, a sign-in) less
    /// than a minute ago: a request the page sent before the new cookie arrived.
    /// Forwarded as `invalid`, as any cookie whose record is gone, but the cookie is left
    /// alone and of the origin's answer only a sign-out (`destroy`) applies: by the time
    /// this answer arrives the browser holds the new cookie, and clearing or replacing
    /// it unasked would sign the user out.
    Regenerated,
}

impl Loaded {
    /// The status forwarded in `X-Session-Status`.
    pub fn status(&self) -> Status {
        match self {
            Loaded::None => Status::None,
            Loaded::Bad(s) => *s,
            Loaded::Valid(_) => Status::Valid,
            Loaded::StoreUnavailable | Loaded::Regenerated => Status::Invalid,
            Loaded::Unproven(_) => Status::None,
        }
    }

    /// The session, when valid.
    pub fn session(&self) -> Option<&SessionState> {
        match self {
            Loaded::Valid(s) => Some(s),
            _ => None,
        }
    }

    /// A valid session bound to a device is signed in only with a valid short-lived
    /// cookie for it among `proofs` (the request's, [`short_cookies`]); without one it
    /// is [`Loaded::Unproven`]. With binding off, a bound session is an ordinary one.
    pub fn proven(self, cfg: &Config, proofs: &[String], now: u64) -> Loaded {
        let s = match self {
            Loaded::Valid(s) if cfg.device_bound.is_some() => s,
            other => return other,
        };
        let proven = s.bound.as_ref().is_none_or(|b| {
            proofs
                .iter()
                .any(|v| crate::dbsc::short_cookie::valid(&cfg.keys, v, &s.sid, &b.thumbprint, now))
        });
        match proven {
            true => Loaded::Valid(s),
            false => Loaded::Unproven(Box::new(s)),
        }
    }

    /// Whether [`finish`] with no changes issues, stores and clears nothing: no
    /// session, one the store could not read, or a valid one not yet due for a
    /// refresh. A bad cookie is always cleared.
    pub fn at_rest(&self, cfg: &Config, now: u64) -> bool {
        match self {
            Loaded::None | Loaded::StoreUnavailable | Loaded::Unproven(_) | Loaded::Regenerated => {
                true
            }
            Loaded::Bad(_) => false,
            Loaded::Valid(s) => !s.refresh_due(cfg, now),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::write::build_cookie;
    use super::*;
    use crate::config::{CookieConfig, SameSite};
    use crate::origin::control;
    use crate::origin::headers::{forward_headers, SessionHeaders};
    use crate::testing::{config, CountingEntropy, SECRET, T0};
    use crate::util::{b64, unb64};

    /// What the `cookie` crate writes for the same cookie: the reference
    /// `build_cookie` is checked against.
    fn crate_set_cookie(c: &CookieConfig, value: &str, max_age: Option<u64>) -> String {
        let mut b = cookie::Cookie::build((c.name.as_str(), value))
            .path(c.path.as_str())
            .secure(c.secure)
            .http_only(c.http_only)
            .same_site(match c.same_site {
                SameSite::Strict => cookie::SameSite::Strict,
                SameSite::Lax => cookie::SameSite::Lax,
                SameSite::None => cookie::SameSite::None,
            });
        if let Some(d) = &c.domain {
            b = b.domain(d.as_str());
        }
        if let Some(m) = max_age {
            b = b.max_age(cookie::time::Duration::seconds(
                m.min(i64::MAX as u64) as i64
            ));
        }
        b.build().to_string()
    }

    #[test]
    fn set_cookie_is_what_the_cookie_crate_writes_for_every_attribute() {
        let mut cfg = config(&[]);
        let mut checked = 0;
        for (name, path) in [("keycard", "/"), ("__Host-keycard", "/"), ("sid", "/app/x")] {
            for domain in [None, Some("example.com"), Some(".example.com")] {
                for same_site in [SameSite::Strict, SameSite::Lax, SameSite::None] {
                    for (secure, http_only) in
                        [(true, true), (true, false), (false, true), (false, false)]
                    {
                        for max_age in [None, Some(0), Some(3600), Some(u64::MAX)] {
                            for value in ["", "v1.k1.eyJhIjoxfQ.sig-_"] {
                                let c = &mut cfg.cookie;
                                c.name = name.into();
                                c.path = path.into();
                                c.domain = domain.map(Into::into);
                                c.same_site = same_site;
                                c.secure = secure;
                                c.http_only = http_only;
                                let ours = build_cookie(&cfg, value, max_age);
                                assert_eq!(ours, crate_set_cookie(&cfg.cookie, value, max_age));
                                checked += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(checked, 3 * 3 * 3 * 4 * 4 * 2);
    }

    fn set(json: &str) -> Changes {
        control::parse(Some(json), None, None).0
    }

    /// Runs one request against an in-memory KV map; returns the loaded status, what
    /// the origin was told, and the outcome; updates `jar` like a browser would.
    pub fn request(
        cfg: &Config,
        jar: &mut Option<String>,
        kv: &mut HashMap<String, String>,
        changes: Changes,
        now: u64,
    ) -> (Loaded, SessionHeaders, Outcome) {
        let header = jar
            .as_ref()
            .map(|v| format!("other=1; {}={v}", cfg.cookie.name));
        let loaded = match read(cfg, header.as_deref(), now) {
            Read::None => Loaded::None,
            Read::Bad(s, _) => Loaded::Bad(s),
            Read::Ready(s) => Loaded::Valid(s),
            Read::NeedsRecord(p) => {
                let rec = kv.get(&p.key).cloned();
                p.complete(rec.as_deref())
            }
        };
        let fwd = forward_headers(cfg, &loaded, now, "GET", "https://example.com/x?y=1");
        let out = finish(
            cfg,
            loaded.clone(),
            changes,
            now,
            &mut CountingEntropy(now as u8),
            true,
        )
        .unwrap();
        for k in &out.kv_delete {
            kv.remove(k);
        }
        if let Some(p) = &out.kv_put {
            kv.insert(p.key.clone(), p.value.clone());
        }
        if let Some(sc) = &out.set_cookie {
            let c = cookie::Cookie::parse(sc.clone()).unwrap();
            *jar = if c.max_age() == Some(cookie::time::Duration::ZERO) {
                None
            } else {
                Some(c.value().to_owned())
            };
        }
        (loaded, fwd, out)
    }

    fn data_of(fwd: &SessionHeaders) -> Value {
        serde_json::from_slice(&unb64(fwd.session.as_ref().unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn no_cookie_and_no_data_creates_nothing() {
        let cfg = config(&[]);
        let (mut jar, mut kv) = (None, HashMap::new());
        let (l, f, o) = request(&cfg, &mut jar, &mut kv, Changes::default(), T0);
        assert_eq!(l.status(), Status::None);
        assert_eq!(f.status, "none");
        assert!(f.session.is_none() && f.handle.is_none());
        assert_eq!(o.set_cookie, None);
        // Setting nothing, or only nulls, still creates nothing.
        let (_, _, o) = request(&cfg, &mut jar, &mut kv, set(r#"{"a":null}"#), T0);
        assert_eq!(o.set_cookie, None);
        assert!(kv.is_empty());
    }

    #[test]
    fn set_creates_then_forwards() {
        let cfg = config(&[]);
        let (mut jar, mut kv) = (None, HashMap::new());
        let (_, _, o) = request(&cfg, &mut jar, &mut kv, set(r#"{"user":"ada"}"#), T0);
        let sc = o.set_cookie.unwrap();
        assert!(sc.starts_with("__Host-keycard=v1."), "{sc}");
        for attr in [
            "HttpOnly",
            "SameSite=Lax",
            "Secure",
            "Path=/",
            "Max-Age=1000",
        ] {
            assert!(sc.contains(attr), "{sc} lacks {attr}");
        }
        let (l, f, o) = request(&cfg, &mut jar, &mut kv, Changes::default(), T0 + 1);
        assert_eq!(l.status(), Status::Valid);
        assert_eq!(data_of(&f), json!({"user":"ada"}));
        assert_eq!(f.expires, Some(T0 + 1000));
        assert_eq!(o.set_cookie, None, "nothing changed, nothing sent");
        assert!(kv.is_empty(), "cookie-sized data stays in the cookie");
    }

    /// Idle expiry boundaries: one second before, at, and after.
    #[test]
    fn idle_expiry_boundaries() {
        let cfg = config(&[("SESSION_REFRESH_AFTER", "999")]);
        for (offset, want) in [
            (999, Status::Valid),
            (1000, Status::Expired),
            (1001, Status::Expired),
        ] {
            let (mut jar, mut kv) = (None, HashMap::new());
            request(&cfg, &mut jar, &mut kv, set(r#"{"a":1}"#), T0);
            let (l, f, o) = request(&cfg, &mut jar, &mut kv, Changes::default(), T0 + offset);
            assert_eq!(l.status(), want, "offset {offset}");
            if want == Status::Expired {
                assert_eq!(f.status, "expired");
                assert!(f.session.is_none());
                assert!(o.set_cookie.unwrap().contains("Max-Age=0"));
            }
        }
    }

    /// Absolute expiry boundaries, with a session kept alive by refreshes.
    #[test]
    fn absolute_expiry_boundaries() {
        let cfg = config(&[]);
        for (offset, want) in [
            (4999, Status::Valid),
            (5000, Status::Expired),
            (5001, Status::Expired),
        ] {
            let (mut jar, mut kv) = (None, HashMap::new());
            request(&cfg, &mut jar, &mut kv, set(r#"{"a":1}"#), T0);
            let mut t = T0;
            while t + 500 < T0 + offset.min(4999) {
                t += 500;
                let (l, _, _) = request(&cfg, &mut jar, &mut kv, Changes::default(), t);
                assert_eq!(l.status(), Status::Valid);
            }
            let (l, _, _) = request(&cfg, &mut jar, &mut kv, Changes::default(), T0 + offset);
            assert_eq!(l.status(), want, "offset {offset}");
        }
    }

    /// Refresh boundaries: not before `refresh_after`, at and after it yes.
    /// Regression: after `SESSION_ABSOLUTE_TIMEOUT` was lowered, the cap counted from a
    /// cookie's last issue, so an active session outlived the new limit.
    #[test]
    fn a_lowered_absolute_timeout_counts_from_creation() {
        let long = config(&[]);
        let short = config(&[("SESSION_ABSOLUTE_TIMEOUT", "2000")]);
        let (mut jar, mut kv) = (None, HashMap::new());
        request(&long, &mut jar, &mut kv, set(r#"{"a":1}"#), T0);
        for t in [500, 1000, 1500, 1900] {
            let (l, _, _) = request(&long, &mut jar, &mut kv, Changes::default(), T0 + t);
            assert_eq!(l.status(), Status::Valid, "kept alive at {t}");
        }
        let (l, _, _) = request(&short, &mut jar, &mut kv, Changes::default(), T0 + 1999);
        assert_eq!(l.status(), Status::Valid);
        let (l, _, _) = request(&short, &mut jar, &mut kv, Changes::default(), T0 + 2000);
        assert_eq!(l.status(), Status::Expired, "created + the current timeout");
    }

    /// ...unless the origin set the lifetime itself: `X-Session-Max-Age` starts the
    /// absolute lifetime anew, still capped by the current timeout from then.
    #[test]
    fn max_age_restarts_the_absolute_lifetime() {
        let cfg = config(&[("SESSION_ABSOLUTE_TIMEOUT", "2000")]);
        let (mut jar, mut kv) = (None, HashMap::new());
        request(&cfg, &mut jar, &mut kv, set(r#"{"a":1}"#), T0);
        for t in [500, 1000, 1500] {
            request(&cfg, &mut jar, &mut kv, Changes::default(), T0 + t);
        }
        let (c, _) = control::parse(None, None, Some("1500"));
        request(&cfg, &mut jar, &mut kv, c, T0 + 1800);
        for t in [2000, 2500, 3000, 3299] {
            let (l, _, _) = request(&cfg, &mut jar, &mut kv, Changes::default(), T0 + t);
            assert_eq!(
                l.status(),
                Status::Valid,
                "extended past creation + 2000, at {t}"
            );
        }
        let (l, _, _) = request(&cfg, &mut jar, &mut kv, Changes::default(), T0 + 3300);
        assert_eq!(l.status(), Status::Expired);
    }

    #[test]
    fn refresh_boundaries() {
        let cfg = config(&[]);
        for (offset, want) in [(99, false), (100, true), (101, true)] {
            let (mut jar, mut kv) = (None, HashMap::new());
            request(&cfg, &mut jar, &mut kv, set(r#"{"a":1}"#), T0);
            let before = jar.clone();
            let (_, f, o) = request(&cfg, &mut jar, &mut kv, Changes::default(), T0 + offset);
            assert_eq!(o.set_cookie.is_some(), want, "offset {offset}");
            if want {
                assert_ne!(jar, before);
                assert_eq!(f.expires, Some(T0 + offset + 1000));
                // The refreshed cookie carries the new issue time.
                let (l, _, _) = request(
                    &cfg,
                    &mut jar,
                    &mut kv,
                    Changes::default(),
                    T0 + offset + 999,
                );
                assert_eq!(l.status(), Status::Valid);
            } else {
                assert_eq!(f.expires, Some(T0 + 1000));
            }
        }
    }

    #[test]
    fn far_future_issue_time_is_invalid() {
        let cfg = config(&[]);
        let (mut jar, mut kv) = (None, HashMap::new());
        request(
            &cfg,
            &mut jar,
            &mut kv,
            set(r#"{"a":1}"#),
            T0 + MAX_SKEW + 1,
        );
        let (l, _, _) = request(&cfg, &mut jar, &mut kv, Changes::default(), T0);
        assert_eq!(l.status(), Status::Invalid);
        let (mut jar, mut kv) = (None, HashMap::new());
        request(&cfg, &mut jar, &mut kv, set(r#"{"a":1}"#), T0 + MAX_SKEW);
        let (l, _, _) = request(&cfg, &mut jar, &mut kv, Changes::default(), T0);
        assert_eq!(l.status(), Status::Valid);
    }

    #[test]
    fn merge_clear_and_destroy() {
        let cfg = config(&[]);
        let (mut jar, mut kv) = (None, HashMap::new());
        request(&cfg, &mut jar, &mut kv, set(r#"{"a":1,"b":2}"#), T0);
        request(&cfg, &mut jar, &mut kv, set(r#"{"b":null,"c":3}"#), T0 + 1);
        let (_, f, _) = request(&cfg, &mut jar, &mut kv, Changes::default(), T0 + 2);
        assert_eq!(data_of(&f), json!({"a":1,"c":3}));
        // clear then set replaces the data.
        let (c, _) = control::parse(Some(r#"{"z":0}"#), Some("clear"), None);
        request(&cfg, &mut jar, &mut kv, c, T0 + 3);
        let (_, f, _) = request(&cfg, &mut jar, &mut kv, Changes::default(), T0 + 4);
        assert_eq!(data_of(&f), json!({"z":0}));
        // destroy wins over a Set in the same response.
        let (c, _) = control::parse(Some(r#"{"y":1}"#), Some("destroy"), None);
        let (_, _, o) = request(&cfg, &mut jar, &mut kv, c, T0 + 5);
        assert!(o.set_cookie.unwrap().contains("Max-Age=0"));
        assert_eq!(jar, None);
    }

    #[test]
    fn same_data_is_not_a_change() {
        let cfg = config(&[]);
        let (mut jar, mut kv) = (None, HashMap::new());
        request(&cfg, &mut jar, &mut kv, set(r#"{"a":1}"#), T0);
        let (_, _, o) = request(&cfg, &mut jar, &mut kv, set(r#"{"a":1}"#), T0 + 1);
        assert_eq!(o.set_cookie, None);
    }

    #[test]
    fn regenerate_changes_id_keeps_data() {
        let cfg = config(&[]);
        let (mut jar, mut kv) = (None, HashMap::new());
        request(&cfg, &mut jar, &mut kv, set(r#"{"a":1}"#), T0);
        let (_, f1, _) = request(&cfg, &mut jar, &mut kv, Changes::default(), T0 + 1);
        let old = jar.clone();
        let (c, _) = control::parse(None, Some("regenerate"), None);
        let (_, _, o) = request(&cfg, &mut jar, &mut kv, c, T0 + 2);
        assert!(o.set_cookie.is_some());
        let (_, f2, _) = request(&cfg, &mut jar, &mut kv, Changes::default(), T0 + 3);
        assert_ne!(f1.handle, f2.handle);
        assert_eq!(data_of(&f2), json!({"a":1}));
        assert_ne!(old, jar);
    }

    #[test]
    fn max_age_is_capped_and_zero_destroys() {
        let cfg = config(&[]);
        let (mut jar, mut kv) = (None, HashMap::new());
        request(&cfg, &mut jar, &mut kv, set(r#"{"a":1}"#), T0);
        let (c, _) = control::parse(None, None, Some("99999"));
        let (_, _, o) = request(&cfg, &mut jar, &mut kv, c, T0 + 1);
        assert_eq!(o.session.unwrap().abs_exp, T0 + 1 + 5000);
        let (c, _) = control::parse(None, None, Some("30"));
        let (_, _, o) = request(&cfg, &mut jar, &mut kv, c, T0 + 2);
        assert!(o.set_cookie.unwrap().contains("Max-Age=30"));
        let (l, _, _) = request(&cfg, &mut jar, &mut kv, Changes::default(), T0 + 32);
        assert_eq!(l.status(), Status::Expired);
        let (mut jar, mut kv) = (None, HashMap::new());
        request(&cfg, &mut jar, &mut kv, set(r#"{"a":1}"#), T0);
        let (c, _) = control::parse(None, None, Some("0"));
        let (_, _, o) = request(&cfg, &mut jar, &mut kv, c, T0 + 1);
        assert_eq!(o.set_cookie, Some(clearing_cookie(&cfg)));
    }

    #[test]
    fn tampered_cookie_is_invalid_and_cleared() {
        let cfg = config(&[]);
        let (mut jar, mut kv) = (None, HashMap::new());
        request(&cfg, &mut jar, &mut kv, set(r#"{"a":1}"#), T0);
        let v = jar.take().unwrap();
        jar = Some(v.replace("v1.", "v1.x"));
        let (l, f, o) = request(&cfg, &mut jar, &mut kv, Changes::default(), T0 + 1);
        assert_eq!(l.status(), Status::Invalid);
        assert_eq!(f.status, "invalid");
        assert!(o.set_cookie.unwrap().contains("Max-Age=0"));
    }

    #[test]
    fn first_valid_duplicate_wins_in_either_order() {
        let cfg = config(&[]);
        let (mut jar, mut kv) = (None, HashMap::new());
        request(&cfg, &mut jar, &mut kv, set(r#"{"a":1}"#), T0);
        let good = jar.unwrap();
        let n = &cfg.cookie.name;
        for header in [
            format!("{n}=garbage; {n}={good}"),
            format!("{n}={good}; {n}=garbage"),
        ] {
            match read(&cfg, Some(&header), T0 + 1) {
                Read::Ready(_) => {}
                other => panic!("{header}: {other:?}"),
            }
        }
        match read(&cfg, Some(&format!("{n}=garbage; {n}=junk")), T0 + 1) {
            Read::Bad(Status::Invalid, _) => {}
            other => panic!("{other:?}"),
        }
    }

    /// Regression: only four same-name candidates were examined, so four junk cookies
    /// before the real one made keycard clear it, on every request.
    #[test]
    fn junk_cookies_of_the_session_name_never_hide_the_real_one() {
        let cfg = config(&[]);
        let (mut jar, mut kv) = (None, HashMap::new());
        request(&cfg, &mut jar, &mut kv, set(r#"{"a":1}"#), T0);
        let n = &cfg.cookie.name;
        let junk: String = (0..8).map(|i| format!("{n}=junk{i}; ")).collect();
        let header = format!("{junk}{n}={}", jar.unwrap());
        assert!(matches!(read(&cfg, Some(&header), T0 + 1), Read::Ready(_)));
    }

    /// Regression: with `SESSION_KV_FAILURE=open`, a KV outage cleared the browser's
    /// cookie and so logged everyone out for good.
    #[test]
    fn store_outage_does_not_clear_the_cookie() {
        let cfg = config(&[("SESSION_STORE", "kv")]);
        let out = finish(
            &cfg,
            Loaded::StoreUnavailable,
            Changes::default(),
            T0,
            &mut CountingEntropy(0),
            true,
        )
        .unwrap();
        assert_eq!(out.set_cookie, None);
    }

    #[test]
    fn cookie_mode_overflow_is_refused() {
        let cfg = config(&[("SESSION_STORE", "cookie")]);
        let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(5000));
        let loaded = Loaded::None;
        let e = finish(&cfg, loaded, set(&big), T0, &mut CountingEntropy(0), true).unwrap_err();
        assert!(matches!(e, FinishError::TooLarge { size } if size > 4096));
    }

    #[test]
    fn auto_spills_to_kv_and_comes_back() {
        let cfg = config(&[]);
        let (mut jar, mut kv) = (None, HashMap::new());
        let big = format!(r#"{{"blob":"{}"}}"#, "x".repeat(6000));
        let (_, _, o) = request(&cfg, &mut jar, &mut kv, set(&big), T0);
        assert!(o.set_cookie.as_ref().unwrap().len() <= MAX_COOKIE_LEN);
        let put = o.kv_put.unwrap();
        assert_eq!(put.ttl, 1000);
        assert_eq!(kv.len(), 1);
        let (l, f, o) = request(&cfg, &mut jar, &mut kv, Changes::default(), T0 + 1);
        assert_eq!(l.session().unwrap().location, Location::Kv);
        assert_eq!(data_of(&f)["blob"].as_str().unwrap().len(), 6000);
        assert_eq!(o.kv_put, None, "no write without a change");
        let (_, _, o) = request(
            &cfg,
            &mut jar,
            &mut kv,
            set(r#"{"blob":null,"small":1}"#),
            T0 + 2,
        );
        assert_eq!(o.kv_delete.len(), 1);
        assert!(kv.is_empty());
        let (l, f, _) = request(&cfg, &mut jar, &mut kv, Changes::default(), T0 + 3);
        assert_eq!(l.session().unwrap().location, Location::Cookie);
        assert_eq!(data_of(&f), json!({"small":1}));
    }

    #[test]
    fn kv_mode_keeps_data_out_of_the_cookie() {
        let cfg = config(&[("SESSION_STORE", "kv")]);
        let (mut jar, mut kv) = (None, HashMap::new());
        request(&cfg, &mut jar, &mut kv, set(r#"{"user":"ada"}"#), T0);
        assert!(jar.as_ref().unwrap().contains(".-."));
        assert!(!jar.as_ref().unwrap().contains(&b64(r#"{"user":"ada"}"#)));
        let (_, f, _) = request(&cfg, &mut jar, &mut kv, Changes::default(), T0 + 1);
        assert_eq!(data_of(&f), json!({"user":"ada"}));
        // A missing record makes the cookie invalid.
        let saved = jar.clone();
        kv.clear();
        let (l, _, o) = request(&cfg, &mut jar, &mut kv, Changes::default(), T0 + 2);
        assert_eq!(l.status(), Status::Invalid);
        assert!(o.set_cookie.unwrap().contains("Max-Age=0"));
        drop(saved);
    }

    #[test]
    fn rotation_reissues_under_the_current_key() {
        let old = config(&[]);
        let (mut jar, mut kv) = (None, HashMap::new());
        request(&old, &mut jar, &mut kv, set(r#"{"a":1}"#), T0);
        let new = config(&[
            ("SESSION_SECRET", &"n".repeat(40)),
            ("SESSION_SECRET_PREVIOUS", SECRET),
        ]);
        let (l, _, o) = request(&new, &mut jar, &mut kv, Changes::default(), T0 + 1);
        assert_eq!(l.status(), Status::Valid);
        assert!(o.set_cookie.is_some(), "re-signed under the current key");
        let kid = new.keys.current().kid();
        assert!(jar.as_ref().unwrap().starts_with(&format!("v1.{kid}.")));
        let only_new = config(&[("SESSION_SECRET", &"n".repeat(40))]);
        let (l, _, _) = request(&only_new, &mut jar, &mut kv, Changes::default(), T0 + 2);
        assert_eq!(
            l.status(),
            Status::Valid,
            "re-issued cookie no longer needs the old key"
        );
    }
}
