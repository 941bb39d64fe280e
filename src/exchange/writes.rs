//! After the origin answered: its changes decided, the writes they take (KV records and
//! tombstones, the users' objects) carried out in order, and the response rewrapped
//! for the client.

use std::collections::VecDeque;
use std::mem;
use std::rc::Rc;

use serde_json::json;

use super::*;
use crate::config::KvFailure;
use crate::crypto::keys::Entropy;
use crate::http::headers::{self, HeaderList};
use crate::oidc::flow;
use crate::origin::control;
use crate::session::{self, Changes, FinishError, Loaded};

impl<E: Entropy> Exchange<E> {
    /// The origin's answer to a [`Step::Forward`]: applies its control headers (unless
    /// they cannot be trusted), then asks for the KV writes, then for the response.
    pub fn answered(&mut self, answer: &Answer<'_>) -> Step {
        let State::Forwarding(loaded) = mem::replace(&mut self.state, State::Done) else {
            return self.out_of_order("answered");
        };
        let h = &answer.headers;
        let (changes, errors) = control::from_headers(|name| h.get(name));
        for e in errors {
            self.log(
                Level::Error,
                "bad_control_header",
                json!({ "error": e.to_string() }),
            );
        }
        let distrust = if changes.is_empty() {
            None
        } else if answer.status >= 500 {
            Some("origin answered 5xx")
        } else if from_cache(h) {
            Some("the response came from a cache")
        } else if matches!(loaded, Loaded::StoreUnavailable) {
            Some("the session store is unavailable")
        } else if matches!(loaded, Loaded::Regenerated) && !changes.destroy {
            // Any cookie issued would replace the new one. A sign-out clicked before the
            // new cookie arrived still clears it: that is what the user asked for.
            Some("the session was regenerated moments ago")
        } else if matches!(loaded, Loaded::Unproven(_)) && !changes.regenerate && !changes.destroy {
            // The app saw no session. A new one (`regenerate`: a sign-in) or none
            // (`destroy`: a sign-out) is what it would answer any visitor, and leaves
            // the bound session as it is; anything else would change the browser's
            // cookie for a request that could not prove its device.
            Some("the session is bound to a device that did not prove itself")
        } else {
            None
        };
        let changes = match distrust {
            Some(reason) => {
                self.log(
                    Level::Warn,
                    "control_ignored",
                    json!({ "reason": reason, "status": answer.status }),
                );
                Changes::default()
            }
            None => changes,
        };
        let origin = OriginResponse {
            strip: h
                .iter()
                .filter(|(name, _)| headers::is_session_alias(name))
                .map(|(name, _)| name.to_owned())
                .collect(),
            cache_control: h.get("cache-control").map(str::to_owned),
        };
        // Checked in debug builds only: release builds do not pay for the check.
        let promised = cfg!(debug_assertions)
            && self.passes_quietly(&loaded)
            && !h
                .iter()
                .any(|(name, _)| name.contains(headers::SESSION_ALIAS_MARK));
        let step = self.decide(loaded, changes, origin);
        debug_assert!(
            !promised || step == Step::Pass,
            "Forward::pass_unless broke its promise"
        );
        step
    }

    /// Whether the origin's response will be passed as it is when none of its header
    /// names holds [`headers::SESSION_ALIAS_MARK`] ([`Forward::pass_unless`]): it then
    /// has no control header to apply and no alias to strip, and a session at rest
    /// needs nothing written. (`answered` checks the promise in debug builds, so every
    /// test and fuzz run that reaches it does too.)
    pub(super) fn passes_quietly(&self, loaded: &Loaded) -> bool {
        self.revoked.is_none() && loaded.at_rest(&self.cfg, self.now)
    }

    /// The origin could not be reached (the detail is for the log only).
    pub fn unreachable(&mut self, detail: &str) -> Step {
        match self.state {
            State::Forwarding(_) => self.fail(Failure::Origin(detail.to_owned())),
            _ => self.out_of_order("unreachable"),
        }
    }

