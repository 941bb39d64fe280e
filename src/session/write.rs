//! What a request leaves behind: the origin's changes applied to the session, the
//! cookie issued (in the cookie itself, or with the data in KV past 4 KB) or cleared,
//! and the KV writes, deletes and revocations that go with it.

use codec::{Body, Claims};
use serde_json::Map;

use super::*;
use crate::config::{Config, StoreMode};
use crate::crypto::keys::{Entropy, SessionId};
use crate::util::b64;

/// A KV write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvPut {
    /// The key: prefix + base64url(SHA-256(session id)).
    pub key: String,
    /// The versioned JSON record.
    pub value: String,
    /// `expirationTtl` in seconds: the smaller of the idle and absolute time left, at
    /// least [`record::KV_MIN_TTL`].
    pub ttl: u64,
}

/// The decisions for the edge to carry out after the origin answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The `Set-Cookie` header value for the session cookie, if any.
    pub set_cookie: Option<String>,
    /// The tombstone key to read before [`Outcome::kv_put`]: if a tombstone is there,
    /// the session was revoked and must not be written again.
    pub kv_check: Option<String>,
    /// The record to write, if any.
    pub kv_put: Option<KvPut>,
    /// Sessions to revoke: write each tombstone, then delete each record.
    pub kv_revoke: Vec<Revocation>,
    /// Records to delete that are no longer needed (the data moved into the cookie).
    pub kv_delete: Vec<String>,
    /// The session after the changes, if it lives on.
    pub session: Option<SessionState>,
}

/// The end of a session whose record is in KV: a tombstone under a key that session
/// writes never touch, kept until the session's absolute expiry, then the record's
/// deletion. KV is eventually consistent, so a stale location may still serve the
/// record for a while; the tombstone makes sure that no request anywhere can write it
/// back (every write of an existing id reads the tombstone key first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The tombstone to write.
    pub tombstone: KvPut,
    /// What becomes of the record.
    pub record: RecordEnd,
}

/// Why a session whose record is in KV ends ([`revoke`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Signed out or revoked: its record is deleted.
    Revoked,
    /// A new id replaced it (`regenerate`): its record becomes a marker for a minute.
    Replaced,
}

/// What becomes of an ended session's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordEnd {
    /// Deleted, at this key.
    Delete(String),
    /// Overwritten with the tombstone for [`REGENERATED_WINDOW`]: a new id replaced the
    /// session (`regenerate`), and the page's requests in flight still carry the old
    /// cookie (`record::regenerated`).
    Regenerated(KvPut),
}

/// Why [`finish`] could not honour the origin's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FinishError {
    /// The session does not fit in a cookie and there is no KV to spill to.
    #[error("session cookie would be {size} bytes, over the 4096-byte limit, and SESSION_STORE does not allow KV")]
    TooLarge { size: usize },
}

/// Builds the `Set-Cookie` value for `value`, with every configured attribute.
/// `max_age` is sent only for persistent cookies.
pub fn set_cookie(cfg: &Config, value: &str, max_age: u64) -> String {
    build_cookie(
        cfg,
        value,
        if cfg.cookie.persistent {
            Some(max_age)
        } else {
            None
        },
    )
}

/// The clearing cookie: same name, path and domain, empty value, `Max-Age=0`.
pub fn clearing_cookie(cfg: &Config) -> String {
    build_cookie(cfg, "", Some(0))
}

/// Written by hand, in the `cookie` crate's order and form (a test checks every
/// attribute combination against the crate): the crate's `Display` also formats
/// `Expires` with the `time` crate, which keycard never sends but which was 20 KB of
/// the module's code, about a twentieth of it (BENCHMARKS.md, "Size"). Every part is
/// a validated setting or keycard's own base64url value, so nothing needs escaping.
pub(super) fn build_cookie(cfg: &Config, value: &str, max_age: Option<u64>) -> String {
    use std::fmt::Write;
    let c = &cfg.cookie;
    let mut out = String::with_capacity(c.name.len() + value.len() + 96);
    out.push_str(&c.name);
    out.push('=');
    out.push_str(value);
    if c.http_only {
        out.push_str("; HttpOnly");
    }
    out.push_str(c.same_site.attribute());
    if c.secure {
        out.push_str("; Secure");
    }
    out.push_str("; Path=");
    out.push_str(&c.path);
    if let Some(d) = &c.domain {
        // The legacy leading dot is dropped, as the crate does; browsers ignore it.
        out.push_str("; Domain=");
        out.push_str(d.strip_prefix('.').unwrap_or(d));
    }
    if let Some(m) = max_age {
        let _ = write!(out, "; Max-Age={}", m.min(i64::MAX as u64));
    }
    out
}

