//! The exchange's side of sign-out everywhere ([`crate::users`]): when a request asks
//! the user's object, what it asks, and what it does with the answer.
//!
//! Nothing here runs without the users binding, and an anonymous session never causes
//! a call. A signed-in session is checked with its object before it is forwarded (or
//! inspected) when `SESSION_REVOCATION_CHECK` says so: always, or in `writes` mode on an
//! unsafe method, a required path or a due refresh. A revoked session is then forwarded
//! as `invalid` and ended like a destroyed one.
//!
//! After the origin's changes, the calls they take are made before anything else is
//! written: a sign-in (or `regenerate`) registers the new id and revokes the old one, a
//! sign-out revokes the session, and `destroy-others`, `destroy-all` and
//! `X-Session-Revoke` revoke what they name; a re-issued session is checked, even when
//! it was checked before it was forwarded. The object answers every call with whether its caller was revoked, so while
//! the session lives on, any call that finds it revoked (even one made after it was
//! checked, when a revocation raced the request) stops it from being issued: its cookie
//! is cleared instead. Revocations go to the user's object under every secret in the
//! ring (during a rotation a session may still be known only under an older one) and
//! fail closed whatever `SESSION_KV_FAILURE` says; checks and registrations follow it.

use std::mem;
use std::rc::Rc;

use serde_json::{json, Map, Value};

use super::writes::revocation_steps;
use super::{
    Exchange, Failure, Guarded, Level, Purpose, Reply, State, Step, StoreError, StoreOp, Write,
    Writes, JSON,
};
use crate::config::{Config, KvFailure};
use crate::crypto::keys::{Entropy, KeySet};
use crate::http::cross_origin;
use crate::session::{self, Changes, Loaded, Outcome, Revocation, SessionState, Status};
use crate::users::{Call, Caller, ObjectAnswer, Op, RevocationCheck, UsersCall, Which};

/// A call whose answer decides what comes next, before anything is written.
#[derive(Debug)]
pub(super) enum Ask {
    /// Before forwarding: is the session revoked, or bound? `revocation`: whether
    /// `SESSION_REVOCATION_CHECK` asked (else only its binding was unknown).
    Forward {
        loaded: Loaded,
        guarded: Guarded,
        revocation: bool,
    },
    /// Before the inspector is answered: is the session revoked?
    Inspect {
        loaded: Loaded,
        cookies: super::endpoints::CookieView,
    },
    /// Before one of keycard's endpoints acts as a signed-in session whose cookie
    /// names no device: is it bound (and so a copy from before binding)?
    Endpoint { loaded: Loaded },
    /// `GET sessions`: the list; `current` is the caller's key.
    List { current: String },
    /// `POST sessions/revoke`: the calls to every object, the first of them asked;
    /// the others follow as writes.
    Revoke { calls: Vec<UsersWrite> },
    /// A device's refresh: the session's binding, from the object under the ring's
    /// key `object` (the current key's first: [`super::device`]).
    Device {
        asked: super::device::Asked,
        session: Box<SessionState>,
        object: usize,
    },
}

/// What a write to a user's object is for, beside its call.
#[derive(Debug, Clone, Copy)]
struct Effect {
    /// It ends sessions: if it fails, the request fails closed.
    revokes: bool,
    /// Its answer says whether the session being issued was revoked.
    checks: bool,
}

/// A call to a user's object among the writes.
#[derive(Debug)]
pub(super) struct UsersWrite {
    pub call: UsersCall,
    /// It ends sessions: if it fails, the request fails closed.
    pub revokes: bool,
    /// Its answer says whether the session being issued was revoked.
    pub checks: bool,
    /// A device's refusal in its answer (a binding there already) refuses the request,
    /// even when it `checks` nothing else: a registration's binds in the objects of
    /// older secrets.
    pub refuses: bool,
    /// It revokes others (by handle, or all of them): the keys it revoked are then
    /// revoked in the user's other objects too, since during a rotation a session may
    /// be live in one object only, and handles differ from one object to the next.
    pub then_keys: Option<(String, Caller)>,
}

/// The session before the origin's changes, with its user (when signed in).
pub(super) struct Before {
    session: SessionState,
    user: Option<String>,
}

