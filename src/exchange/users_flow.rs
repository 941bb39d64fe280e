//! The exchange's side of sign-out everywhere ([`crate::users`]): when a request asks
//! the user's object, what it asks, and what it does with the answer.
//!
//! Nothing here runs without the users binding, and an anonymous session never causes
//! a call. A signed-in session is checked with its object:
//!
//! - before it is forwarded, when `SESSION_REVOCATION_CHECK` says so (always, or in
//!   `writes` mode on an unsafe method, a required path, or a due refresh); a revoked
//!   session is then forwarded as `invalid` and ended like a destroyed one;
//! - before its cookie is re-issued, when that did not happen yet; a revoked session is
//!   then not issued but cleared.
//!
//! After the origin's changes: a sign-in (or `regenerate`) registers the new id and
//! revokes the old one, a sign-out revokes the session, and `destroy-others`,
//! `destroy-all` and `X-Session-Revoke` revoke what they name. Revocations go to the
//! user's object under every secret in the ring (during a rotation a session may still
//! be known only under an older one) and fail closed whatever `SESSION_KV_FAILURE`
//! says; checks and registrations follow it.

use std::mem;
use std::rc::Rc;

use serde_json::json;

use super::{
    Exchange, Failure, Guarded, Level, Purpose, Reply, State, Step, StoreError, Write, Writes, JSON,
};
use crate::config::KvFailure;
use crate::control::Changes;
use crate::cross_origin;
use crate::keys::{Entropy, KeySet};
use crate::session::{self, Loaded, Outcome, Revocation, Session, Status};
use crate::users::{self, Op, RevocationCheck, UsersCall, Which};

/// A call whose answer decides what comes next.
#[derive(Debug)]
pub(super) enum Ask {
    /// Before forwarding: is the session revoked? `current`: the object asked is the
    /// one under the current secret.
    Forward {
        loaded: Loaded,
        guarded: Guarded,
        current: bool,
    },
    /// Before the writes that re-issue the session: is it revoked? If so, its KV
    /// record (if any) is revoked instead.
    Writes {
        writes: Writes,
        revocation: Option<Revocation>,
    },
    /// `GET sessions`: the list; `current` is the caller's key.
    List { current: String },
    /// `POST sessions/revoke`: the call to the first object; the calls to the others
    /// follow as writes.
    Revoke { rest: Vec<UsersCall> },
}

/// The session before the origin's changes, with its user (when signed in).
pub(super) struct Before {
    session: Session,
    user: Option<String>,
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
    /// The check before the session's cookie is issued.
    pub check: Option<UsersCall>,
    /// What ends the session in KV, should the check find it revoked.
    pub revocation: Option<Revocation>,
    /// The calls to make with the writes; `true` for those that revoke.
    pub calls: Vec<(UsersCall, bool)>,
}

