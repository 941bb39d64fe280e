//! The challenges keycard hands a browser to sign: `<ms>.<nonce>.<tag>`.
//!
//! `ms` is when it was minted (unix milliseconds), `nonce` 12 random bytes, and `tag`
//! an HMAC-SHA256 under the device-bound purpose key over the session it is for (its handle at registration, the bound session's identifier at refresh), the
//! time and the nonce. So a challenge is checked without being stored: it names its
//! session, is fresh for [`LIFETIME_MS`], and, since a session remembers the time of the
//! last challenge it accepted, is used at most once.

use crate::crypto::keys::{mac_tag, verify_mac, Entropy, KeyRing};
use crate::util::{b64, parse_u64, unb64};

/// How long a challenge may be answered, in milliseconds: a browser signs at once, and
/// a refresh's two round trips take seconds.
pub const LIFETIME_MS: u64 = 5 * 60 * 1000;

/// How far in the future a challenge's time may be (another location's clock).
const SKEW_MS: u64 = 60 * 1000;

/// A challenge for `subject`, minted at `now_ms`.
pub fn mint(keys: &KeyRing, subject: &str, now_ms: u64, entropy: &mut dyn Entropy) -> String {
    let mut nonce = [0u8; 12];
    entropy.fill(&mut nonce);
    let nonce = b64(nonce);
    let ms = now_ms.to_string();
    let tag = mac_tag(keys.current().device_mac(), &covered(subject, &ms, &nonce));
    format!("{ms}.{nonce}.{}", b64(tag))
}

/// What a challenge's tag covers; the label keeps it apart from the short-lived
/// cookie's tag under the same key.
fn covered<'a>(subject: &'a str, ms: &'a str, nonce: &'a str) -> [&'a [u8]; 7] {
    [
        b"challenge",
        &[0],
        subject.as_bytes(),
        &[0],
        ms.as_bytes(),
        &[0],
        nonce.as_bytes(),
    ]
}

/// Why a challenge is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a challenge keycard minted for this session (or under a key it still has).
    Foreign,
    /// Older than [`LIFETIME_MS`], or from too far in the future.
    Stale,
    /// Not later than the last one this session used.
    Used,
}

/// Checks `challenge` for `subject` at `now_ms`; `last_used_ms` is the time of the last
/// challenge the session accepted. Returns its time, which the session keeps as its new
/// `last_used_ms` once the proof verified.
pub fn check(
    keys: &KeyRing,
    challenge: &str,
    subject: &str,
    now_ms: u64,
    last_used_ms: u64,
) -> Result<u64, Refused> {
    let (ms, nonce, t) = crate::util::three_parts(challenge).ok_or(Refused::Foreign)?;
    let given = unb64(t).ok_or(Refused::Foreign)?;
    let covered = covered(subject, ms, nonce);
    if !keys
        .all()
        .any(|k| verify_mac(k.device_mac(), &covered, &given).is_ok())
    {
        return Err(Refused::Foreign);
    }
    let ms = parse_u64(ms).ok_or(Refused::Foreign)?;
    if ms.saturating_add(LIFETIME_MS) < now_ms || ms > now_ms.saturating_add(SKEW_MS) {
        return Err(Refused::Stale);
    }
    if ms <= last_used_ms {
        return Err(Refused::Used);
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::tests::{secret, CountingEntropy};

    const NOW: u64 = 1_800_000_000_000;

    fn ring() -> KeyRing {
        KeyRing::new(
            &secret("device-bound challenge test secret 0123456789"),
            &[],
        )
    }

    #[test]
    fn a_challenge_is_for_one_session_and_fresh_once() {
        let keys = ring();
        let c = mint(&keys, "handle-a", NOW, &mut CountingEntropy(1));
        assert_eq!(check(&keys, &c, "handle-a", NOW + 1000, 0), Ok(NOW));
        assert_eq!(check(&keys, &c, "handle-b", NOW, 0), Err(Refused::Foreign));
        assert_eq!(
            check(&keys, &c, "handle-a", NOW + LIFETIME_MS + 1, 0),
            Err(Refused::Stale)
        );
        assert_eq!(
            check(&keys, &c, "handle-a", NOW - 2 * SKEW_MS, 0),
            Err(Refused::Stale)
        );
        assert_eq!(
            check(&keys, &c, "handle-a", NOW + 1, NOW),
            Err(Refused::Used)
        );
        let later = mint(&keys, "handle-a", NOW + 5, &mut CountingEntropy(2));
        assert_eq!(check(&keys, &later, "handle-a", NOW + 6, NOW), Ok(NOW + 5));
    }

    #[test]
    fn a_forged_or_altered_challenge_is_foreign() {
        let keys = ring();
        let c = mint(&keys, "h", NOW, &mut CountingEntropy(1));
        let other = KeyRing::new(&secret("another deployment's secret, 0123456789"), &[]);
        assert_eq!(check(&other, &c, "h", NOW, 0), Err(Refused::Foreign));
        let (ms, rest) = c.split_once('.').unwrap();
        let moved = format!("{}.{rest}", ms.parse::<u64>().unwrap() + 1);
        assert_eq!(
            check(&keys, &moved, "h", NOW, 0),
            Err(Refused::Foreign),
            "its time is covered"
        );
        for bad in ["", "a.b", "a.b.c.d", "1.2.!!!", &c[..c.len() - 2]] {
            assert_eq!(
                check(&keys, bad, "h", NOW, 0),
                Err(Refused::Foreign),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_challenge_minted_before_a_rotation_still_checks() {
        let old = secret("device-bound challenge test secret 0123456789");
        let c = mint(&KeyRing::new(&old, &[]), "h", NOW, &mut CountingEntropy(1));
        let rotated = KeyRing::new(&secret("the new secret after rotation, 0123456789"), &[old]);
        assert_eq!(check(&rotated, &c, "h", NOW, 0), Ok(NOW));
    }
}
