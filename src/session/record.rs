//! The KV record format: where a session's record and its tombstone live, and what
//! they hold. Both are versioned JSON.
//!
//! | what | key | value | `expirationTtl` |
//! | --- | --- | --- | --- |
//! | record | prefix + base64url(SHA-256(session id)) | `{"v":1,"created":..,"abs_exp":..,"data":{..}}` | `max(60, min(idle, abs_exp − now))` |
//! | tombstone | prefix + `revoked.` + base64url(SHA-256(session id)) | `{"v":1,"revoked":<unix time>}` | `max(60, abs_exp − now)` |
//!
//! Keys hash the session id, so a KV dump holds no usable id. A record key never has a
//! dot after the prefix, so no session write can touch a tombstone. Every read passes
//! `cacheTtl` [`KV_CACHE_TTL`].

use std::fmt::Write as _;

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

/// A record holding `data_json` (the session data's JSON object).
pub fn encode(created: u64, abs_exp: u64, data_json: &str) -> String {
    let mut r = String::with_capacity(64 + data_json.len());
    let _ = write!(
        r,
        "{{\"v\":1,\"created\":{created},\"abs_exp\":{abs_exp},\"data\":{data_json}}}"
    );
    r
}

#[derive(serde::Deserialize)]
struct Record<'a> {
    v: u32,
    #[serde(borrow)]
    data: &'a serde_json::value::RawValue,
}

/// The data's JSON object in a record's text. `None` for anything unreadable, of
/// another version, or whose data is not an object. The times in a record are not
/// read: the signed cookie's own are the authority.
pub fn decode(text: &str) -> Option<&str> {
    let rec: Record = serde_json::from_str(text).ok()?;
    (rec.v == 1 && rec.data.get().starts_with('{')).then(|| rec.data.get())
}

/// A tombstone written at `now`.
pub fn tombstone(now: u64) -> String {
    format!("{{\"v\":1,\"revoked\":{now}}}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::tests::CountingEntropy;

    #[test]
    fn record_round_trip_and_refusals() {
        let r = encode(1, 2, r#"{"user":"ada"}"#);
        assert_eq!(
            r,
            r#"{"v":1,"created":1,"abs_exp":2,"data":{"user":"ada"}}"#
        );
        assert_eq!(decode(&r), Some(r#"{"user":"ada"}"#));
        for bad in [
            r#"{"v":2,"created":1,"abs_exp":2,"data":{}}"#,
            r#"{"v":1,"data":[1]}"#,
            r#"{"v":1}"#,
            "not json",
            &tombstone(5),
        ] {
            assert_eq!(decode(bad), None, "{bad}");
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