/// What planning the calls after the origin's changes starts from.
pub(super) struct Planning {
    before: Option<Before>,
    wanted: Wanted,
}

/// The sign-out-everywhere changes the origin asked for.
#[derive(Debug, Default)]
pub(super) struct Wanted {
    destroy_all: bool,
    destroy_others: bool,
    handles: Vec<String>,
}

impl Wanted {
    fn any(&self) -> bool {
        self.destroy_all || self.destroy_others || !self.handles.is_empty()
    }
}

/// What the origin's answer takes from the user's objects.
#[derive(Debug, Default)]
pub(super) struct UsersPlan {
    /// The calls, in order.
    pub calls: std::collections::VecDeque<UsersWrite>,
    /// What ends the session in KV, should a call find it revoked.
    pub if_refused: Option<Revocation>,
}

impl<E: Entropy> Exchange<E> {
    /// Whether a valid session must be checked with its user's object before it is
    /// forwarded (whether it is signed in is known only once its data is read).
    pub(super) fn check_due(&self, loaded: &Loaded, required: bool) -> bool {
        // A cookie that does not name a bound device may be a copy taken before
        // binding: only the user's object knows.
        self.binding_unknown(loaded) || self.revocation_due(loaded, required)
    }

    /// Whether `SESSION_REVOCATION_CHECK` asks for a valid session to be checked before
    /// it is forwarded (`required`: its path needs a signed-in user).
    fn revocation_due(&self, loaded: &Loaded, required: bool) -> bool {
        let Some(s) = loaded.session().filter(|_| self.users) else {
            return false;
        };
        match self.cfg.users.check {
            RevocationCheck::Always => true,
            RevocationCheck::Writes => {
                required
                    || !cross_origin::is_safe_method(&self.method)
                    || s.refresh_due(&self.cfg, self.now)
            }
        }
    }

    /// Whether `loaded` is a valid session whose cookie names no device, where the
    /// users' objects keep bindings: for all its cookie says, a copy taken before
    /// binding, which only its user's object can tell apart.
    pub(super) fn binding_unknown(&self, loaded: &Loaded) -> bool {
        self.users
            && loaded.session().is_some_and(|s| s.bound.is_none())
            && self.cfg.bindings_in_users()
    }

    /// `op` from `caller` to `user`'s object under `keys`.
    pub(super) fn call(&self, keys: &KeySet, user: &str, caller: &Caller, op: Op) -> UsersCall {
        let call = Call {
            now: self.now,
            horizon: self.now.saturating_add(self.cfg.absolute_timeout),
            caller: caller.clone(),
            op,
        };
        UsersCall {
            object: keys.users_object(user),
            call: Box::new(call),
        }
    }

    /// `op` from `caller` to every object `user` may have, one per secret in the ring
    /// (during a rotation a session may still be known only to the object named under
    /// an older one), as writes for `effect`.
    fn to_every_object(
        &self,
        user: &str,
        caller: &Caller,
        op: Op,
        effect: Effect,
        then_keys: Option<(String, Caller)>,
    ) -> Vec<UsersWrite> {
        self.cfg
            .keys
            .all()
            .map(|k| UsersWrite {
                call: self.call(k, user, caller, op.clone()),
                revokes: effect.revokes,
                checks: effect.checks,
                refuses: false,
                then_keys: then_keys.clone(),
            })
            .collect()
    }

    /// `See` from `caller` to `user`'s object under `keys`; `fresh`: the caller became
    /// this user's session in this request.
    pub(super) fn see(
        &self,
        keys: &KeySet,
        user: &str,
        caller: &Caller,
        replaces: Option<String>,
        fresh: bool,
    ) -> UsersCall {
        self.call(keys, user, caller, self.see_op(replaces, fresh, false))
    }

    /// `See` from a caller that has not proven its device (`Op::See`'s `unproven`).
    pub(super) fn see_unproven(&self, keys: &KeySet, user: &str, caller: &Caller) -> UsersCall {
        self.call(keys, user, caller, self.see_op(None, false, true))
    }

