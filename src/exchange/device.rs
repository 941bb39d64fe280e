//! Device-bound sessions (`KEYCARD_DEVICE_BOUND`, [`crate::dbsc`]): the registration and
//! refresh endpoints, and the offer of binding on a response that issues a cookie.
//!
//! - `POST {prefix}dbsc/register` with a `Secure-Session-Response` proof: the challenge
//!   must be one keycard gave this session, and the proof's signature (WebCrypto, a
//!   [`Step::Verify`]) the key it brings. The session then gets a new id, as
//!   `regenerate` gives one, so that every copy of its cookie from before binding ends
//!   with the old id, and the key is bound to it where every copy of its cookie is
//!   checked ([`BindingKept`](crate::config::BindingKept)): in its KV record, or in its
//!   user's objects, with the key's thumbprint in the new cookie (a signed-in cookie
//!   without it is checked with the object on every request). Every copy of the new
//!   cookie is worth nothing without the short-lived cookie. The answer is the session
//!   configuration and the short-lived cookie.
//! - `POST {prefix}dbsc/refresh` with `Sec-Secure-Session-Id`: without a proof, a 403
//!   with a challenge; with one signed by the bound key for a fresh challenge, a new
//!   short-lived cookie. A session that is gone, or not bound, is told `continue: false`
//!   so that the browser stops refreshing it.
//!
//! Where the users' objects keep bindings, a refresh reads the binding from the object
//! under the current secret, or else under an older one of the ring (and then copies it
//! under the current one), and the object, the one place every location asks, decides
//! that no challenge is answered twice.
//!
//! These endpoints are authenticated by their proofs, so the cross-origin check does not
//! apply to them. Every refusal is a 4xx with a log line naming the reason.

use serde_json::json;
use users_flow::{caller_of, user_of, UsersWrite};

use super::*;
use crate::crypto::keys::{Entropy, SessionId};
use crate::dbsc::{self, challenge, proof, short_cookie, wire};
use crate::http::headers::HeaderList;
use crate::session::{record, Binding, FinishError};
use crate::users::{DeviceRefusal, ObjectAnswer, Op};

/// What the registration or refresh endpoint was asked.
#[derive(Debug)]
pub(super) enum Asked {
    /// A registration, with its proof if any.
    Register(Option<String>),
    /// A refresh: the session it names, and its proof if any.
    Refresh(Option<String>, Option<String>),
}

impl Asked {
    /// What the endpoint `ep` (registration or refresh) is asked by these headers.
    pub(super) fn of(ep: &Endpoint, h: &HeaderList<'_>) -> Asked {
        let proof = h.get(dbsc::RESPONSE).map(str::to_owned);
        match ep {
            Endpoint::DeviceRegister => Asked::Register(proof),
            _ => Asked::Refresh(h.get(dbsc::SESSION_ID).map(str::to_owned), proof),
        }
    }
}

/// A proof whose signature the driver is checking.
#[derive(Debug)]
pub(super) struct Proving {
    session: SessionState,
    /// The session's identifier, as the browser knows it: its handle.
    handle: String,
    key: proof::BoundKey,
    challenge_ms: u64,
    how: How,
}

/// What kind of proof, and, where the users' objects keep bindings, where.
#[derive(Debug, Clone, Copy)]
struct How {
    registering: bool,
    /// The place in the ring of the key whose user's object holds the binding.
    object: usize,
    /// A refresh's session cookie does not name the bound key: it is re-issued. (A
    /// registration always issues a new cookie, under a new id.)
    reissue: bool,
}

/// The answer of a registration or refresh, once its writes are made.
#[derive(Debug)]
pub(super) struct Bound {
    pub(super) json: String,
    pub(super) short_cookie: String,
    /// The session's identifier, as the browser knows it.
    pub(super) id: String,
    /// The session turned out to be ended (its tombstone): the browser is told to stop.
    pub(super) gone: bool,
}

impl Bound {
    /// `continue: false` for the session the browser knows as `id`.
    pub(super) fn ended_json(id: &str) -> String {
        json!({ "session_identifier": id, "continue": false }).to_string()
    }
}

