//! The KV record format: where a session's record and its tombstone live, and what
//! they hold. Both are versioned JSON.
//!
//! | what | key | value | `expirationTtl` |
//! | --- | --- | --- | --- |
//! | record | prefix + base64url(SHA-256(session id)) | `{"v":1,"created":..,"abs_exp":..,"data":{..}}`, with `"bound":{"key":"<alg> <jwk>","last":<ms>}` once a device is bound to it | `max(60, min(idle, abs_exp − now))` |
//! | tombstone | prefix + `revoked.` + base64url(SHA-256(session id)) | `{"v":1,"revoked":<unix time>}`, with `"regenerated":true` when a new id replaced it | `max(60, abs_exp − now)` |
//! | a regenerated session's record | as its record | its tombstone's value | 60 ([`super::REGENERATED_WINDOW`]) |
//!
//! A regenerated session's record is not deleted but overwritten with its tombstone for
//! a minute: the page's requests still in flight carry the old cookie, and the marker
//! tells keycard to leave that cookie alone, since by the time their answers arrive the
//! browser holds the new one (see [`regenerated`]).
//!
//! Keys hash the session id, so a KV dump holds no usable id. A record key never has a
//! dot after the prefix, so no session write can touch a tombstone. Every read passes
//! `cacheTtl` [`KV_CACHE_TTL`].

use std::fmt::Write as _;

use super::Binding;
use crate::crypto::keys::SessionId;

/// KV's minimum `expirationTtl`.
pub const KV_MIN_TTL: u64 = 60;

/// The `cacheTtl` of every KV read, in seconds: KV's minimum. A location that cached a
/// record serves it for at most this long after it changed or was deleted elsewhere.
pub const KV_CACHE_TTL: u64 = 30;

/// The key of the session `sid`'s record: `prefix` + [`SessionId::digest`], so a KV
/// dump holds no usable ids.
pub fn record_key(prefix: &str, sid: &SessionId) -> String {
    format!("{prefix}{}", sid.digest())
}

/// The key of the session `sid`'s tombstone.
pub fn tombstone_key(prefix: &str, sid: &SessionId) -> String {
    format!("{prefix}revoked.{}", sid.digest())
}

/// A record holding `data_json` (the session data's JSON object), and the device bound
/// to the session, if any.
pub fn encode(created: u64, abs_exp: u64, data_json: &str, bound: Option<&Binding>) -> String {
    let mut r = String::with_capacity(64 + data_json.len());
    let _ = write!(
        r,
        "{{\"v\":1,\"created\":{created},\"abs_exp\":{abs_exp},\"data\":{data_json}"
    );
    if let Some(b) = bound {
        let key = serde_json::Value::from(b.key.as_str());
        let _ = write!(
            r,
            ",\"bound\":{{\"key\":{key},\"thumb\":\"{}\",\"last\":{}",
            b.thumbprint, b.last_ms
        );
        if b.until > 0 {
            let _ = write!(r, ",\"until\":{}", b.until);
        }
        r.push('}');
    }
    r.push('}');
    r
}

#[derive(serde::Deserialize)]
struct Record<'a> {
    v: u32,
    #[serde(borrow)]
    data: &'a serde_json::value::RawValue,
    bound: Option<StoredBinding>,
}

#[derive(serde::Deserialize)]
struct StoredBinding {
    key: String,
    thumb: String,
    last: u64,
    #[serde(default)]
    until: u64,
}

/// What a record holds: the data's JSON object, and the bound device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<'a> {
    pub data: &'a str,
    pub bound: Option<Binding>,
}

/// A record's text read. `None` for anything unreadable, of another version, whose data
/// is not an object, or whose bound device does not read (a session that was bound
/// must not come back unbound). The bound key itself is read only at a refresh. The
/// times in a record are not read: the signed cookie's own are the authority.
pub fn decode(text: &str) -> Option<Decoded<'_>> {
    let rec: Record = serde_json::from_str(text).ok()?;
    if rec.v != 1 || !rec.data.get().starts_with('{') {
        return None;
    }
    let bound = match rec.bound {
        Some(b) => Some(Binding {
            key: b.key,
            thumbprint: b.thumb,
            last_ms: b.last,
            until: b.until,
        }),
        None => None,
    };
    Some(Decoded {
        data: rec.data.get(),
        bound,
    })
}

