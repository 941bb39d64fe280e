//! keycard in process: the session as a handler that stands in for the origin sees it.
//!
//! When keycard runs inside your own Worker (`keycard::worker`, the `worker` feature),
//! there is no origin to forward to: your handler is called instead, with a
//! [`Session`]. It reads and edits the session's data in place; nothing is decided
//! while it runs. When it returns, its edits become exactly the control headers an
//! origin would have answered with ([`Session::control_headers`]), and the exchange
//! applies them as it applies an origin's. So lazy creation, no write without a change,
//! the spill to KV in `auto` mode, `regenerate` and the clearing cookie on `destroy`
//! are the very code the standalone Worker runs, not a second version of it.
//!
//! This module is pure (no platform types), so its tests run natively.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::session::Status;

/// A session value that could not be read as the type asked for, or a value that
/// cannot be stored as JSON. It names the key and the type, never the value (serde's
/// own messages quote values, and session data must never reach a log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// The value at `key` is not a `expected`.
    #[error("session key {key:?} does not hold a {expected}")]
    WrongType {
        /// The key.
        key: String,
        /// The type asked for.
        expected: &'static str,
    },
    /// The value given for `key` cannot be written as JSON.
    #[error("session key {key:?}: the value cannot be written as JSON")]
    NotJson {
        /// The key.
        key: String,
    },
}

impl SessionError {
    /// The key at fault.
    pub fn key(&self) -> &str {
        match self {
            SessionError::WrongType { key, .. } | SessionError::NotJson { key } => key,
        }
    }
}

/// The request's session, as the handler reads and changes it.
///
/// Its data is a JSON object: each key holds any value serde can write as JSON. Reads
/// see the handler's own edits. The edits apply after the handler returns, with the
/// semantics of the origin protocol's control headers:
///
/// - no session is created until some data is inserted (lazy creation), and an empty
///   session is never stored;
/// - inserting a value equal to the one there, or removing a key that is not there, is
///   no change: no cookie is sent and nothing is written;
/// - [`destroy`](Session::destroy) wins over every other change to this session in the
///   same request;
/// - an `Err` from the handler, or a response with a 5xx status, applies no change at
///   all (a failed request does not half-change a session).
#[derive(Debug, Clone)]
pub struct Session {
    status: Status,
    handle: Option<String>,
    /// The data as the request brought it.
    loaded: Map<String, Value>,
    /// The data as the handler leaves it.
    data: Map<String, Value>,
    regenerate: bool,
    destroy: bool,
    max_age: Option<u64>,
    destroy_others: bool,
    destroy_all: bool,
    /// Handles to revoke, in the order given, each once.
    revoke: Vec<String>,
}

impl Session {
    /// The session a request came with: its `status` and `handle` (`X-Session-Status`
    /// and `X-Session-Id`) and its data (empty without a valid session).
    #[doc(hidden)]
    pub fn new(status: Status, handle: Option<String>, data: Map<String, Value>) -> Session {
        Session {
            status,
            handle,
            loaded: data.clone(),
            data,
            regenerate: false,
            destroy: false,
            max_age: None,
            destroy_others: false,
            destroy_all: false,
            revoke: Vec::new(),
        }
    }