    fn see_op(&self, replaces: Option<String>, fresh: bool, unproven: bool) -> Op {
        Op::See {
            device: self.device.clone(),
            touch_after: self.cfg.refresh_after,
            replaces,
            follows: false,
            fresh,
            unproven,
        }
    }

    /// The check of a valid, signed-in session with the object named under the secret
    /// its cookie was signed with (during a rotation the session may not be known under
    /// the new one yet). `None` for an anonymous session.
    pub(super) fn check_of(
        &self,
        loaded: &Loaded,
        data: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Option<UsersCall> {
        let s = loaded.session()?;
        let user = user_of(&self.cfg, data?)?;
        let keys = self
            .cfg
            .keys
            .find(&s.kid)
            .map_or(self.cfg.keys.current(), |(keys, _)| keys);
        let caller = caller_of(&self.cfg, s);
        Some(match self.binding_unknown(loaded) {
            true => self.see_unproven(keys, &user, &caller),
            false => self.see(keys, &user, &caller, None, false),
        })
    }

    /// Asks the user's object whether a signed-in session is revoked, then forwards;
    /// an anonymous one is forwarded at once.
    pub(super) fn check_then_forward(&mut self, loaded: Loaded, guarded: Guarded) -> Step {
        let Some(call) = self.check_of(&loaded, guarded.data.as_ref()) else {
            return self.forward(loaded, guarded);
        };
        let revocation = self.revocation_due(&loaded, guarded.required);
        self.state = State::Asking(Ask::Forward {
            loaded,
            guarded,
            revocation,
        });
        Step::Users(call)
    }

    /// The inspector's answer; with the users binding, a signed-in session is checked
    /// first, whatever the check mode (the answer shows the session's data).
    pub(super) fn inspect(
        &mut self,
        loaded: Loaded,
        cookies: super::endpoints::CookieView,
    ) -> Step {
        let data = self
            .users
            .then(|| loaded.session().map(SessionState::data))
            .flatten();
        match self.check_of(&loaded, data.as_ref()) {
            Some(call) => {
                self.state = State::Asking(Ask::Inspect { loaded, cookies });
                Step::Users(call)
            }
            None => self.inspected(&loaded, &cookies, None),
        }
    }

    /// The inspector's answer; `ended` is what the session is once its object found it
    /// revoked (its cookie is cleared unless a `regenerate` replaced it a moment ago).
    fn inspected(
        &mut self,
        loaded: &Loaded,
        cookies: &super::endpoints::CookieView,
        ended: Option<Loaded>,
    ) -> Step {
        let shown = ended.as_ref().unwrap_or(loaded);
        let body = crate::exchange::endpoints::inspect_json(&self.cfg, shown, cookies, self.now);
        let mut reply = Reply::new(200, JSON, body);
        if matches!(ended, Some(Loaded::Bad(_))) {
            reply = reply.with("set-cookie", session::clearing_cookie(&self.cfg));
        }
        self.state = State::Done;
        Step::Reply(reply)
    }

    /// The answer of the user's object to a [`Step::Users`]: its JSON text, or the
    /// error's message.
    pub fn users_answered(&mut self, result: Result<String, String>) -> Step {
        let answer = result.and_then(|text| ObjectAnswer::parse(&text));
        match mem::replace(&mut self.state, State::Done) {
            State::Asking(ask) => match answer {
                Ok(a) => self.asked(ask, a),
                Err(detail) => self.ask_failed(
                    ask,
                    StoreError {
                        op: StoreOp::Users,
                        detail,
                    },
                ),
            },
            State::Writing(writes) if !writes.users.is_empty() => match answer {
                Ok(a) => self.users_written(writes, a),
                Err(detail) => self.store_failed(
                    writes,
                    StoreError {
                        op: StoreOp::Users,
                        detail,
                    },
                ),
            },
            _ => self.out_of_order("users_answered"),
        }
    }

    fn log_revoked(&mut self) {
        self.log(
            Level::Warn,
            "session_revoked",
            json!({ "reason": "its user's object revoked it" }),
        );
    }

    fn asked(&mut self, ask: Ask, answer: ObjectAnswer) -> Step {
        let revoked = answer.caller_revoked;
        if revoked {
            self.log_revoked();
        }
        match ask {
            Ask::Forward {
                loaded,
                guarded,
                revocation,
            } => match (revoked, loaded) {
                // Asked only for the binding (a read that `SESSION_REVOCATION_CHECK`
                // leaves unchecked): no session, but its cookie is left alone, as it was
                // unchecked. The page's reads in flight while the app regenerates the
                // session carry the old id, now revoked, and clearing it would clear
                // the new session's cookie.
                (true, Loaded::Valid(s)) if !revocation => {
                    self.forward(Loaded::Unproven(s.into()), guarded)
                }
                // The same, for a read that checks: revoked, but its cookie too may be
                // on its way back from before the new one arrived.
                (true, Loaded::Valid(_)) if answer.caller_regenerated => {
                    self.forward(Loaded::Regenerated, guarded)
                }
                (true, Loaded::Valid(s)) => {
                    self.revoked = Some(s);
                    self.forward(Loaded::Bad(Status::Invalid), guarded)
                }
                (_, loaded) => {
                    let loaded = self.bound_by_object(loaded, &answer);
                    self.forward(loaded, guarded)
                }
            },
            Ask::Inspect { loaded, cookies } => {
                let loaded = self.bound_by_object(loaded, &answer);
                let ended = match (revoked, answer.caller_regenerated) {
                    (false, _) => None,
                    (true, false) => Some(Loaded::Bad(Status::Invalid)),
                    (true, true) => Some(Loaded::Regenerated),
                };
                self.inspected(&loaded, &cookies, ended)
            }
            Ask::Device {
                asked,
                session,
                object,
            } => self.binding_answered(asked, *session, object, answer),
            // A revoked session goes on as it is: the endpoint's own calls find it so.
            Ask::Endpoint { loaded } => {
                let loaded = self.bound_by_object(loaded, &answer);
                self.dispatch(loaded, None)
            }
            // Its cookie is left alone when a `regenerate` replaced it a moment ago: the
            // page's requests in flight carry it, after the new one.
            Ask::List { .. } | Ask::Revoke { .. } if revoked => {
                self.session_required(!answer.caller_regenerated)
            }
            Ask::List { current } => Step::Reply(Reply::new(
                200,
                JSON,
                sessions_json(&self.cfg, &answer, &current, self.now),
            )),
            Ask::Revoke { calls } => {
                let mut calls = std::collections::VecDeque::from(calls);
                let first = calls.pop_front();
                let mut writes = Writes {
                    users: calls,
                    if_refused: None,
                    ops: Default::default(),
                    set_cookie: None,
                    put: false,
                    tombstone: None,
                    origin: Default::default(),
                    offer: None,
                    then: None,
                };
                if let Some(then) = first.and_then(|f| f.then_keys) {
                    self.follow_keys(&mut writes, then, answer.keys);
                }
                self.next_write(writes)
            }
        }
    }

    /// A session read again with the device its user's object says it is bound to.
    /// One whose cookie does not name it is a copy taken before binding, or the real
    /// browser's until its cookie is re-issued: either way it now needs the short-lived
    /// cookie. (One whose cookie names it gets the key the object keeps, which the
    /// inspector shows.)
    fn bound_by_object(&self, loaded: Loaded, answer: &ObjectAnswer) -> Loaded {
        match (loaded, &answer.bound) {
            (Loaded::Valid(mut s), Some(b)) if self.cfg.device_bound.is_some() => {
                s.bound = Some(b.clone());
                Loaded::Valid(s).proven(&self.cfg, &self.proofs, self.now)
            }
            (loaded, _) => loaded,
        }
    }

    /// The answer to the first of the writes' calls to users' objects.
    fn users_written(&mut self, mut writes: Writes, answer: ObjectAnswer) -> Step {
        let Some(done) = writes.users.pop_front() else {
            return self.out_of_order("users_written");
        };
        if done.checks && answer.caller_revoked {
            self.log_revoked();
            if let Purpose::DeviceBound(b) = &mut self.purpose {
                b.gone = true;
            }
            if answer.caller_regenerated {
                return self.left_alone(writes);
            }
            return self.not_issued(writes);
        }
        if let Some(r) = answer
            .device_refused
            .filter(|_| done.checks || done.refuses)
        {
            return self.object_refused(r);
        }
        if let Some(then) = done.then_keys {
            self.follow_keys(&mut writes, then, answer.keys);
        }
        self.next_write(writes)
    }

    /// After a revocation of others from `caller` to `user`'s object, the `keys` it
    /// revoked are revoked in the user's other objects too (there are others only
    /// during a rotation), next, before any call that could revoke the caller itself.
    fn follow_keys(
        &self,
        writes: &mut Writes,
        (user, caller): (String, Caller),
        keys: Vec<String>,
    ) {
        if keys.is_empty() || self.cfg.keys.all().count() < 2 {
            return;
        }
        let op = Op::Revoke {
            which: Which::Keys(keys),
        };
        let calls = self.to_every_object(
            &user,
            &caller,
            op,
            Effect {
                revokes: true,
                checks: false,
            },
            None,
        );
        for call in calls.into_iter().rev() {
            writes.users.push_front(call);
        }
    }

    /// A session that a `regenerate` replaced while this request was at the origin:
    /// nothing is written or issued, and the cookie is left alone, since the browser
    /// holds the new one by now (`Loaded::Regenerated`).
    fn left_alone(&mut self, mut writes: Writes) -> Step {
        writes.users.clear();
        writes.ops.clear();
        writes.tombstone = None;
        writes.withdraw(None);
        self.next_write(writes)
    }

    /// A session its user's object refused while it was being issued: nothing is
    /// issued, its record (if in KV) ends too, and the cookie is cleared.
    fn not_issued(&mut self, mut writes: Writes) -> Step {
        let kv = self.kv;
        writes.users.clear();
        writes.ops = writes
            .if_refused
            .take()
            .filter(|_| kv)
            .into_iter()
            .flat_map(revocation_steps)
            .map(|step| Write {
                step,
                revokes: true,
            })
            .collect();
        writes.tombstone = None;
        writes.withdraw(Some(session::clearing_cookie(&self.cfg)));
        self.next_write(writes)
    }

    /// The user's object could not be asked: a check before forwarding or inspecting
    /// follows `SESSION_KV_FAILURE` (`open` goes on as if it said "not revoked", but
    /// not as if it said "not bound": see [`Exchange::binding_unknown`]); the endpoints
    /// fail.
    fn ask_failed(&mut self, ask: Ask, e: StoreError) -> Step {
        let open = self.cfg.kv_failure == KvFailure::Open;
        match ask {
            // A session whose cookie names no device is not taken at its word: it may
            // be a copy from before binding, and only the object could tell. It goes
            // on as one the store could not read: nothing forwarded, nothing issued,
            // its cookie left alone.
            Ask::Forward {
                loaded, guarded, ..
            } if open && self.binding_unknown(&loaded) => {
                self.log_open_failure(&e);
                self.forward(Loaded::StoreUnavailable, guarded)
            }
            Ask::Forward {
                loaded, guarded, ..
            } if open => {
                self.log_open_failure(&e);
                self.forward(loaded, guarded)
            }
            Ask::Inspect { loaded, cookies } if open => {
                self.log_open_failure(&e);
                let loaded = match self.binding_unknown(&loaded) {
                    true => Loaded::StoreUnavailable,
                    false => loaded,
                };
                self.inspected(&loaded, &cookies, None)
            }
            _ => self.fail(Failure::Store(e)),
        }
    }

    /// `GET sessions` and `POST sessions/revoke`, once the session is loaded: both
    /// need a signed-in user.
    pub(super) fn sessions(&mut self, loaded: Loaded) -> Step {
        let cfg = Rc::clone(&self.cfg);
        let user = loaded.session().and_then(|s| user_of(&cfg, &s.data()));
        let (Some(user), Some(s)) = (user, loaded.session()) else {
            return self.session_required(matches!(loaded, Loaded::Bad(_)));
        };
        let caller = caller_of(&cfg, s);
        let target = match &self.purpose {
            Purpose::RevokeSession(h) => Some(h.clone()),
            _ => None,
        };
        match target {
            None => {
                let op = Op::List {
                    device: self.device.clone(),
                    touch_after: cfg.refresh_after,
                };
                let call = self.call(cfg.keys.current(), &user, &caller, op);
                self.state = State::Asking(Ask::List {
                    current: caller.key,
                });
                Step::Users(call)
            }
            // Ending one's own session is signing out.
            Some(h) if h == caller.handle => {
                self.purpose = Purpose::Logout { next: None };
                let destroy = Changes {
                    destroy: true,
                    ..Default::default()
                };
                self.decide(loaded, destroy, Default::default())
            }
            Some(h) => {
                let calls = self.revocations(&user, s, Which::Handles(vec![h]), false);
                let first = calls[0].call.clone();
                self.state = State::Asking(Ask::Revoke { calls });
                Step::Users(first)
            }
        }
    }

    /// The 401 of a `sessions` endpoint without a signed-in user; `clear` sends the
    /// clearing cookie (the session cookie was bad, or revoked).
    fn session_required(&mut self, clear: bool) -> Step {
        let mut reply = Reply::session_required(json!({}));
        if clear {
            reply = reply.with("set-cookie", session::clearing_cookie(&self.cfg));
        }
        self.state = State::Done;
        Step::Reply(reply)
    }

    /// Before the origin's changes apply: a session its object revoked ends like a
    /// destroyed one, whatever the origin said; an `X-Session-Revoke` that names the
    /// session itself destroys it. Without the users binding, the sign-out-everywhere
    /// changes cannot be honoured (`destroy-all` still ends this session), and the log
    /// says so.
    ///
    /// `None` when the changes take no call to a user's object: without the binding,
    /// for a revoked session, and for a request that changes nothing and re-issues
    /// nothing (most reads), which then costs no more than without the binding.
    pub(super) fn before_changes(
        &mut self,
        loaded: Loaded,
        mut changes: Changes,
    ) -> (Loaded, Changes, Option<Planning>) {
        if let Some(s) = self.revoked.take() {
            let destroy = Changes {
                destroy: true,
                ..Default::default()
            };
            return (Loaded::Valid(s), destroy, None);
        }
        let wanted = Wanted {
            destroy_all: changes.destroy_all,
            destroy_others: changes.destroy_others,
            handles: mem::take(&mut changes.revoke),
        };
        if !self.users {
            if wanted.any() {
                self.log(
                    Level::Error,
                    "users_unbound",
                    json!({ "problem": "destroy-others, destroy-all and X-Session-Revoke need SESSION_USERS_BINDING; destroy-all ended this session only" }),
                );
            }
            return (loaded, changes, None);
        }
        let quiet = changes == Changes::default()
            && !wanted.any()
            && loaded
                .session()
                .is_none_or(|s| !s.refresh_due(&self.cfg, self.now));
        if quiet {
            return (loaded, changes, None);
        }
        let before = loaded.session().map(|s| Before {
            user: user_of(&self.cfg, &s.data()),
            session: s.clone(),
        });
        if let Some(b) = &before {
            let own = self.cfg.keys.current().handle(&b.session.sid);
            changes.destroy |= wanted.handles.contains(&own);
        }
        (loaded, changes, Some(Planning { before, wanted }))
    }

    /// `which` from `s`, to every object of `user` (these calls fail closed); `checks`:
    /// whether their answers decide if the session is issued.
    fn revocations(
        &self,
        user: &str,
        s: &SessionState,
        which: Which,
        checks: bool,
    ) -> Vec<UsersWrite> {
        let caller = caller_of(&self.cfg, s);
        let others = matches!(which, Which::Handles(_) | Which::Others | Which::All);
        let then_keys = others.then(|| (user.to_owned(), caller.clone()));
        self.to_every_object(
            user,
            &caller,
            Op::Revoke { which },
            Effect {
                revokes: true,
                checks,
            },
            then_keys,
        )
    }

    /// What the origin's changes (already applied in `outcome`) take from the user's
    /// objects.
    pub(super) fn users_plan(
        &mut self,
        planning: Option<Planning>,
        outcome: &Outcome,
    ) -> UsersPlan {
        let mut plan = UsersPlan::default();
        let Some(Planning { before, wanted }) = planning else {
            return plan;
        };
        let cfg = Rc::clone(&self.cfg);
        plan.if_refused = before
            .as_ref()
            .and_then(|b| session::revoke(&cfg, &b.session, self.now, session::Ending::Revoked));
        let was = before
            .as_ref()
            .and_then(|b| b.user.as_deref().map(|u| (&b.session, u)));
        let Some(after) = &outcome.session else {
            if let Some((s, user)) = was {
                self.plan_ended(&mut plan, user, s, wanted);
            }
            return plan;
        };
        let user_after = match &before {
            Some(b) if b.session.data_b64 == after.data_b64 => b.user.clone(),
            _ => user_of(&cfg, &after.data()),
        };
        let reissued = outcome.set_cookie.is_some();
        let moved = before
            .as_ref()
            .is_some_and(|b| b.session.abs_exp != after.abs_exp);
        match user_after.as_deref() {
            Some(user) => {
                // A re-issue is checked again even when the session was checked before
                // it was forwarded: a revocation may have raced the request. A moved
                // lifetime is told.
                let tell = reissued || moved;
                self.plan_signed_in(&mut plan, user, after, was, tell);
                if wanted.destroy_others {
                    plan.calls
                        .extend(self.revocations(user, after, Which::Others, true));
                }
                if !wanted.handles.is_empty() {
                    let handles = Which::Handles(wanted.handles);
                    plan.calls
                        .extend(self.revocations(user, after, handles, true));
                }
            }
            None => {
                if let Some((s, old_user)) = was {
                    // No longer signed in: after `regenerate` the old id ends; otherwise
                    // the session lives on anonymous and only leaves the device list.
                    // Either way, an answer that it was revoked stops it.
                    let new_id = s.sid != after.sid;
                    let op = match new_id {
                        true => Op::Revoke {
                            which: Which::Caller,
                        },
                        false => Op::Forget,
                    };
                    let caller = caller_of(&cfg, s);
                    let calls = self.to_every_object(
                        old_user,
                        &caller,
                        op,
                        Effect {
                            revokes: new_id,
                            checks: true,
                        },
                        None,
                    );
                    plan.calls.extend(calls);
                }
                self.log_unsigned(&wanted);
            }
        }
        plan
    }

    /// A signed-in session that ended (destroy, Max-Age 0 or destroy-all). The sessions
    /// named by handle first: a caller already revoked can revoke nothing.
    fn plan_ended(&self, plan: &mut UsersPlan, user: &str, s: &SessionState, wanted: Wanted) {
        if !wanted.handles.is_empty() {
            let handles = Which::Handles(wanted.handles);
            plan.calls.extend(self.revocations(user, s, handles, false));
        }
        let which = match wanted.destroy_all || wanted.destroy_others {
            true => Which::All,
            false => Which::Caller,
        };
        plan.calls.extend(self.revocations(user, s, which, false));
    }

    /// A session signed in as `user` after the origin's changes: `was` is it before,
    /// with its user, if it was signed in; `tell`, whether the object must hear of it
    /// even if nothing else changed (a re-issue not checked yet, a moved lifetime).
    fn plan_signed_in(
        &self,
        plan: &mut UsersPlan,
        user: &str,
        after: &SessionState,
        was: Option<(&SessionState, &str)>,
        tell: bool,
    ) {
        let cfg = &self.cfg;
        let current = cfg.keys.current();
        let same_user = was.is_some_and(|(_, u)| u == user);
        let new_id = was.is_none_or(|(s, _)| s.sid != after.sid);
        let mut push = |call, revokes| {
            plan.calls.push_back(UsersWrite {
                call,
                revokes,
                checks: true,
                refuses: false,
                then_keys: None,
            })
        };
        // The object judges a session by when it began: an `X-Session-Max-Age` in this
        // request must not make it look younger than the last `destroy-others`.
        let mut caller = caller_of(cfg, after);
        if let Some((s, _)) = was.filter(|_| !new_id) {
            caller.created = caller.created.min(s.created);
        }
        let fresh = new_id || !same_user;
        if new_id && same_user {
            // `regenerate`: the new id is registered and the old one revoked, in one
            // call, which refuses if the old one was revoked already, and remembers for
            // a minute that it was replaced. In every object of the ring: during a
            // rotation the page's requests in flight with the old cookie are checked
            // with the object under the secret that cookie was signed with.
            let old = was.map(|(s, _)| s.sid.digest());
            for k in cfg.keys.all() {
                push(self.see(k, user, &caller, old.clone(), true), true);
            }
        } else if fresh {
            // Signed in without a new id: registered in every object of the ring too.
            // An object under an older secret that never heard of the sign-in judges
            // the session by when it began, and would take it for one that its last
            // `destroy-others` ended.
            for k in cfg.keys.all() {
                push(self.see(k, user, &caller, None, true), false);
            }
        } else if tell {
            // Re-issued under the current secret after a rotation: the object under the
            // secret it was signed with is asked first, since a revocation that raced
            // this request may be known there only.
            let previous = was
                .filter(|(s, _)| s.kid != current.kid())
                .and_then(|(s, _)| cfg.keys.find(&s.kid));
            if let Some((keys, _)) = previous {
                push(self.see(keys, user, &caller, None, false), false);
            }
            push(self.see(current, user, &caller, None, false), false);
        }
        // The id before, in another user's objects.
        if let Some((s, old_user)) = was.filter(|_| !same_user) {
            let caller = caller_of(cfg, s);
            let (op, revokes) = match new_id {
                true => (
                    Op::Revoke {
                        which: Which::Caller,
                    },
                    true,
                ),
                false => (Op::Forget, false),
            };
            for k in cfg.keys.all() {
                push(self.call(k, old_user, &caller, op.clone()), revokes);
            }
        }
    }

    fn log_unsigned(&mut self, wanted: &Wanted) {
        if wanted.any() {
            self.log(
                Level::Warn,
                "control_ignored",
                json!({ "reason": "destroy-others and X-Session-Revoke need a signed-in session" }),
            );
        }
    }
}

// What a request tells its user's object, in the object's terms: who is calling, for
// which user, and the device list it answers.

/// The user a session's `data` names, if it is signed in
/// ([`Guards::user_name`](crate::guard::Guards::user_name)).
pub(super) fn user_of(cfg: &Config, data: &Map<String, Value>) -> Option<String> {
    cfg.guards.user_name(data)
}

/// Who `s` is to its user's object.
pub(super) fn caller_of(cfg: &Config, s: &SessionState) -> Caller {
    Caller {
        key: s.sid.digest(),
        handle: cfg.keys.current().handle(&s.sid),
        created: s.created,
        expires: s.abs_exp,
    }
}

/// The `GET sessions` body: the user's live sessions, the one signed in last first,
/// without those idle past `SESSION_IDLE_TIMEOUT`. Whether a session is bound is the
/// object's to say only where it keeps bindings: with `SESSION_STORE=kv` they are in
/// the sessions' records, which a list does not read, so it says `null` (not known)
/// rather than `false`; with device-bound sessions off, none is bound.
fn sessions_json(cfg: &Config, answer: &ObjectAnswer, current: &str, now: u64) -> String {
    let (off, kept_here) = (cfg.device_bound.is_none(), cfg.bindings_in_users());
    let sessions: Vec<Value> = answer
        .sessions
        .iter()
        .rev()
        .filter(|e| e.last_seen.saturating_add(cfg.idle_timeout) > now)
        .map(|e| {
            // The binding as far as the object knows it: `None` when it cannot.
            let bound = match (off, kept_here) {
                (true, _) => Some(None),
                (false, true) => Some(e.bound.as_ref()),
                (false, false) => None,
            };
            json!({
                "id": e.handle,
                "created": e.created,
                "last_seen": e.last_seen,
                "current": e.key == current,
                "agent": e.device.agent,
                "country": e.device.country,
                "device_bound": bound.map(|b| b.is_some()),
                "bound_expires": bound.flatten().map(|b| b.until).filter(|u| *u > 0),
            })
        })
        .collect();
    json!({ "sessions": sessions }).to_string()
}
