//! Server-side session records.
//!
//! [`SessionStore`] is the storage trait, in the style of actix-session: methods return
//! `impl Future` with no `Send` bound, which suits single-threaded wasm. The core never
//! talks to a store directly; it decides ([`crate::session::Outcome`]) and
//! [`load`] / [`apply`] carry the decisions out against any store.
//!
//! The record is versioned JSON, `{"v":1,"created":..,"abs_exp":..,"data":{..}}`, at
//! the key `SESSION_KV_PREFIX` + base64url(SHA-256(session id)).

use std::future::Future;

use crate::session::{Loaded, Outcome, Read, Status};

pub mod memory;

#[cfg(target_arch = "wasm32")]
pub mod kv;

/// A store operation failed (network, quota, binding gone). Never a client's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("session store {op} failed: {detail}")]
pub struct StoreError {
    /// `get`, `put` or `delete`.
    pub op: &'static str,
    /// What the store said, without keys or values.
    pub detail: String,
}

/// Where session records live.
pub trait SessionStore {
    /// The record at `key`, or `None` when there is none.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<String>, StoreError>>;
    /// Writes `value` at `key`, to expire after `ttl` seconds.
    fn put(&self, key: &str, value: &str, ttl: u64)
        -> impl Future<Output = Result<(), StoreError>>;
    /// Deletes `key`; deleting a missing key is not an error.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>>;
}

/// Finishes a [`Read`], loading the record from `store` when the cookie points to KV.
/// Without a store, a KV-backed cookie is invalid.
pub async fn load<S: SessionStore>(read: Read, store: Option<&S>) -> Result<Loaded, StoreError> {
    Ok(match read {
        Read::None => Loaded::without(Status::None),
        Read::Bad(status, _) => Loaded::without(status),
        Read::Ready(s) => Loaded::with(s),
        Read::NeedsRecord(p) => {
            let Some(store) = store else {
                return Ok(Loaded::without(Status::Invalid));
            };
            let record = store.get(&p.key).await?;
            match p.complete(record.as_deref()) {
                Some(s) => Loaded::with(s),
                None => Loaded::without(Status::Invalid),
            }
        }
    })
}

/// Carries out an outcome's writes and deletes: the put first, so that a session that
/// moves keys never exists nowhere.
pub async fn apply<S: SessionStore>(outcome: &Outcome, store: &S) -> Result<(), StoreError> {
    if let Some(p) = &outcome.kv_put {
        store.put(&p.key, &p.value, p.ttl).await?;
    }
    for k in &outcome.kv_delete {
        store.delete(k).await?;
    }
    Ok(())
}

#[cfg(test)]
mod acceptance;