    /// The value at `key` as a `T`, or `None` when there is none. An error when the
    /// value is not a `T` (the session still holds it).
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        self.data
            .get(key)
            .map(|v| T::deserialize(v).map_err(|_| wrong_type::<T>(key)))
            .transpose()
    }

    /// Sets `key` to `value`. A value that serializes to `null` removes the key, as a
    /// `null` in `X-Session-Set` does. An error when `value` cannot be written as JSON
    /// (a map with non-string keys, say); the session is then unchanged.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Serialize,
    ) -> Result<(), SessionError> {
        let key = key.into();
        match serde_json::to_value(value) {
            Ok(Value::Null) => {
                self.data.remove(&key);
                Ok(())
            }
            Ok(v) => {
                self.data.insert(key, v);
                Ok(())
            }
            Err(_) => Err(SessionError::NotJson { key }),
        }
    }

    /// Removes `key` and returns its value as a `T` (`None` when there was none). The
    /// key is removed even when its value is not a `T`, which is then the error; use
    /// `remove::<serde_json::Value>` to drop a key whatever it holds.
    pub fn remove<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, SessionError> {
        self.data
            .remove(key)
            .map(|v| serde_json::from_value(v).map_err(|_| wrong_type::<T>(key)))
            .transpose()
    }

    /// Removes every key. With nothing inserted afterwards, the session's data ends up
    /// empty (the session itself lives on: use [`destroy`](Session::destroy) to end it).
    pub fn clear(&mut self) {
        self.data.clear();
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.data.keys().map(String::as_str)
    }

    /// Whether there is no data.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Whether the handler changed anything: data that differs from what the request
    /// brought (same-value inserts do not count), or any of the calls below that end or
    /// renew sessions, `set_max_age` included.
    pub fn is_modified(&self) -> bool {
        self.destroy
            || self.regenerate
            || self.max_age.is_some()
            || self.destroy_others
            || !self.revoke.is_empty()
            || self.data != self.loaded
    }

    /// How the request's cookie read (`X-Session-Status`): [`Status::Valid`] only for
    /// a session that verified and has not expired.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The session's handle (`X-Session-Id`), with a valid session only: a stable,
    /// non-secret name, safe to log, useless as a cookie. It is the handle the request
    /// came with; a `regenerate` gives the session a new one from the next request on.
    pub fn handle(&self) -> Option<&str> {
        self.handle.as_deref()
    }

    /// Sets the session's absolute lifetime to `max_age` from now, capped by
    /// `SESSION_ABSOLUTE_TIMEOUT` (`X-Session-Max-Age`). It counts in whole seconds,
    /// rounded up, so only [`Duration::ZERO`] ends the session (like `destroy`).
    pub fn set_max_age(&mut self, max_age: Duration) {
        let secs = max_age
            .as_secs()
            .saturating_add(u64::from(max_age.subsec_nanos() > 0));
        self.max_age = Some(secs);
    }

    /// Gives the session a new id, keeping its data, and deletes the old record
    /// (`regenerate`). Call it right after a sign-in, against session fixation.
    pub fn regenerate(&mut self) {
        self.regenerate = true;
    }

    /// Ends the session (`destroy`): its record is deleted and the browser's cookie
    /// cleared. Every other change to this session's data, id or lifetime in this
    /// request, before or after, is dropped; its data reads as empty from here on.
    /// What [`destroy_others`](Session::destroy_others) and
    /// [`revoke`](Session::revoke) asked still applies to the other sessions (with
    /// `destroy`, `destroy_others` is [`destroy_all`](Session::destroy_all)).
    pub fn destroy(&mut self) {
        self.destroy = true;
        self.data.clear();
    }

    /// Ends every other session of the signed-in user and keeps this one
    /// (`X-Session-Action: destroy-others`): "sign out everywhere else". It needs the
    /// users binding (`docs/signing-out.md`); without it, keycard logs
    /// `users_unbound` and ends nothing.
    pub fn destroy_others(&mut self) {
        self.destroy_others = true;
    }

    /// Ends every session of the signed-in user, this one included
    /// (`X-Session-Action: destroy-all`): a [`destroy`](Session::destroy) that reaches
    /// the user's other sessions too. Without the users binding it ends this session
    /// only.
    pub fn destroy_all(&mut self) {
        self.destroy_all = true;
        self.destroy();
    }

    /// Ends the user's session with this handle (an `id` of `GET
    /// /.keycard/sessions`, or another request's [`handle`](Session::handle)), if it
    /// is the same user's (`X-Session-Revoke`); call it once per session. This
    /// session's own handle is a `destroy`. A value that is not a handle makes keycard
    /// ignore the whole list (and log it), as it does an origin's: pass handles keycard
    /// gave you.
    pub fn revoke(&mut self, handle: impl Into<String>) {
        let handle = handle.into();
        if !self.revoke.contains(&handle) {
            self.revoke.push(handle);
        }
    }

    /// The handler's edits as the control headers an origin would answer with, by
    /// their exact names: `x-session-action`, `x-session-set` (the shallow-merge delta
    /// from the data the request brought: changed keys, and `null` for removed ones),
    /// `x-session-max-age` and `x-session-revoke`. None at all when nothing changed.
    #[doc(hidden)]
    pub fn control_headers(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !self.revoke.is_empty() {
            out.push(("x-session-revoke", self.revoke.join(", ")));
        }
        if self.destroy {
            let action = match (self.destroy_all, self.destroy_others) {
                (true, _) => "destroy-all",
                (false, true) => "destroy, destroy-others",
                (false, false) => "destroy",
            };
            out.push(("x-session-action", action.into()));
            return out;
        }
        let mut delta: Map<String, Value> = self
            .data
            .iter()
            .filter(|(k, v)| self.loaded.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for k in self.loaded.keys().filter(|k| !self.data.contains_key(*k)) {
            delta.insert(k.clone(), Value::Null);
        }
        if !delta.is_empty() {
            out.push(("x-session-set", Value::Object(delta).to_string()));
        }
        let actions: Vec<&str> = [
            (self.regenerate, "regenerate"),
            (self.destroy_others, "destroy-others"),
        ]
        .into_iter()
        .filter_map(|(wanted, action)| wanted.then_some(action))
        .collect();
        if !actions.is_empty() {
            out.push(("x-session-action", actions.join(", ")));
        }
        if let Some(secs) = self.max_age {
            out.push(("x-session-max-age", secs.to_string()));
        }
        out
    }
}