impl<E: Entropy> Exchange<E> {
    /// A registration or refresh asked for: the session is loaded first.
    pub(super) fn device_asked(
        &mut self,
        ep: &Endpoint,
        req: &Incoming<'_>,
        cookie: Option<&str>,
    ) -> Step {
        self.purpose = Purpose::Device(Asked::of(ep, &req.headers));
        self.load(cookie, None)
    }

    /// A registration or refresh, once the session is loaded.
    pub(super) fn device(&mut self, asked: Asked, loaded: Loaded) -> Step {
        // A refresh comes without a valid short-lived cookie: renewing it is the point.
        let session = match (loaded, &asked) {
            (Loaded::Valid(s), _) => s,
            (Loaded::Unproven(s), Asked::Refresh(..)) => *s,
            (Loaded::Unproven(_), Asked::Register(_)) => {
                return self.refused(400, "the session is bound already")
            }
            // Not knowing is not "gone": the browser must keep its binding.
            (Loaded::StoreUnavailable, _) => {
                return self.fail(Failure::Store(StoreError {
                    op: StoreOp::Get,
                    detail: "the session's record could not be read to check its device".into(),
                }))
            }
            // A bad cookie is cleared, as any request clears it.
            (other, _) => return self.device_ended(&asked, matches!(other, Loaded::Bad(_))),
        };
        if !self.cfg.bindings_in_users() {
            let how = How {
                registering: matches!(asked, Asked::Register(_)),
                object: 0,
                reissue: false,
            };
            return self.device_for(asked, session, how);
        }
        // Only a signed-in session has a user's object to keep its binding.
        match (&asked, user_of(&self.cfg, &session.data())) {
            (Asked::Register(_), None) => self.refused(400, "the session is not signed in"),
            (Asked::Refresh(..), None) => self.device_ended(&asked, session.bound.is_some()),
            (Asked::Register(_), Some(_)) => {
                let how = How {
                    registering: true,
                    object: 0,
                    reissue: false,
                };
                self.device_for(asked, session, how)
            }
            (Asked::Refresh(..), Some(_)) => self.ask_binding(asked, session, 0),
        }
    }

    /// Asks the user's object under the ring's key `object` for the session's binding.
    fn ask_binding(&mut self, asked: Asked, session: SessionState, object: usize) -> Step {
        let cfg = Rc::clone(&self.cfg);
        let (Some(keys), Some(user)) = (cfg.keys.all().nth(object), user_of(&cfg, &session.data()))
        else {
            return self.device_ended(&asked, session.bound.is_some());
        };
        // Not proven yet: a refresh is asked for by whoever holds the cookie.
        let call = self.see_unproven(keys, &user, &caller_of(&cfg, &session));
        self.state = State::Asking(users_flow::Ask::Device {
            asked,
            session: Box::new(session),
            object,
        });
        Step::Users(call)
    }

    /// The binding the object under the ring's key `object` holds, if any: without one,
    /// the next object's, and without any, the session is not bound.
    pub(super) fn binding_answered(
        &mut self,
        asked: Asked,
        mut session: SessionState,
        object: usize,
        answer: ObjectAnswer,
    ) -> Step {
        if answer.caller_revoked {
            // Not cleared when a `regenerate` replaced it a moment ago: a refresh in
            // flight with the old cookie, whose answer arrives after the new one.
            return self.device_ended(&asked, !answer.caller_regenerated);
        }
        match answer.bound {
            Some(b) => {
                // A cookie that names no device, or another than the object binds (a
                // race can write one back), is re-issued naming this one.
                let how = How {
                    registering: false,
                    object,
                    reissue: session.bound.as_ref().map(|m| &m.thumbprint) != Some(&b.thumbprint),
                };
                session.bound = Some(b);
                self.device_for(asked, session, how)
            }
            None if object + 1 < self.cfg.keys.all().count() => {
                self.ask_binding(asked, session, object + 1)
            }
            None => self.device_ended(&asked, session.bound.is_some()),
        }
    }

