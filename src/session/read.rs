//! Reading a session from the request's `Cookie` header: which cookie is the session's,
//! its signature or seal, and its times.

use codec::{Body, Claims, DecodeError};

use super::*;
use crate::config::Config;
use crate::http::cookie_header;

/// Refuses a cookie issued too far in the future, or past its idle or absolute
/// expiry; clamps its absolute expiry to the current `SESSION_ABSOLUTE_TIMEOUT`.
fn check_times(cfg: &Config, claims: &mut Claims, now: u64) -> Result<(), Status> {
    if claims.issued > now.saturating_add(MAX_SKEW) {
        return Err(Status::Invalid);
    }
    // A cookie issued under a longer absolute timeout than the current one is held to
    // the current one, counted from when its absolute lifetime started (creation, or
    // the origin's last `X-Session-Max-Age`), not from its last issue.
    claims.abs_exp = claims
        .abs_exp
        .min(claims.created.saturating_add(cfg.absolute_timeout));
    if now >= claims.abs_exp || now >= claims.issued.saturating_add(cfg.idle_timeout) {
        return Err(Status::Expired);
    }
    Ok(())
}

/// Reads the session from a `Cookie` header. Among several cookies with the session
/// cookie's exact name (see [`cookie_header`]), the first valid one wins; every one is
/// tried, so junk cookies of that name cannot hide the real one.
pub fn read(cfg: &Config, cookie_header: Option<&str>, now: u64) -> Read {
    let Some(header) = cookie_header else {
        return Read::None;
    };
    let mut worst: Option<(Status, DecodeError)> = None;
    for value in cookie_header::values(header, &cfg.cookie.name) {
        let verified = match codec::decode(&cfg.keys, &cfg.cookie.name, value) {
            Ok(v) => v,
            Err(e) => {
                worst.get_or_insert((Status::Invalid, e));
                continue;
            }
        };
        let mut claims = verified.claims;
        if let Err(status) = check_times(cfg, &mut claims, now) {
            // Expired beats invalid: it says more to the origin.
            if status == Status::Expired || worst.is_none() {
                worst = Some((status, DecodeError::Malformed));
            }
            continue;
        }
        return match claims.body {
            Body::Inline(ref data_b64) => Read::Ready(SessionState {
                data_b64: data_b64.clone(),
                sid: claims.sid,
                created: claims.created,
                abs_exp: claims.abs_exp,
                issued: claims.issued,
                location: Location::Cookie,
                kid: verified.kid,
                current_key: verified.current_key,
                bound: claims.bound.as_deref().map(Binding::marked),
            }),
            Body::InKv => Read::NeedsRecord(Pending {
                key: record::record_key(&cfg.kv_prefix, &claims.sid),
                claims,
                kid: verified.kid,
                current_key: verified.current_key,
            }),
        };
    }
    match worst {
        None => Read::None,
        Some((s, e)) => Read::Bad(s, e),
    }
}

/// The values of the short-lived cookies in a `Cookie` header, which a bound session
/// needs one of ([`Loaded::proven`]); none when binding is off.
pub fn short_cookies(cfg: &Config, cookie_header: Option<&str>) -> Vec<String> {
    match (&cfg.device_bound, cookie_header) {
        (Some(d), Some(h)) => cookie_header::values(h, &d.cookie)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}
