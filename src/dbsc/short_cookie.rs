//! The short-lived cookie of a bound session: `<exp>.<tag>`, where `exp` is its expiry
//! (unix seconds) and `tag` an HMAC-SHA256 under the device-bound purpose key over the
//! session id, the bound key's thumbprint and `exp`. A copy outlives nothing: it is
//! good for its session, with its key, until `exp`, and only the browser holding the
//! key can get the next one.

use crate::crypto::keys::{mac_tag, verify_mac, KeyRing, SessionId};
use crate::util::{b64, parse_u64, unb64};

/// Its name beside the session cookie `session_cookie`: that name without its prefix,
/// then `-bound`, under `__Host-`, or under `__Secure-` when the session cookie names a
/// domain (`__Host-` needs a host-only cookie). Two deployments on one host have
/// session cookies of their own names, and so short-lived cookies of their own too.
/// `keycard` gives `__Host-keycard-bound`.
pub fn name(session_cookie: &str, domain: bool) -> String {
    let base = ["__Host-", "__Secure-"]
        .iter()
        .find_map(|p| {
            session_cookie
                .get(..p.len())
                .filter(|head| head.eq_ignore_ascii_case(p))
                .map(|_| &session_cookie[p.len()..])
        })
        .unwrap_or(session_cookie);
    let prefix = match domain {
        true => "__Secure-",
        false => "__Host-",
    };
    format!("{prefix}{base}-bound")
}

/// What a tag covers; the label keeps it apart from a challenge's under the same key.
fn parts<'a>(sid: &'a SessionId, thumbprint: &'a str, exp: &'a str) -> [&'a [u8]; 7] {
    [
        b"bound",
        &[0],
        sid.as_str().as_bytes(),
        &[0],
        thumbprint.as_bytes(),
        &[0],
        exp.as_bytes(),
    ]
}

/// The cookie's value for session `sid`, bound to the key `thumbprint`, until `exp`.
pub fn value(keys: &KeyRing, sid: &SessionId, thumbprint: &str, exp: u64) -> String {
    let exp = exp.to_string();
    let tag = mac_tag(keys.current().device_mac(), &parts(sid, thumbprint, &exp));
    format!("{exp}.{}", b64(tag))
}

/// Whether `value` is a short-lived cookie for session `sid` and key `thumbprint` that
/// has not expired at `now`.
pub fn valid(keys: &KeyRing, value: &str, sid: &SessionId, thumbprint: &str, now: u64) -> bool {
    expiry(keys, value, sid, thumbprint, now).is_some()
}

/// When `value` expires, if it is a [`valid`] short-lived cookie for session `sid` and
/// key `thumbprint` at `now` (the inspector shows it).
pub fn expiry(
    keys: &KeyRing,
    value: &str,
    sid: &SessionId,
    thumbprint: &str,
    now: u64,
) -> Option<u64> {
    let (exp, tag) = value.split_once('.')?;
    let at = parse_u64(exp).filter(|at| now < *at)?;
    let tag = unb64(tag)?;
    let covered = parts(sid, thumbprint, exp);
    keys.all()
        .any(|k| verify_mac(k.device_mac(), &covered, &tag).is_ok())
        .then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::tests::{secret, CountingEntropy};

    #[test]
    fn its_name_follows_the_session_cookie() {
        assert_eq!(name("keycard", false), "__Host-keycard-bound");
        assert_eq!(name("__Host-app", false), "__Host-app-bound");
        assert_eq!(name("__secure-app", true), "__Secure-app-bound");
        assert_eq!(name("sid", true), "__Secure-sid-bound");
        assert_ne!(name("shop", false), name("blog", false));
    }

    #[test]
    fn it_is_good_for_its_session_and_key_until_it_expires() {
        let keys = KeyRing::new(&secret("short-lived cookie test secret 0123456789"), &[]);
        let sid = SessionId::generate(&mut CountingEntropy(1));
        let other = SessionId::generate(&mut CountingEntropy(2));
        let v = value(&keys, &sid, "thumb", 1000);
        assert!(valid(&keys, &v, &sid, "thumb", 999));
        assert!(!valid(&keys, &v, &sid, "thumb", 1000), "expired");
        assert!(!valid(&keys, &v, &other, "thumb", 999), "another session");
        assert!(!valid(&keys, &v, &sid, "another key", 999), "another key");
        let later = v.replacen("1000", "9000", 1);
        assert!(
            !valid(&keys, &later, &sid, "thumb", 999),
            "its expiry is covered"
        );
        let elsewhere = KeyRing::new(&secret("another deployment's secret 0123456789"), &[]);
        assert!(!valid(&elsewhere, &v, &sid, "thumb", 999));
        for bad in ["", "1000", "x.y", "1000.", ".abc"] {
            assert!(!valid(&keys, bad, &sid, "thumb", 999), "{bad}");
        }
    }
}