    /// A registration or refresh, with the session's binding known.
    fn device_for(&mut self, asked: Asked, session: SessionState, how: How) -> Step {
        match asked {
            Asked::Register(_) if session.bound.is_some() => {
                self.refused(400, "the session is bound already")
            }
            Asked::Register(None) => self.refused(400, "the registration has no proof"),
            Asked::Register(Some(token)) => {
                let handle = self.cfg.keys.current().handle(&session.sid);
                match proof::registration(&token) {
                    Err(why) => self.refused(400, why),
                    Ok(p) => self.check_proof(session, p, &handle, 0, how),
                }
            }
            Asked::Refresh(id, token) => {
                let Some(bound) = session.bound.clone() else {
                    return self.device_ended(&Asked::Refresh(id, token), false);
                };
                // The session's handle under any key of the ring: a secret's rotation
                // must not end a binding.
                let named = id.as_deref().and_then(wire::session_id);
                let handle = self
                    .cfg
                    .keys
                    .all()
                    .map(|k| k.handle(&session.sid))
                    .find(|h| Some(h.as_str()) == named);
                let Some(handle) = handle else {
                    return self.refused(400, "Sec-Secure-Session-Id does not name this session");
                };
                match token {
                    None => {
                        let now_ms = (self.now * 1000).max(bound.last_ms + 1);
                        let c = challenge::mint(&self.cfg.keys, &handle, now_ms, &mut self.entropy);
                        Step::Reply(
                            Reply::opaque(403, "keycard: sign this challenge")
                                .with(dbsc::CHALLENGE, wire::challenge(&c, &handle)),
                        )
                    }
                    Some(t) => match bound
                        .key()
                        .ok_or("the bound key does not read")
                        .and_then(|k| proof::refresh(&t, &k))
                    {
                        Err(why) => self.refused(400, why),
                        Ok(p) => self.check_proof(session, p, &handle, bound.last_ms, how),
                    },
                }
            }
        }
    }

    /// The proof's challenge, then its signature.
    fn check_proof(
        &mut self,
        session: SessionState,
        p: proof::Proof,
        handle: &str,
        last_ms: u64,
        how: How,
    ) -> Step {
        let now_ms = self.now * 1000;
        match challenge::check(&self.cfg.keys, &p.jti, handle, now_ms, last_ms) {
            Err(challenge::Refused::Foreign) => {
                self.refused(400, "the challenge is not one keycard gave this session")
            }
            Err(challenge::Refused::Stale) => self.refused(400, "the challenge is stale"),
            Err(challenge::Refused::Used) => {
                self.refused(400, "the challenge was answered already")
            }
            Ok(challenge_ms) => {
                self.state = State::Proving(Box::new(Proving {
                    session,
                    handle: handle.to_owned(),
                    key: p.key,
                    challenge_ms,
                    how,
                }));
                Step::Verify(p.verification)
            }
        }
    }

    /// The driver's check of a proof's signature.
    pub(super) fn proved(&mut self, p: Proving, result: Result<bool, String>) -> Step {
        match result {
            Ok(true) => {}
            Ok(false) => return self.refused(400, "the proof's signature does not verify"),
            Err(e) => {
                self.log(Level::Error, "verify_failed", json!({ "error": e }));
                return self.refused(400, "the runtime could not check the proof's signature");
            }
        }
        let Proving {
            mut session,
            handle,
            key,
            challenge_ms,
            how,
        } = p;
        let ttl = self.cfg.device_bound.as_ref().map_or(0, |d| d.ttl);
        let binding = Binding::new(&key, challenge_ms, self.now + ttl);
        session.bound = Some(binding.clone());
        let done = match how.registering {
            true => self.registration_writes(session, &binding),
            false => self.refresh_writes(session, &binding, handle, how),
        };
        match done {
            Ok((writes, answer)) => {
                self.purpose = Purpose::DeviceBound(Box::new(answer));
                self.next_write(writes)
            }
            Err(step) => step,
        }
    }

