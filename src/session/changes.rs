//! What the origin asks of a session, whichever way it asked: by control headers
//! ([`crate::origin::control`]) or through the typed session of a handler in the same
//! Worker ([`crate::origin::embedded`]).

use serde_json::{Map, Value};

/// What the origin asked for, in application order: destroy, clear, set, regenerate,
/// max-age.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    /// `destroy`: delete the session; everything else is ignored.
    pub destroy: bool,
    /// `clear`: empty the data.
    pub clear: bool,
    /// `X-Session-Set`: keys to merge; `Value::Null` deletes the key.
    pub set: Option<Map<String, Value>>,
    /// `regenerate`: a new session id with the same data. A device bound to the old id
    /// is not bound to the new one: its cookie offers binding again.
    pub regenerate: bool,
    /// `X-Session-Max-Age`: the absolute lifetime from now, in seconds.
    pub max_age: Option<u64>,
    /// `destroy-others`: end every other session of this user.
    pub destroy_others: bool,
    /// `destroy-all`: end every session of this user; implies `destroy`.
    pub destroy_all: bool,
    /// `X-Session-Revoke`: the handles of this user's sessions to end.
    pub revoke: Vec<String>,
}

impl Changes {
    /// Whether the origin asked for anything at all.
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// Applies a shallow merge: each key of `set` replaces the one in `data`, and a
/// `null` value deletes it.
pub fn merge(data: &mut Map<String, Value>, set: Map<String, Value>) {
    for (k, v) in set {
        if v.is_null() {
            data.remove(&k);
        } else {
            data.insert(k, v);
        }
    }
}
