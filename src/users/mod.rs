//! Sign out everywhere: each signed-in user's sessions, kept in a Durable Object.
//!
//! Workers KV is eventually consistent, so it cannot end a session everywhere at once;
//! a Durable Object is one strongly consistent place per name. With a Durable Object
//! namespace bound as `SESSION_USERS_BINDING` (default `KEYCARD_USERS`), every
//! signed-in user gets one object, named by [`KeySet::users_object`](crate::crypto::keys::KeySet::users_object) (an HMAC of the
//! user field's value, so no user name appears in it). The object keeps the user's
//! live sessions, for the device list, the revoked ones for as long as any session
//! could still live, and the time of the last "every session but this one" (a
//! [`Cutoff`]), so that a session it never heard of cannot outlive that either. Every
//! call answers whether its caller is revoked. Without the binding none of this exists
//! and nothing is called.
//!
//! With device-bound sessions and no KV store (`KEYCARD_DEVICE_BOUND`,
//! [`crate::config::BindingKept::Users`]), a session's entry also keeps the device it is
//! bound to ([`Op::Bind`]) and the last challenge that device answered ([`Op::Prove`]):
//! the object is the one place every location asks, so a copy of a cookie from before
//! binding is told apart, and no challenge is answered twice.
//!
//! The object's logic lives here as well ([`answer`]): the Worker's `KeycardUsers`
//! class (`src/driver/entry.js`) keeps the object's [`State`] as one JSON value in its storage
//! and hands every [`Call`] to this module through a wasm export, and so does the
//! `worker` feature's class of the same name for your own Rust Worker
//! (`src/driver/worker/users.rs`), so the same code runs in either object and in the native
//! tests.
//!
//! A session is named in the object by [`SessionId::digest`](crate::crypto::keys::SessionId::digest), which does not change
//! when the secret rotates (the handle does) and cannot be turned back into the id.

use serde_json::{Map, Value};

use crate::dbsc::Binding;

mod json;

/// The protocol version of [`Call`] and [`State`].
const VERSION: u64 = 1;

/// At most this many live sessions per user: past it, the one seen longest ago is
/// revoked, so that an object cannot grow without bound.
pub const MAX_LIVE: usize = 100;

/// At most this many revocations are kept per user before new sessions are refused:
/// each takes about 70 bytes of the object's one stored value, and a revocation can
/// never be dropped early, so a user who signs in and out this often within
/// `SESSION_ABSOLUTE_TIMEOUT` is refused new sessions until old revocations expire.
pub const MAX_REVOKED: usize = 10_000;

/// How long after a `regenerate` the old id's cookie is left alone rather than cleared:
/// the page's requests in flight still carry it, and their answers reach the browser
/// after the new cookie, so clearing it would clear the new one. The object remembers
/// the replaced key this long ([`State::regenerated`]), and a KV store keeps the old
/// record's marker this long. A minute: KV's shortest `expirationTtl`.
pub const REGENERATED_WINDOW: u64 = 60;

/// When a request checks the user's object (`SESSION_REVOCATION_CHECK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationCheck {
    /// On unsafe methods, whenever the cookie would be re-issued, and on
    /// `KEYCARD_REQUIRE` paths (the default).
    Writes,
    /// On every signed-in request.
    Always,
}

/// The settings of sign-out everywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersConfig {
    /// `SESSION_USERS_BINDING`; default `KEYCARD_USERS`.
    pub binding: String,
    /// Whether `SESSION_USERS_BINDING` was set: then the binding must exist.
    pub explicit: bool,
    /// `SESSION_REVOCATION_CHECK`; default `writes`.
    pub check: RevocationCheck,
}

/// Where a call comes from, as the object sees it: the session making the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// [`SessionId::digest`](crate::crypto::keys::SessionId::digest) of its id.
    pub key: String,
    /// Its handle, as the origin sees it in `X-Session-Id`.
    pub handle: String,
    /// When it was created (unix seconds).
    pub created: u64,
    /// Its absolute expiry: a revoked entry is kept until then.
    pub expires: u64,
}

/// What the object records about the device a session is used from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Device {
    /// A short summary of its `User-Agent`, such as `Firefox on Linux`.
    pub agent: String,
    /// The country the runtime placed the request in, when it says.
    pub country: Option<String>,
}