    /// The origin did not answer within `ORIGIN_TIMEOUT`: no session change applies.
    pub fn timed_out(&mut self) -> Step {
        match (&self.state, self.cfg.origin_timeout) {
            (State::Forwarding(_), Some(secs)) => {
                self.fail(Failure::OriginTimeout(secs.saturating_mul(1000)))
            }
            _ => self.out_of_order("timed_out"),
        }
    }

    /// Applies `changes` to the session, then asks for what that takes: the calls to
    /// the user's objects, the tombstone, the KV writes, and finally the answer.
    pub(super) fn decide(
        &mut self,
        loaded: Loaded,
        changes: Changes,
        origin: OriginResponse,
    ) -> Step {
        let cfg = Rc::clone(&self.cfg);
        let (loaded, changes, planning) = self.before_changes(loaded, changes);
        let finished = session::finish(&cfg, loaded, changes, self.now, &mut self.entropy, self.kv);
        let outcome = match finished {
            Ok(o) => o,
            Err(FinishError::TooLarge { size })
                if matches!(self.purpose, Purpose::SignedIn { .. }) =>
            {
                return self.sign_in_too_large(size)
            }
            Err(FinishError::TooLarge { size }) => return self.fail(Failure::TooLarge(size)),
        };
        let offer = match (&self.purpose, &outcome.session) {
            (Purpose::Proxy { .. } | Purpose::SignedIn { .. }, Some(s))
                if outcome.set_cookie.is_some() =>
            {
                self.offer(s)
            }
            _ => None,
        };
        let users = self.users_plan(planning, &outcome);
        let mut writes = self.outcome_writes(outcome, origin);
        writes.users = users.calls;
        writes.if_refused = users.if_refused;
        writes.offer = offer;
        self.next_write(writes)
    }

    /// The KV writes and the cookie an [`session::Outcome`] decided, in the order they
    /// are made: the put first, so that a session that moves keys never exists nowhere;
    /// a revocation's tombstone before its record's deletion.
    pub(super) fn outcome_writes(
        &self,
        outcome: session::Outcome,
        origin: OriginResponse,
    ) -> Writes {
        let mut ops = VecDeque::new();
        let put = outcome.kv_put.is_some();
        if self.kv {
            let write = |step, revokes| Write { step, revokes };
            ops.extend(outcome.kv_put.map(|p| write(Step::KvPut(p), false)));
            for r in outcome.kv_revoke {
                ops.extend(revocation_steps(r).map(|step| write(step, true)));
            }
            ops.extend(
                outcome
                    .kv_delete
                    .into_iter()
                    .map(|key| write(Step::KvDelete { key }, false)),
            );
        }
        Writes {
            users: VecDeque::new(),
            if_refused: None,
            ops,
            set_cookie: outcome.set_cookie,
            put,
            tombstone: outcome.kv_check.filter(|_| self.kv),
            origin,
            offer: None,
            then: None,
        }
    }