/// The cookie's claims for `s`. It names its bound key only where the users' objects
/// keep bindings: with `SESSION_STORE=kv` the record, which every request reads, has
/// the binding, and the mark would only lengthen the cookie.
fn claims_of(cfg: &Config, s: &SessionState, body: Body) -> Claims {
    Claims {
        issued: s.issued,
        created: s.created,
        abs_exp: s.abs_exp,
        sid: s.sid.clone(),
        body,
        bound: s
            .bound
            .as_ref()
            .filter(|_| cfg.bindings_in_users())
            .map(|b| b.thumbprint.clone()),
    }
}

fn encode(cfg: &Config, claims: &Claims, entropy: &mut dyn Entropy) -> String {
    let keys = cfg.keys.current();
    if cfg.cookie.encrypt {
        codec::encode_sealed(keys, &cfg.cookie.name, claims, entropy)
    } else {
        codec::encode_signed(keys, &cfg.cookie.name, claims)
    }
}

/// A session after the origin's changes were applied, before it is placed.
struct Applied {
    /// The session that lives on, if any.
    session: Option<SessionState>,
    /// Whether its data, id or lifetime changed.
    changed: bool,
    /// Whether its id is new in this request (created or regenerated): no tombstone
    /// can exist for it.
    new_id: bool,
    /// The session as it was before `regenerate`, whose id is now revoked.
    replaced: Option<SessionState>,
}

/// Applies `clear`, the `Set` merge, `regenerate` and `Max-Age` (in that order) to
/// `session`, creating one when a `Set` leaves data and there was none.
fn apply(
    cfg: &Config,
    mut session: Option<SessionState>,
    changes: Changes,
    now: u64,
    entropy: &mut dyn Entropy,
) -> Applied {
    let mut changed = false;
    let mut new_id = false;
    if changes.clear || changes.set.is_some() {
        // Whose binding the session holds, where the users' objects keep bindings: read
        // only there, so that no other `Set` parses the data twice.
        let kept_by = session
            .as_ref()
            .filter(|_| cfg.bindings_in_users())
            .map(|s| cfg.guards.user_name(&s.data()));
        let mut data = match &session {
            Some(s) if !changes.clear => s.data(),
            _ => Map::new(),
        };
        if let Some(set) = changes.set {
            merge(&mut data, set);
        }
        let json = serde_json::to_string(&data).expect("a JSON map always serializes");
        let data_b64 = b64(json);
        match &mut session {
            Some(s) if s.data_b64 != data_b64 => {
                s.data_b64 = data_b64;
                // Where the users' objects keep bindings, a binding is its user's: a
                // session that changes user (or leaves it) without a new id leaves the
                // binding behind, as a regenerated one does, and is bound again by a
                // registration of its own.
                if kept_by.is_some_and(|u| u != cfg.guards.user_name(&data)) {
                    s.bound = None;
                }
                changed = true;
            }
            Some(_) => {}
            None if !data.is_empty() => {
                session = Some(SessionState {
                    sid: SessionId::generate(entropy),
                    created: now,
                    abs_exp: now + cfg.absolute_timeout,
                    issued: now,
                    data_b64,
                    location: Location::Cookie,
                    kid: cfg.keys.current().kid().to_owned(),
                    current_key: true,
                    bound: None,
                });
                changed = true;
                new_id = true;
            }
            None => {}
        }
    }
    let mut replaced = None;
    if let Some(s) = &mut session {
        if changes.regenerate {
            replaced = Some(s.clone());
            s.sid = SessionId::generate(entropy);
            // The short-lived cookie and the browser's record of the binding name the
            // old id: a new one is bound only by a registration of its own.
            s.bound = None;
            changed = true;
            new_id = true;
        }
        if let Some(secs) = changes.max_age {
            let abs = now + secs.min(cfg.absolute_timeout);
            if abs != s.abs_exp {
                // The absolute lifetime now counts from here (see `check_times`).
                s.created = now;
                s.abs_exp = abs;
                changed = true;
            }
        }
    }
    Applied {
        session,
        changed,
        new_id,
        replaced,
    }
}