/// Which sessions a [`Op::Revoke`] ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    /// The caller (a sign-out).
    Caller,
    /// Every session but the caller.
    Others,
    /// Every session, the caller included.
    All,
    /// The sessions with these handles.
    Handles(Vec<String>),
    /// The sessions with these keys (to follow a revocation by handle into the other
    /// objects of a key rotation, whose handles differ).
    Keys(Vec<String>),
}

/// What a call asks of the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Whether the caller is revoked; if not, keep its entry: add it when it is
    /// unknown, and note it was seen when the last note is at least `touch_after`
    /// seconds old. `replaces` (the caller's key before `regenerate`) is revoked.
    See {
        device: Device,
        touch_after: u64,
        replaces: Option<String>,
        /// With `replaces`: another object decides (the current secret's, during a
        /// rotation), and this one follows. A replaced key revoked already (by an
        /// earlier attempt whose deciding call failed) refuses nothing here: it stays
        /// revoked, and the caller is kept all the same.
        follows: bool,
        /// The caller became this user's session in this request (a sign-in, or
        /// `regenerate`), so an earlier `Others` or `All` cannot be meant for it.
        fresh: bool,
        /// The caller has not proven a device (`KEYCARD_DEVICE_BOUND`): its cookie
        /// names none, or its device is about to refresh. If its entry is bound, this
        /// may be a copy of its cookie in another hand, so the entry's notes (when and
        /// where it was seen, its expiry) are left as the device last left them.
        unproven: bool,
    },
    /// Like `See`, then the live sessions.
    List { device: Device, touch_after: u64 },
    /// End sessions (a caller already revoked can end none). The answer names the
    /// keys it revoked.
    Revoke { which: Which },
    /// The caller is no longer signed in (its user field was removed): it leaves the
    /// device list, but stays known, so that `Others` and `All` still revoke it (a
    /// copy of its signed-in cookie is still that user's).
    Forget,
    /// Bind the caller to a device (`KEYCARD_DEVICE_BOUND`), keeping its entry as `See`
    /// does; refused when it is bound already (to the same key, its last challenge
    /// becomes the later of the two). With `replaces` (a registration, which gives the
    /// session a new id), the caller is that key's session under its new id: refused
    /// as `See` refuses a revoked one, or when that key is bound already (a copy of a
    /// cookie from before binding must not bind a key of its own); otherwise that key
    /// is revoked as by `regenerate`, in the same call, so that no failure or
    /// revocation can come between the two.
    Bind {
        device: Device,
        binding: Binding,
        replaces: Option<String>,
        /// As `See`'s.
        follows: bool,
    },
    /// The caller's device answered the challenge minted at `challenge_ms`: refused
    /// unless it is bound and that challenge is later than the last one it answered,
    /// which it then becomes. The object is the one place every location asks, so no
    /// challenge is answered twice. `until` is when the short-lived cookie this answer
    /// earns expires, which the device list shows.
    Prove { challenge_ms: u64, until: u64 },
}

/// Why the object refused a [`Op::Bind`] or [`Op::Prove`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceRefusal {
    /// The session is bound already.
    Bound,
    /// The session is not bound (or not known).
    Unbound,
    /// The challenge is not later than the last one answered.
    Used,
}

impl DeviceRefusal {
    /// Its JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceRefusal::Bound => "bound",
            DeviceRefusal::Unbound => "unbound",
            DeviceRefusal::Used => "used",
        }
    }
}

/// One call to a user's object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The caller's clock (unix seconds): expiry is counted against it.
    pub now: u64,
    /// No session lives past this (`now` + `SESSION_ABSOLUTE_TIMEOUT`, which also caps
    /// `X-Session-Max-Age`): a revocation is kept until then.
    pub horizon: u64,
    /// The session making the request.
    pub caller: Caller,
    /// What it asks.
    pub op: Op,
}

/// One live session in a user's object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// [`SessionId::digest`](crate::crypto::keys::SessionId::digest) of its id.
    pub key: String,
    /// Its handle when it was last seen.
    pub handle: String,
    /// When it was created.
    pub created: u64,
    /// Its absolute expiry.
    pub expires: u64,
    /// When it was last seen (noted at most once per `SESSION_REFRESH_AFTER`).
    pub last_seen: u64,
    /// Where it is used from.
    pub device: Device,
    /// Its user field was removed: not listed, but revoked with the others.
    pub signed_out: bool,
    /// The device it is bound to (`KEYCARD_DEVICE_BOUND`).
    pub bound: Option<Binding>,
}