/// A tombstone written at `now`; `regenerated` when a new id replaced the session.
pub fn tombstone(now: u64, regenerated: bool) -> String {
    match regenerated {
        true => format!("{{\"v\":1,\"revoked\":{now},\"regenerated\":true}}"),
        false => format!("{{\"v\":1,\"revoked\":{now}}}"),
    }
}

/// Whether `text`, a tombstone or what a record's key holds, says that a new id
/// replaced the session: the old cookie may still be on its way back from the page's
/// requests in flight, and clearing it would clear the new one.
pub fn regenerated(text: &str) -> bool {
    regenerated_at(text).is_some()
}

/// When a new id replaced the session, if `text` says one did (see [`regenerated`]).
pub fn regenerated_at(text: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Tombstone {
        v: u32,
        #[serde(default)]
        revoked: u64,
        #[serde(default)]
        regenerated: bool,
    }
    serde_json::from_str::<Tombstone>(text)
        .ok()
        .filter(|t| t.v == 1 && t.regenerated)
        .map(|t| t.revoked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::tests::CountingEntropy;
    use crate::dbsc::proof::BoundKey;

    #[test]
    fn record_round_trip_and_refusals() {
        let r = encode(1, 2, r#"{"user":"ada"}"#, None);
        assert_eq!(
            r,
            r#"{"v":1,"created":1,"abs_exp":2,"data":{"user":"ada"}}"#
        );
        let d = decode(&r).unwrap();
        assert_eq!((d.data, d.bound), (r#"{"user":"ada"}"#, None));
        for bad in [
            r#"{"v":2,"created":1,"abs_exp":2,"data":{}}"#,
            r#"{"v":1,"data":[1]}"#,
            r#"{"v":1}"#,
            "not json",
            &tombstone(5, false),
            &tombstone(5, true),
            r#"{"v":1,"data":{},"bound":{"key":"ES256 {}","last":1}}"#,
            r#"{"v":1,"data":{},"bound":{"thumb":"t","last":1}}"#,
        ] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_bound_device_round_trips() {
        let key = BoundKey::from_stored(&format!(
            r#"ES256 {{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
            crate::util::b64([1u8; 32]),
            crate::util::b64([2u8; 32])
        ))
        .unwrap();
        let bound = Binding::new(&key, 1_800_000_000_123, 1_800_000_600);
        let r = encode(1, 2, "{}", Some(&bound));
        assert!(r.contains(r#""until":1800000600"#), "{r}");
        assert_eq!(decode(&r).unwrap().bound, Some(bound.clone()));
        // A record written before `until` was kept reads as not knowing it.
        let unknown = Binding { until: 0, ..bound };
        let r = encode(1, 2, "{}", Some(&unknown));
        assert!(!r.contains("until"), "{r}");
        assert_eq!(decode(&r).unwrap().bound, Some(unknown));
    }

    #[test]
    fn only_a_regenerated_session_s_tombstone_says_so() {
        assert!(regenerated(&tombstone(5, true)));
        for text in [
            &tombstone(5, false),
            r#"{"v":2,"revoked":5,"regenerated":true}"#,
            r#"{"v":1,"created":1,"abs_exp":2,"data":{}}"#,
            "not json",
        ] {
            assert!(!regenerated(text), "{text}");
        }
    }

    #[test]
    fn tombstone_keys_never_collide_with_record_keys() {
        let sid = SessionId::generate(&mut CountingEntropy(3));
        let (rec, tomb) = (record_key("kc:", &sid), tombstone_key("kc:", &sid));
        assert_eq!(tomb, format!("kc:revoked.{}", &rec[3..]));
        assert!(!rec[3..].contains('.'), "base64url holds no dot");
        assert_eq!(tombstone_key("", &sid), format!("revoked.{}", &rec[3..]));
    }

    #[test]
    fn a_record_key_hashes_the_id() {
        let sid = SessionId::generate(&mut CountingEntropy(0));
        let key = record_key("keycard:", &sid);
        assert!(key.starts_with("keycard:"));
        assert!(!key.contains(sid.as_str()));
        assert_eq!(key.len(), "keycard:".len() + 43);
    }
}