    /// A registration: the session, now bound, is issued under a new id, as
    /// `regenerate` issues it, so that the old id ends and with it every copy of its
    /// cookie taken before binding. Its KV record is put under the new id with the
    /// binding first (the old id's tombstone looked at before); only then do a
    /// signed-in session's objects hear of the new id (`replacing_calls`), and the old
    /// record becomes a replaced session's marker for a minute. A failure before the
    /// old id ends leaves it whole: the browser keeps its cookie and may register again.
    /// Where the users' objects keep bindings, the new cookie names the key; a cookie
    /// with no room left for that mark (`SESSION_STORE=cookie`) is not a failure of
    /// keycard's: the registration is refused.
    fn registration_writes(
        &mut self,
        session: SessionState,
        binding: &Binding,
    ) -> Result<(Writes, Bound), Step> {
        let cfg = Rc::clone(&self.cfg);
        let old = session.clone();
        let outcome = match session::regenerate(&cfg, session, self.now, &mut self.entropy, self.kv)
        {
            Ok(o) => o,
            Err(FinishError::TooLarge { .. }) => {
                return Err(self.refused(400, "the session's cookie has no room for its device"))
            }
        };
        let Some(new) = outcome.session.clone() else {
            return Err(self.out_of_order("registration_writes"));
        };
        let answer = self.bound_answer(&new.sid, binding, cfg.keys.current().handle(&new.sid));
        let mut writes = self.outcome_writes(outcome, OriginResponse::default());
        // The put under the new id (if in KV) first; the old id's end after.
        let put = usize::from(writes.put).min(writes.ops.len());
        let ended = writes.ops.split_off(put);
        let mut later = Later {
            users: VecDeque::new(),
            ops: ended,
        };
        if let Some(user) = user_of(&cfg, &new.data()).filter(|_| self.users) {
            later.users = self.replacing_calls(&user, &old, &new);
            // Should an object find the old id revoked, its record ends too.
            writes.if_refused = session::revoke(&cfg, &old, self.now, session::Ending::Revoked);
        }
        writes.then = Some(Box::new(later));
        Ok((writes, answer))
    }

    /// The calls that tell `user`'s objects that `new` replaced `old` at its binding: a
    /// `See` with `replaces`, as for `regenerate`, or, where they keep bindings, a
    /// `Bind` with `replaces`, which replaces and binds in one call and refuses if the
    /// old id is bound already. In every object of the ring, since a copy of the old
    /// cookie signed under any of its secrets is checked with that secret's object; the
    /// older ones first and the current secret's last, which alone decides whether the
    /// old id was revoked (it checks the new cookie, and the browser's own, freshly
    /// issued with the offer): the older ones follow (`follows`). So a failure on the
    /// way leaves the browser's cookie working, and its next registration passes an
    /// older object that ended the old id already, keeping the new id there too.
    fn replacing_calls(
        &self,
        user: &str,
        old: &SessionState,
        new: &SessionState,
    ) -> VecDeque<UsersWrite> {
        let cfg = &self.cfg;
        let caller = caller_of(cfg, new);
        let replaces = Some(old.sid.digest());
        let current = cfg.keys.current().kid();
        let ring: Vec<_> = cfg.keys.all().collect();
        ring.into_iter()
            .rev()
            .map(|keys| {
                let decides = keys.kid() == current;
                let op = match (&new.bound, cfg.bindings_in_users()) {
                    (Some(binding), true) => Op::Bind {
                        device: self.device.clone(),
                        binding: binding.clone(),
                        replaces: replaces.clone(),
                        follows: !decides,
                    },
                    _ => Op::See {
                        device: self.device.clone(),
                        touch_after: cfg.refresh_after,
                        replaces: replaces.clone(),
                        follows: !decides,
                        fresh: true,
                        unproven: false,
                    },
                };
                UsersWrite {
                    call: self.call(keys, user, &caller, op),
                    revokes: true,
                    checks: decides,
                    refuses: true,
                    then_keys: None,
                }
            })
            .collect()
    }