/// The object's answer to a [`Call`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectAnswer {
    /// The caller was revoked before this call (which then changed nothing).
    pub caller_revoked: bool,
    /// The caller was revoked because a `regenerate` replaced it less than
    /// [`REGENERATED_WINDOW`] ago: a request the page sent before the new cookie
    /// arrived, whose cookie is to be left alone.
    pub caller_regenerated: bool,
    /// The keys of the sessions this call revoked.
    pub keys: Vec<String>,
    /// The live sessions, for [`Op::List`].
    pub sessions: Vec<Entry>,
    /// The device the caller is bound to, in the answer to `See`, `Bind` and `Prove`.
    pub bound: Option<Binding>,
    /// Why a `Bind` or `Prove` was refused.
    pub device_refused: Option<DeviceRefusal>,
}

/// The last `Others` or `All`: every session of the user that began by `at` (its
/// absolute lifetime, that is), but `except`, is revoked, whether this object knew it
/// or not (a session whose registration failed under `SESSION_KV_FAILURE=open`, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cutoff {
    /// When it was made.
    pub at: u64,
    /// The session that made it, for `Others`.
    pub except: Option<String>,
}

/// Everything a user's object keeps, stored as one JSON value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// The live sessions, oldest first.
    pub live: Vec<Entry>,
    /// Revoked keys, each with the time until which it must be kept (a JSON number:
    /// the map type the wasm has already, rather than a second one for the sake of
    /// `u64`).
    pub revoked: Map<String, Value>,
    /// The last `Others` or `All`.
    pub cutoff: Option<Cutoff>,
    /// The keys a `regenerate` replaced within the last [`REGENERATED_WINDOW`], each
    /// with when (revoked, and in `revoked` too).
    pub regenerated: Map<String, Value>,
}

impl State {
    /// Forgets what has expired: no live entry outlives its session's absolute expiry,
    /// no revocation its horizon.
    fn prune(&mut self, now: u64) {
        self.live.retain(|e| e.expires > now);
        self.revoked
            .retain(|_, until| until.as_u64().is_some_and(|u| u > now));
        self.regenerated
            .retain(|_, at| at.as_u64().is_some_and(|at| at + REGENERATED_WINDOW > now));
    }

    fn is_revoked(&self, key: &str) -> bool {
        self.revoked.contains_key(key)
    }

    /// Whether the session `key`, which began at `created`, is one the last `Others` or
    /// `All` ended without knowing it.
    fn cut_off(&self, key: &str, created: u64) -> bool {
        self.cutoff
            .as_ref()
            .is_some_and(|k| created <= k.at && k.except.as_deref() != Some(key))
            && !self.live.iter().any(|e| e.key == key)
    }

    fn set_cutoff(&mut self, at: u64, except: Option<&str>) {
        let at = self.cutoff.as_ref().map_or(at, |k| k.at.max(at));
        self.cutoff = Some(Cutoff {
            at,
            except: except.map(str::to_owned),
        });
    }

    /// Revokes `key` until `horizon`.
    fn revoke_key(&mut self, key: &str, horizon: u64) {
        self.live.retain(|e| e.key != key);
        let kept = self.revoked.get(key).and_then(Value::as_u64).unwrap_or(0);
        self.revoked
            .insert(key.to_owned(), horizon.max(kept).into());
    }

    /// Revokes every live entry `pick` chooses until `horizon`; returns their keys.
    fn revoke_where(&mut self, horizon: u64, pick: impl Fn(&Entry) -> bool) -> Vec<String> {
        let keys: Vec<String> = self
            .live
            .iter()
            .filter(|e| pick(e))
            .map(|e| e.key.clone())
            .collect();
        for k in &keys {
            self.revoke_key(k, horizon);
        }
        keys
    }