/// Encodes the session's cookie and decides where its data lives: in the cookie while
/// it fits (`cookie`, `auto`), in KV in `kv` mode or past the limit in `auto`.
fn place(
    cfg: &Config,
    s: &SessionState,
    max_age: u64,
    entropy: &mut dyn Entropy,
    kv_available: bool,
) -> Result<(String, Location), FinishError> {
    let in_kv = |entropy: &mut dyn Entropy| {
        let value = encode(cfg, &claims_of(cfg, s, Body::InKv), entropy);
        (set_cookie(cfg, &value, max_age), Location::Kv)
    };
    if cfg.store == StoreMode::Kv {
        return Ok(in_kv(entropy));
    }
    let value = encode(
        cfg,
        &claims_of(cfg, s, Body::Inline(s.data_b64.clone())),
        entropy,
    );
    let inline = set_cookie(cfg, &value, max_age);
    if inline.len() <= MAX_COOKIE_LEN {
        Ok((inline, Location::Cookie))
    } else if cfg.store == StoreMode::Auto && kv_available {
        Ok(in_kv(entropy))
    } else {
        Err(FinishError::TooLarge { size: inline.len() })
    }
}

/// The revocation of a session whose record is in KV: its tombstone, then the
/// record's deletion, or for a [`Ending::Replaced`] one its overwrite with the
/// tombstone for [`REGENERATED_WINDOW`]. `None` for a session in the cookie.
pub fn revoke(cfg: &Config, s: &SessionState, now: u64, ending: Ending) -> Option<Revocation> {
    (s.location == Location::Kv).then(|| {
        let value = record::tombstone(now, ending == Ending::Replaced);
        let record = match ending {
            Ending::Replaced => RecordEnd::Regenerated(KvPut {
                key: s.kv_key(cfg),
                value: value.clone(),
                ttl: REGENERATED_WINDOW,
            }),
            Ending::Revoked => RecordEnd::Delete(s.kv_key(cfg)),
        };
        Revocation {
            tombstone: KvPut {
                key: s.tombstone_key(cfg),
                value,
                ttl: s.abs_exp.saturating_sub(now).max(record::KV_MIN_TTL),
            },
            record,
        }
    })
}

/// Applies the origin's `changes` to the loaded session and decides what to send and
/// store. `kv_available` says whether a KV binding exists. Change order: `destroy`
/// (which ignores everything else), `clear`, the `Set` merge, `regenerate`, then
/// `Max-Age` (`0` ends the session like `destroy`).
pub fn finish(
    cfg: &Config,
    loaded: Loaded,
    changes: Changes,
    now: u64,
    entropy: &mut dyn Entropy,
    kv_available: bool,
) -> Result<Outcome, FinishError> {
    let (bad_cookie, session) = match loaded {
        Loaded::Bad(_) => (true, None),
        Loaded::Valid(s) => (false, Some(s)),
        Loaded::None | Loaded::StoreUnavailable | Loaded::Unproven(_) | Loaded::Regenerated => {
            (false, None)
        }
    };
    let mut out = Outcome::default();

    if changes.destroy || changes.max_age == Some(0) {
        out.kv_revoke.extend(
            session
                .as_ref()
                .and_then(|s| revoke(cfg, s, now, Ending::Revoked)),
        );
        out.set_cookie = Some(clearing_cookie(cfg));
        return Ok(out);
    }

    let Applied {
        session,
        changed,
        new_id,
        replaced,
    } = apply(cfg, session, changes, now, entropy);
    let Some(s) = session else {
        if bad_cookie {
            out.set_cookie = Some(clearing_cookie(cfg));
        }
        return Ok(out);
    };
    // A regenerated session's old id dies with its record.
    out.kv_revoke.extend(
        replaced
            .as_ref()
            .and_then(|old| revoke(cfg, old, now, Ending::Replaced)),
    );

    // The rule `Loaded::at_rest` promises for a request with no changes.
    if !changed && !s.refresh_due(cfg, now) {
        out.session = Some(s);
        return Ok(out);
    }
    let was_kv = s.location == Location::Kv && replaced.is_none();
    issue(
        cfg,
        s,
        Issue {
            changed,
            new_id,
            was_kv,
        },
        now,
        entropy,
        kv_available,
        out,
    )
}