    /// The tombstone looked at before a session's put: absent, the writes go ahead;
    /// present, the session was revoked (at another location, whose deletion has not
    /// reached this one yet, or while this request was at the origin), so it is not
    /// written, its record is deleted here too and the browser's cookie cleared. When a
    /// new id replaced it (`regenerate`), the page's other requests carry the old cookie
    /// for a moment: this one's answer leaves the cookie and the record's marker alone,
    /// since the browser holds the new cookie by now.
    pub(super) fn checked(
        &mut self,
        mut writes: Writes,
        found: Result<Option<String>, StoreError>,
    ) -> Step {
        match found {
            Ok(None) => self.next_write(writes),
            Ok(Some(tombstone)) => {
                // In flight: this request started within the minute after the
                // regenerate. Later, a record still there outlived its marker (whose
                // write failed): it ends like any revoked one, or it would stay
                // readable and never writable.
                let regenerated = session::record::regenerated_at(&tombstone)
                    .is_some_and(|at| self.now < at.saturating_add(session::REGENERATED_WINDOW));
                let reason = match regenerated {
                    true => "a new id replaced this session",
                    false => "a tombstone exists for this session",
                };
                self.log(Level::Warn, "session_revoked", json!({ "reason": reason }));
                // The record's put, or its deletion when the data moves into the cookie.
                let key = match writes.ops.pop_front().map(|w| w.step) {
                    Some(Step::KvPut(put)) => put.key,
                    Some(Step::KvDelete { key }) => key,
                    _ => return self.out_of_order("checked"),
                };
                writes.ops = match regenerated {
                    true => VecDeque::new(),
                    false => VecDeque::from([Write {
                        step: Step::KvDelete { key },
                        revokes: true,
                    }]),
                };
                writes.withdraw((!regenerated).then(|| session::clearing_cookie(&self.cfg)));
                // Nothing to refresh: the session is gone.
                if let Purpose::DeviceBound(b) = &mut self.purpose {
                    b.gone = true;
                }
                self.next_write(writes)
            }
            Err(e) => self.store_failed(writes, e),
        }
    }

    /// The result of the [`Step::KvPut`] or [`Step::KvDelete`] asked for: `Ok`, or the
    /// store's error message. After an error no more writes are asked for;
    /// `SESSION_KV_FAILURE` decides the answer.
    pub fn written(&mut self, result: Result<(), String>) -> Step {
        let State::Writing(mut writes) = mem::replace(&mut self.state, State::Done) else {
            return self.out_of_order("written");
        };
        match result {
            Ok(()) => {
                writes.ops.pop_front();
                writes.put = false;
                self.next_write(writes)
            }
            Err(detail) => {
                let op = match writes.ops.front().map(|w| &w.step) {
                    Some(Step::KvDelete { .. }) => StoreOp::Delete,
                    _ => StoreOp::Put,
                };
                self.store_failed(writes, StoreError { op, detail })
            }
        }
    }

    /// A store operation on the way to the answer failed. A revocation, or a logout,
    /// fails closed; otherwise `SESSION_KV_FAILURE` decides.
    pub(super) fn store_failed(&mut self, mut writes: Writes, e: StoreError) -> Step {
        let revoking = match e.op {
            StoreOp::Users => writes.users.front().is_some_and(|w| w.revokes),
            StoreOp::Get | StoreOp::Put | StoreOp::Delete => {
                writes.ops.front().is_some_and(|w| w.revokes)
            }
        };
        let proxy = matches!(self.purpose, Purpose::Proxy { .. });
        if proxy && !revoking && self.cfg.kv_failure == KvFailure::Open {
            self.log_open_failure(&e);
            if e.op == StoreOp::Users {
                // A check or a registration: the session is checked and registered on
                // its next check instead.
                writes.users.pop_front();
                return self.next_write(writes);
            }
            // Keep the browser's current cookie rather than point it at a record that
            // was never written, or move into the cookie an id whose tombstone could
            // not be read.
            if writes.put || e.op == StoreOp::Get {
                writes.set_cookie = None;
            }
            writes.ops.clear();
            return self.next_write(writes);
        }
        self.fail(Failure::Store(e))
    }