    /// Adds the caller's entry, or notes that it was seen (its expiry always, the rest
    /// at most once per `touch_after`). `false` when the object is too full of
    /// revocations to take a new session.
    fn keep(&mut self, call: &Call, device: Device, touch_after: u64) -> bool {
        let (c, now) = (&call.caller, call.now);
        let unproven = matches!(call.op, Op::See { unproven: true, .. });
        if let Some(e) = self.live.iter_mut().find(|e| e.key == c.key) {
            if unproven && e.bound.is_some() {
                return true;
            }
            // `X-Session-Max-Age` may have moved it.
            e.expires = c.expires;
            e.signed_out = false;
            if now >= e.last_seen.saturating_add(touch_after) {
                e.last_seen = now;
                e.handle.clone_from(&c.handle);
                e.device = device;
            }
            return true;
        }
        if self.revoked.len() >= MAX_REVOKED {
            return false;
        }
        self.live.push(Entry {
            key: c.key.clone(),
            handle: c.handle.clone(),
            created: c.created,
            expires: c.expires,
            last_seen: now,
            device,
            signed_out: false,
            bound: None,
        });
        if self.live.len() > MAX_LIVE {
            let oldest = self
                .live
                .iter()
                .filter(|e| e.key != c.key)
                .min_by_key(|e| e.last_seen)
                .map(|e| e.key.clone());
            if let Some(key) = oldest {
                self.revoke_key(&key, call.horizon);
            }
        }
        true
    }

    /// Carries out `call`.
    pub fn apply(&mut self, call: Call) -> ObjectAnswer {
        self.prune(call.now);
        if !self.admits(&call) {
            return self.refused(&call);
        }
        let answer = match &call.op {
            Op::See {
                device,
                touch_after,
                replaces,
                follows,
                ..
            } => self.see(&call, device, *touch_after, replaces.as_deref(), *follows),
            Op::List {
                device,
                touch_after,
            } => self.list(&call, device, *touch_after),
            Op::Revoke { which } => Some(ObjectAnswer {
                keys: self.revoke(&call, which),
                ..ObjectAnswer::default()
            }),
            Op::Forget => {
                if let Some(e) = self.live.iter_mut().find(|e| e.key == call.caller.key) {
                    e.signed_out = true;
                }
                Some(ObjectAnswer::default())
            }
            Op::Bind {
                device,
                binding,
                replaces,
                follows,
            } => self.bind(&call, device, binding, replaces.as_deref(), *follows),
            Op::Prove {
                challenge_ms,
                until,
            } => Some(self.prove(&call.caller.key, *challenge_ms, *until)),
        };
        answer.unwrap_or_else(|| self.refused(&call))
    }

    /// The answer to a caller that was revoked before its call, which changed nothing:
    /// [`ObjectAnswer::caller_regenerated`] when a `regenerate` replaced it, or the id
    /// it would replace, a moment ago (the same sign-in sent twice from one page).
    fn refused(&self, call: &Call) -> ObjectAnswer {
        let replaces = match &call.op {
            Op::See { replaces, .. } | Op::Bind { replaces, .. } => replaces.as_deref(),
            _ => None,
        };
        let regenerated = std::iter::once(call.caller.key.as_str())
            .chain(replaces)
            .any(|key| self.regenerated.contains_key(key));
        ObjectAnswer {
            caller_revoked: true,
            caller_regenerated: regenerated,
            ..ObjectAnswer::default()
        }
    }

    /// Whether the caller may make `call` at all: it is not revoked, and no earlier
    /// `Others` or `All` cut it off (one that did is revoked from now on, like the
    /// sessions the cutoff knew). Revocations by key are keycard's own follow-ups of
    /// one this caller was allowed to make (into the other objects of a key rotation),
    /// even if it revoked itself, and a caller that just became this user's session (a
    /// sign-in, or `regenerate`) cannot be what an earlier cutoff meant.
    fn admits(&mut self, call: &Call) -> bool {
        let c = &call.caller;
        if matches!(
            call.op,
            Op::Revoke {
                which: Which::Keys(_)
            }
        ) {
            return true;
        }
        if self.is_revoked(&c.key) {
            return false;
        }
        let fresh = matches!(
            call.op,
            Op::See { fresh: true, .. }
                | Op::Bind {
                    replaces: Some(_),
                    ..
                }
        );
        if !fresh && self.cut_off(&c.key, c.created) {
            self.revoke_key(&c.key, call.horizon);
            return false;
        }
        true
    }

    /// `See`: revokes the id the caller replaces (`follows`: see [`Op::See`]), then
    /// keeps the caller's entry. `None` when the caller is refused.
    fn see(
        &mut self,
        call: &Call,
        device: &Device,
        touch_after: u64,
        replaces: Option<&str>,
        follows: bool,
    ) -> Option<ObjectAnswer> {
        let mut answer = ObjectAnswer::default();
        if let Some(old) = replaces.filter(|old| *old != call.caller.key) {
            answer.keys = vec![self.replace(call, old, follows)?];
        }
        if !self.keep(call, device.clone(), touch_after) {
            return None;
        }
        answer.bound = self.entry(&call.caller.key).and_then(|e| e.bound.clone());
        Some(answer)
    }