fn wrong_type<T>(key: &str) -> SessionError {
    SessionError::WrongType {
        key: key.to_owned(),
        expected: std::any::type_name::<T>(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::origin::control;

    fn session(data: Value) -> Session {
        let Value::Object(map) = data else {
            panic!("not an object")
        };
        Session::new(Status::Valid, Some("h".into()), map)
    }

    /// What the exchange would read from the control headers.
    fn changes(s: &Session) -> crate::session::Changes {
        let h = s.control_headers();
        let (changes, errors) = control::from_headers(|name: &str| {
            h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
        });
        assert!(errors.is_empty(), "{errors:?}");
        changes
    }

    /// Two handles as keycard makes them (base64url of 16 bytes).
    const LAPTOP: &str = "bGFwdG9wLWxhcHRvcC0xMg";
    const PHONE: &str = "cGhvbmUtcGhvbmUtcGhvbg";

    #[test]
    fn reads_typed_values_and_names_the_key_on_a_type_error() {
        let s = session(json!({"visits": 3, "user": "ann"}));
        assert_eq!(s.get::<u64>("visits").unwrap(), Some(3));
        assert_eq!(s.get::<String>("user").unwrap().as_deref(), Some("ann"));
        assert_eq!(s.get::<u64>("missing").unwrap(), None);
        let e = s.get::<u64>("user").unwrap_err();
        assert_eq!(e.key(), "user");
        assert!(
            !e.to_string().contains("ann"),
            "the value is not in the error: {e}"
        );
    }

    #[test]
    fn an_unchanged_session_sends_no_control_header() {
        let mut s = session(json!({"visits": 3}));
        s.insert("visits", 3).unwrap();
        s.remove::<Value>("never-there").unwrap();
        assert!(!s.is_modified());
        assert!(s.control_headers().is_empty());
    }

    #[test]
    fn edits_become_a_delta_that_merges_into_the_data_the_handler_left() {
        let mut s = session(json!({"visits": 3, "user": "ann", "cart": [1]}));
        s.insert("visits", 4).unwrap();
        s.insert("theme", "dark").unwrap();
        assert_eq!(s.remove::<Vec<u32>>("cart").unwrap(), Some(vec![1]));
        s.insert("user", None::<String>).unwrap();
        assert!(s.is_modified());
        let set = changes(&s).set.unwrap();
        assert_eq!(
            Value::Object(set.clone()),
            json!({"visits": 4, "theme": "dark", "cart": null, "user": null})
        );
        let mut merged = s.loaded.clone();
        crate::session::merge(&mut merged, set);
        assert_eq!(merged, s.data);
        assert_eq!(s.keys().collect::<Vec<_>>(), ["theme", "visits"]);
    }

    #[test]
    fn clear_then_insert_replaces_the_data() {
        let mut s = session(json!({"a": 1, "b": 2}));
        s.clear();
        assert!(s.is_empty());
        s.insert("c", 3).unwrap();
        let mut merged = s.loaded.clone();
        crate::session::merge(&mut merged, changes(&s).set.unwrap());
        assert_eq!(Value::Object(merged), json!({"c": 3}));
    }

    #[test]
    fn remove_of_the_wrong_type_still_removes() {
        let mut s = session(json!({"user": "ann"}));
        assert_eq!(s.remove::<u64>("user").unwrap_err().key(), "user");
        assert_eq!(s.get::<String>("user").unwrap(), None);
        assert_eq!(
            Value::Object(changes(&s).set.unwrap()),
            json!({"user": null})
        );
    }

    #[test]
    fn a_value_that_is_not_json_leaves_the_session_unchanged() {
        let mut s = session(json!({}));
        let bad = std::collections::HashMap::from([((1, 2), 3)]);
        assert_eq!(s.insert("bad", bad).unwrap_err().key(), "bad");
        assert!(!s.is_modified());
    }

    #[test]
    fn destroy_wins_over_everything_else() {
        let mut s = session(json!({"user": "ann"}));
        s.insert("visits", 1).unwrap();
        s.regenerate();
        s.set_max_age(Duration::from_secs(60));
        s.destroy();
        assert_eq!(s.get::<String>("user").unwrap(), None);
        assert_eq!(
            s.control_headers(),
            [("x-session-action", "destroy".into())]
        );
        assert!(changes(&s).destroy);
    }

    #[test]
    fn regenerate_and_max_age_are_their_control_headers() {
        let mut s = session(json!({"user": "ann"}));
        s.regenerate();
        s.set_max_age(Duration::from_millis(1500));
        let c = changes(&s);
        assert!(c.regenerate && !c.destroy && c.set.is_none());
        assert_eq!(c.max_age, Some(2), "rounded up");
        s.set_max_age(Duration::ZERO);
        assert_eq!(changes(&s).max_age, Some(0));
    }

    #[test]
    fn destroy_others_is_its_action_next_to_the_other_edits() {
        let mut s = session(json!({"user": "ann"}));
        assert!(!s.is_modified());
        s.destroy_others();
        assert!(s.is_modified(), "ending other sessions is a change");
        assert_eq!(
            s.control_headers(),
            [("x-session-action", "destroy-others".into())]
        );
        s.insert("visits", 1).unwrap();
        s.regenerate();
        let c = changes(&s);
        assert!(c.destroy_others && c.regenerate && !c.destroy && !c.destroy_all);
        assert_eq!(Value::Object(c.set.unwrap()), json!({"visits": 1}));
        assert_eq!(s.get::<String>("user").unwrap().as_deref(), Some("ann"));
    }

    #[test]
    fn destroy_all_is_a_destroy_that_reaches_the_other_sessions() {
        let mut s = session(json!({"user": "ann"}));
        s.insert("visits", 1).unwrap();
        s.set_max_age(Duration::from_secs(60));
        s.destroy_all();
        assert_eq!(
            s.get::<String>("user").unwrap(),
            None,
            "the data reads empty"
        );
        assert_eq!(
            s.control_headers(),
            [("x-session-action", "destroy-all".into())]
        );
        let c = changes(&s);
        assert!(c.destroy_all && c.destroy && c.set.is_none() && c.max_age.is_none());
    }

    #[test]
    fn revoke_names_each_handle_once_and_survives_destroy() {
        let mut s = session(json!({"user": "ann"}));
        s.revoke(LAPTOP);
        s.revoke(PHONE.to_owned());
        s.revoke(LAPTOP);
        assert!(s.is_modified());
        assert_eq!(
            s.control_headers(),
            [("x-session-revoke", format!("{LAPTOP}, {PHONE}"))]
        );
        assert_eq!(changes(&s).revoke, [LAPTOP, PHONE]);
        // Signing out as well: the other sessions named still end, and with
        // `destroy_others` the origin protocol's `destroy, destroy-others` is sent.
        s.destroy_others();
        s.destroy();
        let c = changes(&s);
        assert!(c.destroy && c.destroy_others && !c.destroy_all);
        assert_eq!(c.revoke, [LAPTOP, PHONE]);
    }

    #[test]
    fn status_and_handle_are_the_requests() {
        let s = Session::new(Status::Expired, None, Map::new());
        assert_eq!(s.status(), Status::Expired);
        assert_eq!(s.handle(), None);
        assert_eq!(session(json!({})).handle(), Some("h"));
    }
}