    /// Asks for the next write (which stays first in its queue until it is made), or
    /// for the answer once they are all made.
    pub(super) fn next_write(&mut self, mut writes: Writes) -> Step {
        if let Some(u) = writes.users.front() {
            let step = Step::Users(u.call.clone());
            self.state = State::Writing(writes);
            return step;
        }
        if let Some(key) = writes.tombstone.take() {
            self.state = State::Checking(writes);
            return Step::KvGet { key };
        }
        if let Some(op) = writes.ops.front() {
            let step = op.step.clone();
            self.state = State::Writing(writes);
            return step;
        }
        if let Some(later) = writes.then.take() {
            writes.users = later.users;
            writes.ops = later.ops;
            return self.next_write(writes);
        }
        match &self.purpose {
            Purpose::Logout { next } => {
                let sc = writes
                    .set_cookie
                    .unwrap_or_else(|| session::clearing_cookie(&self.cfg));
                Step::Reply(match next {
                    Some(n) => Reply::new(303, TEXT, "")
                        .with("location", n.as_str())
                        .with("set-cookie", sc),
                    None => Reply::new(204, TEXT, "").with("set-cookie", sc),
                })
            }
            Purpose::RevokeSession(_) => Step::Reply(Reply::new(204, TEXT, "")),
            Purpose::SignedIn { next, flow_cookie } => {
                let mut reply = Reply::new(303, TEXT, "").with("location", next.as_str());
                if let Some(sc) = writes.set_cookie {
                    reply = reply.with("set-cookie", sc);
                }
                if let Some(offer) = writes.offer {
                    reply = reply.with(crate::dbsc::REGISTRATION, offer);
                }
                let cleared = flow::set_cookie(self.cfg.cookie.secure, flow_cookie, None);
                Step::Reply(reply.with("set-cookie", cleared))
            }
            Purpose::DeviceBound(b) => {
                let body = match b.gone {
                    true => device::Bound::ended_json(&b.id),
                    false => b.json.clone(),
                };
                let mut reply = Reply::new(200, JSON, body);
                if let Some(sc) = writes.set_cookie {
                    reply = reply.with("set-cookie", sc);
                }
                if !b.gone {
                    reply = reply.with("set-cookie", b.short_cookie.clone());
                }
                Step::Reply(reply)
            }
            _ => {
                let OriginResponse {
                    strip,
                    cache_control,
                } = writes.origin;
                if strip.is_empty() && writes.set_cookie.is_none() {
                    return Step::Pass;
                }
                let cache_control = writes
                    .set_cookie
                    .as_ref()
                    .and_then(|_| private_cache_control(cache_control.as_deref()));
                Step::Rewrap(Rewrap {
                    strip,
                    set_cookie: writes.set_cookie,
                    cache_control,
                    offer: writes.offer,
                })
            }
        }
    }
}

/// The steps that end a session in KV: its tombstone, then its record's deletion or
/// overwrite.
pub(super) fn revocation_steps(r: session::Revocation) -> [Step; 2] {
    let record = match r.record {
        session::RecordEnd::Delete(key) => Step::KvDelete { key },
        session::RecordEnd::Regenerated(put) => Step::KvPut(put),
    };
    [Step::KvPut(r.tombstone), record]
}

/// Whether the origin's response came out of a cache (its control headers were meant
/// for whoever caused it to be stored, not for this client).
fn from_cache(h: &HeaderList<'_>) -> bool {
    h.get("age").is_some()
        || h.get("cf-cache-status").is_some_and(|v| {
            ["hit", "stale", "updating", "revalidated"]
                .iter()
                .any(|s| v.trim().eq_ignore_ascii_case(s))
        })
}

/// The `Cache-Control` for a response that carries keycard's `Set-Cookie`, so that no
/// shared cache stores it. An origin's `no-store` already says so and is kept as it is
/// (`None`); otherwise `private` replaces `public`, `s-maxage` and `proxy-revalidate`,
/// and the origin's other directives stay.
fn private_cache_control(origin: Option<&str>) -> Option<String> {
    let directives = || {
        origin
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
    };
    if directives().any(|d| d.eq_ignore_ascii_case("no-store")) {
        return None;
    }
    let mut out = String::from("private");
    for d in directives() {
        let name = d.split('=').next().unwrap_or("").trim();
        if ["public", "private", "s-maxage", "proxy-revalidate"]
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
        {
            continue;
        }
        out.push_str(", ");
        out.push_str(d);
    }
    Some(out)
}