    /// Revokes `old`, which the caller replaces under a new id, and remembers for
    /// [`REGENERATED_WINDOW`] that it was replaced; returns it. `None` when `old` was
    /// revoked already: a revoked session cannot come back under a new id (which keeps
    /// the session's `created`), and the caller is revoked too; unless this object
    /// `follows` another's decision, and then `old` only stays revoked.
    fn replace(&mut self, call: &Call, old: &str, follows: bool) -> Option<String> {
        let (c, horizon) = (&call.caller, call.horizon);
        let was_revoked = self.is_revoked(old) || self.cut_off(old, c.created);
        self.revoke_key(old, horizon);
        if !was_revoked {
            self.regenerated.insert(old.to_owned(), call.now.into());
        } else if !follows {
            self.revoke_key(&c.key, horizon);
            return None;
        }
        Some(old.to_owned())
    }

    fn entry(&self, key: &str) -> Option<&Entry> {
        self.live.iter().find(|e| e.key == key)
    }

    /// `Bind`: replaces `replaces` (unless it is bound already; `follows`: see
    /// [`Op::See`]), keeps the caller's entry, then binds it unless it is bound
    /// already.
    fn bind(
        &mut self,
        call: &Call,
        device: &Device,
        binding: &Binding,
        replaces: Option<&str>,
        follows: bool,
    ) -> Option<ObjectAnswer> {
        let mut keys = Vec::new();
        if let Some(old) = replaces.filter(|old| *old != call.caller.key) {
            if let Some(bound) = self.entry(old).and_then(|e| e.bound.clone()) {
                return Some(ObjectAnswer {
                    bound: Some(bound),
                    device_refused: Some(DeviceRefusal::Bound),
                    ..ObjectAnswer::default()
                });
            }
            keys.push(self.replace(call, old, follows)?);
        }
        if !self.keep(call, device.clone(), 0) {
            return None;
        }
        let e = self.live.iter_mut().find(|e| e.key == call.caller.key)?;
        let refused = match &mut e.bound {
            Some(b) => {
                // A refresh during a rotation copies the binding here with the challenge
                // it answered in an older secret's object: if another refresh copied it
                // first, the later of the two challenges is the last one answered here
                // too, so that none is answered once in each object.
                if b.thumbprint == binding.thumbprint {
                    b.last_ms = b.last_ms.max(binding.last_ms);
                    b.until = b.until.max(binding.until);
                }
                Some(DeviceRefusal::Bound)
            }
            None => {
                e.bound = Some(binding.clone());
                None
            }
        };
        Some(ObjectAnswer {
            bound: e.bound.clone(),
            device_refused: refused,
            keys,
            ..ObjectAnswer::default()
        })
    }

    /// `Prove`: the challenge minted at `challenge_ms` becomes the bound caller's last,
    /// and its short-lived cookie expires at `until` (or later, if it had a later one).
    fn prove(&mut self, key: &str, challenge_ms: u64, until: u64) -> ObjectAnswer {
        let bound = self
            .live
            .iter_mut()
            .find(|e| e.key == key)
            .and_then(|e| e.bound.as_mut());
        let refused = match bound {
            None => Some(DeviceRefusal::Unbound),
            Some(b) if challenge_ms <= b.last_ms => Some(DeviceRefusal::Used),
            Some(b) => {
                b.last_ms = challenge_ms;
                // A copy of the earlier cookie stays valid until its own expiry:
                // another location's clock, or a shorter TTL since, never moves the
                // latest expiry back.
                b.until = b.until.max(until);
                None
            }
        };
        ObjectAnswer {
            bound: self.entry(key).and_then(|e| e.bound.clone()),
            device_refused: refused,
            ..ObjectAnswer::default()
        }
    }

    /// `List`: keeps the caller's entry, then answers the signed-in sessions.
    fn list(&mut self, call: &Call, device: &Device, touch_after: u64) -> Option<ObjectAnswer> {
        if !self.keep(call, device.clone(), touch_after) {
            return None;
        }
        Some(ObjectAnswer {
            sessions: self
                .live
                .iter()
                .filter(|e| !e.signed_out)
                .cloned()
                .collect(),
            ..ObjectAnswer::default()
        })
    }