/// Issues a new cookie for `s`, with nothing else changed: for a session just bound to
/// a device, whose cookie now names the device's key.
pub fn reissue(
    cfg: &Config,
    s: SessionState,
    now: u64,
    entropy: &mut dyn Entropy,
    kv_available: bool,
) -> Result<Outcome, FinishError> {
    let was_kv = s.location == Location::Kv;
    let how = Issue {
        changed: true,
        new_id: false,
        was_kv,
    };
    issue(cfg, s, how, now, entropy, kv_available, Outcome::default())
}

/// Issues `s` under a new id, as `regenerate` does, its binding kept: for a session
/// just bound to a device, so that every copy of its cookie from before ends with the
/// old id. The old record, if in KV, becomes the marker of a replaced session for
/// [`REGENERATED_WINDOW`] (the page's requests in flight still carry the old cookie),
/// and its tombstone is looked at first (`kv_check`): a session revoked while its
/// device was proving itself is not written back under a new id.
pub fn regenerate(
    cfg: &Config,
    s: SessionState,
    now: u64,
    entropy: &mut dyn Entropy,
    kv_available: bool,
) -> Result<Outcome, FinishError> {
    let out = Outcome {
        kv_revoke: revoke(cfg, &s, now, Ending::Replaced).into_iter().collect(),
        ..Outcome::default()
    };
    let old_tombstone = (s.location == Location::Kv).then(|| s.tombstone_key(cfg));
    let renewed = SessionState {
        sid: SessionId::generate(entropy),
        ..s
    };
    let how = Issue {
        changed: true,
        new_id: true,
        was_kv: false,
    };
    let mut out = issue(cfg, renewed, how, now, entropy, kv_available, out)?;
    out.kv_check = old_tombstone;
    Ok(out)
}

/// What [`issue`] needs to know of how the session came to be issued.
struct Issue {
    /// Its data, id, lifetime or binding changed.
    changed: bool,
    /// Its id is new in this request.
    new_id: bool,
    /// Its data was in KV before, under this id.
    was_kv: bool,
}

/// Places and encodes the session's new cookie, with the KV writes that go with it.
fn issue(
    cfg: &Config,
    mut s: SessionState,
    how: Issue,
    now: u64,
    entropy: &mut dyn Entropy,
    kv_available: bool,
    mut out: Outcome,
) -> Result<Outcome, FinishError> {
    let time_refresh = s.time_refresh_due(cfg, now);
    s.issued = now;
    s.kid = cfg.keys.current().kid().to_owned();
    s.current_key = true;
    let max_age = cfg.idle_timeout.min(s.abs_exp.saturating_sub(now));
    let (cookie, location) = place(cfg, &s, max_age, entropy, kv_available)?;
    debug_assert!(cookie.len() <= MAX_COOKIE_LEN);

    if location == Location::Kv && (how.changed || time_refresh || !how.was_kv) {
        // An id that existed before may have been revoked meanwhile: its tombstone is
        // looked at first, so a revoked session can never be written again.
        out.kv_check = (!how.new_id).then(|| s.tombstone_key(cfg));
        out.kv_put = Some(KvPut {
            key: s.kv_key(cfg),
            value: record::encode(s.created, s.abs_exp, &s.data_json(), s.bound.as_ref()),
            ttl: max_age.max(record::KV_MIN_TTL),
        });
    } else if location == Location::Cookie && how.was_kv {
        // The data moved back into the cookie: the record is no longer needed. The id
        // may have been revoked meanwhile, and a cookie-stored session cannot be: its
        // tombstone is looked at first here too.
        out.kv_check = (!how.new_id).then(|| s.tombstone_key(cfg));
        out.kv_delete.push(s.kv_key(cfg));
    }
    s.location = location;
    out.set_cookie = Some(cookie);
    out.session = Some(s);
    Ok(out)
}