impl<E: Entropy> Exchange<E> {
    /// Whether a valid session must be checked with its user's object before it is
    /// forwarded (whether it is signed in is known only once its data is read).
    pub(super) fn check_due(&self, loaded: &Loaded, required: bool) -> bool {
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

    /// `See` from `s` to `user`'s object under `keys`.
    fn see(&self, keys: &KeySet, user: &str, s: &Session, replaces: Option<String>) -> UsersCall {
        let op = Op::See {
            device: self.device.clone(),
            touch_after: self.cfg.refresh_after,
            replaces,
        };
        users::call(keys, user, &users::caller(&self.cfg, s), op, self.now)
    }

    /// Asks the user's object whether a signed-in session is revoked, then forwards;
    /// an anonymous one is forwarded at once.
    pub(super) fn check_then_forward(&mut self, loaded: Loaded, guarded: Guarded) -> Step {
        let cfg = Rc::clone(&self.cfg);
        let user = guarded.data.as_ref().and_then(|d| users::user_of(&cfg, d));
        let (Some(user), Some(s)) = (user, loaded.session()) else {
            return self.forward(loaded, guarded);
        };
        // The object named under the secret the cookie was signed with: during a
        // rotation the session may not be known under the new one yet.
        let (keys, current) = cfg.keys.find(&s.kid).unwrap_or((cfg.keys.current(), true));
        let call = self.see(keys, &user, s, None);
        self.state = State::Asking(Ask::Forward {
            loaded,
            guarded,
            current,
        });
        Step::Users(call)
    }

    /// The answer of the user's object to a [`Step::Users`]: its JSON text, or the
    /// error's message.
    pub fn users_answered(&mut self, result: Result<String, String>) -> Step {
        match mem::replace(&mut self.state, State::Done) {
            State::Asking(ask) => self.asked(ask, result),
            state @ State::Writing(_) => {
                self.state = state;
                self.written(result.map(|_| ()))
            }
            _ => self.out_of_order("users_answered"),
        }
    }

    fn asked(&mut self, ask: Ask, result: Result<String, String>) -> Step {
        let answer = result.and_then(|text| users::Answer::parse(&text));
        let answer = match answer {
            Ok(a) => a,
            Err(detail) => {
                return self.ask_failed(
                    ask,
                    StoreError {
                        op: "users",
                        detail,
                    },
                )
            }
        };
        let revoked = answer.caller_revoked;
        if revoked {
            self.log(
                Level::Warn,
                "session_revoked",
                json!({ "reason": "its user's object revoked it" }),
            );
        }
        match ask {
            Ask::Forward {
                loaded,
                guarded,
                current,
            } => match (revoked, loaded) {
                (true, Loaded::Valid(s)) => {
                    self.revoked = Some(s);
                    let guarded = Guarded {
                        data: None,
                        ..guarded
                    };
                    self.forward(Loaded::Bad(Status::Invalid), guarded)
                }
                (_, loaded) => {
                    self.seen = current;
                    self.forward(loaded, guarded)
                }
            },
            Ask::Writes { writes, .. } if !revoked => self.proceed(writes),
            Ask::Writes { writes, revocation } => self.not_issued(writes, revocation),
            Ask::List { .. } | Ask::Revoke { .. } if revoked => self.session_required(true),
            Ask::List { current } => Step::Reply(Reply::new(
                200,
                JSON,
                users::sessions_json(&self.cfg, &answer, &current, self.now),
            )),
            Ask::Revoke { rest } => {
                let ops = rest.into_iter().map(|call| Write {
                    step: Step::Users(call),
                    revokes: true,
                });
                self.next_write(Writes {
                    ops: ops.collect(),
                    set_cookie: None,
                    put: false,
                    tombstone: None,
                    origin: Default::default(),
                })
            }
        }
    }

    /// A re-issue that its user's object refused: nothing is issued, the session's
    /// record (if in KV) ends too, and the cookie is cleared.
    fn not_issued(&mut self, mut writes: Writes, revocation: Option<Revocation>) -> Step {
        let kv = self.kv;
        writes.ops = revocation
            .filter(|_| kv)
            .into_iter()
            .flat_map(|r| [Step::KvPut(r.tombstone), Step::KvDelete { key: r.record }])
            .map(|step| Write {
                step,
                revokes: true,
            })
            .collect();
        writes.put = false;
        writes.tombstone = None;
        writes.set_cookie = Some(session::clearing_cookie(&self.cfg));
        self.next_write(writes)
    }

    /// The user's object could not be asked: a check follows `SESSION_KV_FAILURE`
    /// (`open` goes on as if it said "not revoked"); the endpoints fail.
    fn ask_failed(&mut self, ask: Ask, e: StoreError) -> Step {
        let open = self.cfg.kv_failure == KvFailure::Open;
        match ask {
            Ask::Forward {
                loaded, guarded, ..
            } if open => {
                self.log_open_failure(&e);
                self.forward(loaded, guarded)
            }
            Ask::Writes { writes, .. } if open => {
                self.log_open_failure(&e);
                self.proceed(writes)
            }
            _ => self.fail(Failure::Store(e)),
        }
    }

    /// `GET sessions` and `POST sessions/revoke`, once the session is loaded: both
    /// need a signed-in user.
    pub(super) fn sessions(&mut self, loaded: Loaded) -> Step {
        let cfg = Rc::clone(&self.cfg);
        let user = loaded
            .session()
            .and_then(|s| users::user_of(&cfg, &s.data()));
        let (Some(user), Some(s)) = (user, loaded.session()) else {
            return self.session_required(matches!(loaded, Loaded::Bad(_)));
        };
        let caller = users::caller(&cfg, s);
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
                let call = users::call(cfg.keys.current(), &user, &caller, op, self.now);
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
                let op = Op::Revoke {
                    which: Which::Handles(vec![h]),
                };
                let mut calls = users::to_every_object(&cfg, &user, &caller, &op, self.now);
                let first = calls.remove(0);
                self.state = State::Asking(Ask::Revoke { rest: calls });
                Step::Users(first)
            }
        }
    }

    /// The 401 of a `sessions` endpoint without a signed-in user; `clear` sends the
    /// clearing cookie (the session cookie was bad, or revoked).
    fn session_required(&mut self, clear: bool) -> Step {
        let mut reply = Reply::new(
            401,
            JSON,
            json!({ "error": "session_required" }).to_string(),
        );
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
    pub(super) fn before_changes(
        &mut self,
        loaded: Loaded,
        mut changes: Changes,
    ) -> (Loaded, Changes, Option<Before>, Wanted) {
        if let Some(s) = self.revoked.take() {
            let destroy = Changes {
                destroy: true,
                ..Default::default()
            };
            return (Loaded::Valid(s), destroy, None, Wanted::default());
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
            return (loaded, changes, None, Wanted::default());
        }
        let before = loaded.session().map(|s| Before {
            user: users::user_of(&self.cfg, &s.data()),
            session: s.clone(),
        });
        if let Some(b) = &before {
            let own = self.cfg.keys.current().handle(&b.session.sid);
            changes.destroy |= wanted.handles.contains(&own);
        }
        (loaded, changes, before, wanted)
    }

    /// What the origin's changes (already applied in `outcome`) take from the user's
    /// objects.
    pub(super) fn users_plan(
        &mut self,
        before: Option<Before>,
        outcome: &Outcome,
        wanted: Wanted,
    ) -> UsersPlan {
        let mut plan = UsersPlan::default();
        if !self.users {
            return plan;
        }
        let cfg = Rc::clone(&self.cfg);
        let signed_in_before = before
            .as_ref()
            .and_then(|b| b.user.as_deref().map(|u| (&b.session, u)));
        let Some(after) = &outcome.session else {
            // Ended: destroy, Max-Age 0 or destroy-all.
            if let Some((s, user)) = signed_in_before {
                let which = match wanted.destroy_all || wanted.destroy_others {
                    true => Which::All,
                    false => Which::Caller,
                };
                self.revoke_everywhere(&mut plan, user, s, which);
                if !wanted.handles.is_empty() {
                    self.revoke_everywhere(&mut plan, user, s, Which::Handles(wanted.handles));
                }
            }
            return plan;
        };
        let user_after = match &before {
            Some(b) if b.session.data_b64 == after.data_b64 => b.user.clone(),
            _ => users::user_of(&cfg, &after.data()),
        };
        let new_id = before.as_ref().is_none_or(|b| b.session.sid != after.sid);
        match (user_after.as_deref(), signed_in_before) {
            (Some(user), was) => {
                let reissued = outcome.set_cookie.is_some();
                self.plan_signed_in(&mut plan, user, after, was, new_id, reissued);
                if wanted.destroy_others {
                    self.revoke_everywhere(&mut plan, user, after, Which::Others);
                }
                if !wanted.handles.is_empty() {
                    self.revoke_everywhere(&mut plan, user, after, Which::Handles(wanted.handles));
                }
            }
            (None, Some((s, old_user))) => {
                // No longer signed in: after `regenerate` the old id ends; otherwise the
                // session lives on anonymous and only leaves the device list.
                let (op, revokes) = match new_id {
                    true => (
                        Op::Revoke {
                            which: Which::Caller,
                        },
                        true,
                    ),
                    false => (Op::Forget, false),
                };
                let caller = users::caller(&cfg, s);
                let calls = users::to_every_object(&cfg, old_user, &caller, &op, self.now);
                plan.calls.extend(calls.into_iter().map(|c| (c, revokes)));
                self.log_unsigned(&wanted);
            }
            (None, None) => self.log_unsigned(&wanted),
        }
        plan
    }

    /// A session signed in as `user` after the origin's changes: `was` is it before
    /// (with its user) if it was signed in; `new_id`, whether its id is new in this
    /// request.
    fn plan_signed_in(
        &self,
        plan: &mut UsersPlan,
        user: &str,
        after: &Session,
        was: Option<(&Session, &str)>,
        new_id: bool,
        reissued: bool,
    ) {
        let cfg = &self.cfg;
        let same_user = was.is_some_and(|(_, u)| u == user);
        if new_id {
            // A sign-in, or `regenerate`: the new id is registered (it cannot have been
            // revoked) and the old one ends, in the same call when the user is the same.
            let old = was.filter(|_| same_user).map(|(s, _)| s.sid.digest());
            let revokes = old.is_some();
            plan.calls
                .push((self.see(cfg.keys.current(), user, after, old), revokes));
            if let Some((s, old_user)) = was {
                // ... and in every other object of its user.
                let caller = users::caller(cfg, s);
                let op = Op::Revoke {
                    which: Which::Caller,
                };
                let current = cfg.keys.current().kid();
                for k in cfg.keys.all().filter(|k| !same_user || k.kid() != current) {
                    let call = users::call(k, old_user, &caller, op.clone(), self.now);
                    plan.calls.push((call, true));
                }
            }
        } else if !same_user || (reissued && !self.seen) {
            // Signed in just now, or re-issued without a check yet: the check also
            // registers it.
            plan.check = Some(self.see(cfg.keys.current(), user, after, None));
            plan.revocation = session::revoke(cfg, after, self.now);
        }
    }

    /// `which` from `s`, to every object of `user`; these calls fail closed.
    fn revoke_everywhere(&self, plan: &mut UsersPlan, user: &str, s: &Session, which: Which) {
        let caller = users::caller(&self.cfg, s);
        let op = Op::Revoke { which };
        let calls = users::to_every_object(&self.cfg, user, &caller, &op, self.now);
        plan.calls.extend(calls.into_iter().map(|c| (c, true)));
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