    /// `Revoke`: ends what `which` names, and answers the keys it revoked.
    fn revoke(&mut self, call: &Call, which: &Which) -> Vec<String> {
        let (c, horizon) = (&call.caller, call.horizon);
        match which {
            Which::Caller => {
                self.revoke_key(&c.key, horizon);
                vec![c.key.clone()]
            }
            Which::Others => {
                self.set_cutoff(call.now, Some(&c.key));
                self.revoke_where(horizon, |e| e.key != c.key)
            }
            Which::All => {
                self.set_cutoff(call.now, None);
                let mut keys = self.revoke_where(horizon, |e| e.key != c.key);
                self.revoke_key(&c.key, horizon);
                keys.push(c.key.clone());
                keys
            }
            Which::Handles(handles) => self.revoke_where(horizon, |e| handles.contains(&e.handle)),
            Which::Keys(keys) => {
                for k in keys {
                    self.revoke_key(k, horizon);
                }
                keys.clone()
            }
        }
    }
}

/// What the object does with one call: `state` is its stored value (`None` at first),
/// `call` the call's JSON. Returns the answer's JSON and the state to store, `None`
/// when it did not change. A state or call that does not read is an error, never a
/// fresh start: a lost revocation must not come back to life.
pub fn answer(state: Option<&str>, call: &str) -> Result<(String, Option<String>), String> {
    let call = Call::parse(call)?;
    let mut s = match state {
        None => State::default(),
        Some(text) => State::parse(text)?,
    };
    let before = s.clone();
    let answer = s.apply(call).to_json();
    let stored = (s != before).then(|| s.to_json());
    Ok((answer, stored))
}

/// A call for the edge to make: [`UsersCall::json`] to the object named `object` in
/// the `SESSION_USERS_BINDING` namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsersCall {
    /// The object's name ([`KeySet::users_object`](crate::crypto::keys::KeySet::users_object)).
    pub object: String,
    /// The call, its device without a country (see [`UsersCall::json`]). Boxed: a
    /// [`Step`](crate::exchange::Step) carries it, and most steps are far smaller.
    pub call: Box<Call>,
}

impl UsersCall {
    /// The call's JSON, with `cf_country` (the runtime's `request.cf.country`, kept
    /// only when [`country`] accepts it) as the device's country of a `see`, `list` or
    /// `bind`.
    /// The driver reads the country only when it sends a call: reading `request.cf`
    /// makes the runtime parse the whole `cf` object, and most requests call no object
    /// (BENCHMARKS.md).
    pub fn json(&self, cf_country: Option<&str>) -> String {
        let mut call = self.call.clone();
        if let Op::See { device, .. } | Op::List { device, .. } | Op::Bind { device, .. } =
            &mut call.op
        {
            device.country = country(cf_country);
        }
        call.to_json()
    }
}

/// A short summary of a `User-Agent`: the browser family and the system, such as
/// `Firefox on Linux`. The full string is never kept: it identifies a device more
/// closely than a device list needs.
pub fn agent_summary(user_agent: Option<&str>) -> String {
    let ua = user_agent.unwrap_or("");
    let has = |s: &str| ua.contains(s);
    let browser = if has("Edg/") {
        "Edge"
    } else if has("OPR/") {
        "Opera"
    } else if has("Firefox/") {
        "Firefox"
    } else if has("Chrome/") || has("Chromium/") || has("CriOS/") {
        "Chrome"
    } else if has("Safari/") {
        "Safari"
    } else if has("curl/") {
        "curl"
    } else {
        "Other"
    };
    let system = if has("Android") {
        Some("Android")
    } else if has("iPhone") || has("iPad") {
        Some("iOS")
    } else if has("CrOS") {
        Some("ChromeOS")
    } else if has("Windows") {
        Some("Windows")
    } else if has("Mac OS X") || has("Macintosh") {
        Some("macOS")
    } else if has("Linux") {
        Some("Linux")
    } else {
        None
    };
    match system {
        Some(s) => format!("{browser} on {s}"),
        None => browser.to_owned(),
    }
}

/// The country code the runtime gives (`request.cf.country`), when it is two ASCII
/// letters or digits (ISO 3166-1 alpha-2, or Cloudflare's `T1` and `XX`).
pub fn country(code: Option<&str>) -> Option<String> {
    code.filter(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(str::to_ascii_uppercase)
}

#[cfg(test)]
mod tests;
