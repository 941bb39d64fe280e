//! Device-bound sessions (`KEYCARD_DEVICE_BOUND`, [`crate::dbsc`]): the registration and
//! refresh endpoints, and the offer of binding on a response that issues a cookie.
//!
//! - `POST {prefix}dbsc/register` with a `Secure-Session-Response` proof: the challenge
//!   must be one keycard gave this session, and the proof's signature (WebCrypto, a
//!   [`Step::Verify`]) the key it brings. The key is then bound to the session in its
//!   record, so every copy of its cookie, taken before or after, is worth nothing
//!   without the short-lived cookie; the answer is the session configuration and the
//!   short-lived cookie.
//! - `POST {prefix}dbsc/refresh` with `Sec-Secure-Session-Id`: without a proof, a 403
//!   with a challenge; with one signed by the bound key for a fresh challenge, a new
//!   short-lived cookie. A session that is gone, or not bound, is told `continue: false`
//!   so that the browser stops refreshing it.
//!
//! These endpoints are authenticated by their proofs, so the cross-origin check does not
//! apply to them. Every refusal is a 4xx with a log line naming the reason.

use serde_json::json;

use super::*;
use crate::crypto::keys::Entropy;
use crate::dbsc::{self, challenge, proof, short_cookie, wire};
use crate::http::headers::HeaderList;
use crate::session::{record, Binding};

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
            _ => return self.device_ended(&asked),
        };
        match asked {
            Asked::Register(_) if session.bound.is_some() => {
                self.refused(400, "the session is bound already")
            }
            Asked::Register(None) => self.refused(400, "the registration has no proof"),
            Asked::Register(Some(token)) => {
                let handle = self.cfg.keys.current().handle(&session.sid);
                match proof::registration(&token) {
                    Err(why) => self.refused(400, why),
                    Ok(p) => self.check_proof(session, p, &handle, 0),
                }
            }
            Asked::Refresh(id, token) => {
                let Some(bound) = session.bound.clone() else {
                    return self.device_ended(&Asked::Refresh(id, token));
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
                        Ok(p) => self.check_proof(session, p, &handle, bound.last_ms),
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
        } = p;
        // Bound in place: the record now says so, so every copy of the session cookie,
        // taken before or after, needs the short-lived cookie. (A new id would race
        // the page's own requests, still carrying the old cookie, whose answers would
        // clear the new one.)
        session.bound = Some(Binding::new(&key, challenge_ms));
        let cfg = Rc::clone(&self.cfg);
        let put = Step::KvPut(session::KvPut {
            key: session.kv_key(&cfg),
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
        self.purpose = Purpose::DeviceBound(Box::new(self.bound_answer(&session, handle)));
        // The tombstone first, as for every write of an existing id: a session ended
        // while its proof was being checked is not written back.
        let writes = Writes {
            users: VecDeque::new(),
            if_refused: None,
            ops: VecDeque::from([Write {
                step: put,
                revokes: false,
            }]),
            set_cookie: None,
            put: true,
            tombstone: Some(session.tombstone_key(&cfg)),
            origin: OriginResponse::default(),
            offer: None,
        };
        self.next_write(writes)
    }

    /// The configuration and the short-lived cookie for the bound `session`, which the
    /// browser knows as `handle`.
    pub(super) fn bound_answer(&self, session: &SessionState, handle: String) -> Bound {
        let cfg = &self.cfg;
        let ttl = cfg.device_bound.unwrap_or(0);
        let thumbprint = session
            .bound
            .as_ref()
            .map_or(String::new(), |b| b.thumbprint.clone());
        let value = short_cookie::value(&cfg.keys, &session.sid, &thumbprint, self.now + ttl);
        Bound {
            json: self.configuration(&handle),
            short_cookie: short_cookie_header(cfg, &value, ttl),
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
            cookie_name: short_cookie::name(cfg.cookie.domain.is_some()),
            cookie_attributes: &attributes,
            keep: true,
        }
        .json()
    }

    /// A refresh or registration for a session that is gone (ended, revoked, expired,
    /// or never bound): the browser is told to stop.
    fn device_ended(&mut self, asked: &Asked) -> Step {
        self.log(
            Level::Warn,
            "device_ended",
            json!({ "reason": "no bound session for this request" }),
        );
        let id = match asked {
            Asked::Refresh(id, _) => id.as_deref().and_then(wire::session_id).unwrap_or(""),
            Asked::Register(_) => "",
        };
        Step::Reply(Reply::new(200, JSON, Bound::ended_json(id)))
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
        self.cfg.device_bound?;
        if session.bound.is_some() {
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
        short_cookie::name(cfg.cookie.domain.is_some()),
        short_cookie_attributes(cfg)
    )
}