    /// A refresh: the challenge it answered becomes the session's last, in its KV
    /// record or its user's object, and its short-lived cookie is renewed.
    fn refresh_writes(
        &mut self,
        session: SessionState,
        binding: &Binding,
        handle: String,
        how: How,
    ) -> Result<(Writes, Bound), Step> {
        let answer = self.bound_answer(&session.sid, binding, handle);
        let writes = match self.cfg.bindings_in_users() {
            true => self.object_writes(session, how)?,
            false => self.record_writes(&session),
        };
        Ok((writes, answer))
    }

    /// A refresh's write of the session's KV record, with its binding's last challenge.
    fn record_writes(&self, session: &SessionState) -> Writes {
        let cfg = &self.cfg;
        let put = Step::KvPut(session::KvPut {
            key: session.kv_key(cfg),
            value: record::encode(
                session.created,
                session.abs_exp,
                &session.data_json(),
                session.bound.as_ref(),
            ),
            ttl: session
                .abs_exp
                .saturating_sub(self.now)
                .max(record::KV_MIN_TTL),
        });
        // The tombstone first, as for every write of an existing id: a session ended
        // while its proof was being checked is not written back.
        let mut writes =
            self.outcome_writes(session::Outcome::default(), OriginResponse::default());
        writes.ops.push_back(Write {
            step: put,
            revokes: false,
        });
        writes.put = true;
        writes.tombstone = Some(session.tombstone_key(cfg));
        writes
    }

    /// A refresh's writes in the user's objects: its challenge becomes the last one
    /// answered in the object that holds the binding (copied under the current key when
    /// it was found under an older one). A cookie that does not name the key (a race can
    /// write one back) is re-issued, as the same session, naming it. Each call fails
    /// closed.
    fn object_writes(&mut self, session: SessionState, how: How) -> Result<Writes, Step> {
        let cfg = Rc::clone(&self.cfg);
        let (Some(user), Some(binding)) = (user_of(&cfg, &session.data()), session.bound.clone())
        else {
            return Err(self.out_of_order("object_writes"));
        };
        let caller = caller_of(&cfg, &session);
        let write = |call, checks, refuses| UsersWrite {
            call,
            revokes: true,
            checks,
            refuses,
            then_keys: None,
        };
        let prove = Op::Prove {
            challenge_ms: binding.last_ms,
            until: binding.until,
        };
        let keys = cfg.keys.all().nth(how.object).unwrap_or(cfg.keys.current());
        let mut calls = VecDeque::from([write(self.call(keys, &user, &caller, prove), true, true)]);
        if how.object != 0 {
            let bind = Op::Bind {
                device: self.device.clone(),
                binding,
                replaces: None,
                follows: false,
            };
            calls.push_back(write(
                self.call(cfg.keys.current(), &user, &caller, bind),
                false,
                false,
            ));
        }
        // A cookie with no room left for the mark (`SESSION_STORE=cookie`) renews the
        // short-lived cookie and stays as it is (without the mark, it is checked with
        // the object on every request).
        let outcome = match how.reissue {
            true => match session::reissue(&cfg, session, self.now, &mut self.entropy, self.kv) {
                Ok(o) => o,
                Err(FinishError::TooLarge { size }) => {
                    self.log(
                        Level::Warn,
                        "session_too_large",
                        json!({ "cookie_bytes": size, "detail": "the session cookie was not re-issued naming its device" }),
                    );
                    session::Outcome::default()
                }
            },
            false => session::Outcome::default(),
        };
        let mut writes = self.outcome_writes(outcome, OriginResponse::default());
        writes.users = calls;
        Ok(writes)
    }

    /// The configuration and the short-lived cookie for the session `sid`, bound as
    /// `binding`, which the browser knows as `handle`: the cookie expires when the
    /// binding says (`until`).
    fn bound_answer(&self, sid: &SessionId, binding: &Binding, handle: String) -> Bound {
        let cfg = &self.cfg;
        let value = short_cookie::value(&cfg.keys, sid, &binding.thumbprint, binding.until);
        let max_age = binding.until.saturating_sub(self.now);
        Bound {
            json: self.configuration(&handle),
            short_cookie: short_cookie_header(cfg, &value, max_age),
            id: handle,
            gone: false,
        }
    }

    /// The session configuration for the session the browser knows as `handle`.
    fn configuration(&self, handle: &str) -> String {
        let cfg = &self.cfg;
        let origin = forward::split_url(&self.url).map_or(String::new(), |p| p.origin());
        let refresh = format!("{}dbsc/refresh", cfg.path_prefix);
        let attributes = short_cookie_attributes(cfg);
        wire::Configuration {
            id: handle,
            refresh_url: &refresh,
            origin: &origin,
            include_site: cfg.cookie.domain.is_some(),
            exclude: &[],
            cookie_name: cfg.device_bound.as_ref().map_or("", |d| d.cookie.as_str()),
            cookie_attributes: &attributes,
            keep: true,
        }
        .json()
    }

    /// A refresh or registration for a session that is gone (ended, revoked, expired,
    /// or never bound): the browser is told to stop. `clear`: its cookie is cleared
    /// too, when it is bad, revoked, or names a device that no object binds any more:
    /// such a cookie can never have its short-lived cookie again, and, kept, would
    /// make every request of the browser no session, and every change its app answers
    /// (a sign-in included) ignored, until it expires.
    fn device_ended(&mut self, asked: &Asked, clear: bool) -> Step {
        self.log(
            Level::Warn,
            "device_ended",
            json!({ "reason": "no bound session for this request" }),
        );
        let id = match asked {
            Asked::Refresh(id, _) => id.as_deref().and_then(wire::session_id).unwrap_or(""),
            Asked::Register(_) => "",
        };
        let reply = Reply::new(200, JSON, Bound::ended_json(id));
        Step::Reply(match clear {
            true => reply.with("set-cookie", session::clearing_cookie(&self.cfg)),
            false => reply,
        })
    }

    /// A registration or refresh the user's object refused.
    pub(super) fn object_refused(&mut self, why: DeviceRefusal) -> Step {
        let why = match why {
            DeviceRefusal::Bound => "the session is bound already",
            DeviceRefusal::Used => "the challenge was answered already",
            DeviceRefusal::Unbound => "the session is not bound",
        };
        self.refused(400, why)
    }

    /// A 4xx for a refused registration or refresh, with its reason in the log.
    fn refused(&mut self, status: u16, why: &'static str) -> Step {
        self.log(Level::Warn, "device_refused", json!({ "reason": why }));
        self.state = State::Done;
        Step::Reply(Reply::opaque(status, "keycard: device proof refused"))
    }

    /// `Secure-Session-Registration` for the session a response is issuing, when
    /// binding is on and it is not bound yet.
    pub(super) fn offer(&mut self, session: &SessionState) -> Option<String> {
        self.cfg.device_bound.as_ref()?;
        // Where the users' objects keep bindings, only a signed-in session has one.
        let unkept = self.cfg.bindings_in_users() && user_of(&self.cfg, &session.data()).is_none();
        if session.bound.is_some() || unkept {
            return None;
        }
        let handle = self.cfg.keys.current().handle(&session.sid);
        let c = challenge::mint(&self.cfg.keys, &handle, self.now * 1000, &mut self.entropy);
        Some(wire::registration(
            &format!("{}dbsc/register", self.cfg.path_prefix),
            &c,
        ))
    }
}

/// The short-lived cookie's attributes, as the configuration names them: those of the
/// session cookie, host-only unless it names a domain, never persistent beyond `ttl`.
fn short_cookie_attributes(cfg: &Config) -> String {
    let c = &cfg.cookie;
    let mut a = String::from("Path=/");
    if let Some(d) = &c.domain {
        a.push_str("; Domain=");
        a.push_str(d);
    }
    a.push_str("; Secure; HttpOnly");
    a.push_str(c.same_site.attribute());
    a
}

fn short_cookie_header(cfg: &Config, value: &str, ttl: u64) -> String {
    format!(
        "{}={value}; Max-Age={ttl}; {}",
        cfg.device_bound.as_ref().map_or("", |d| d.cookie.as_str()),
        short_cookie_attributes(cfg)
    )
}
