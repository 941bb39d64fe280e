//! Server-side session records.
//!
//! [`SessionStore`] is the storage trait, in the style of actix-session: methods return
//! `impl Future` with no `Send` bound, which suits single-threaded wasm. The core never
//! talks to a store directly: an [`Exchange`] asks for reads and writes as data
//! ([`Step::KvGet`], [`Step::KvPut`], [`Step::KvDelete`]), and a driver carries them out,
//! [`settle`] against any [`SessionStore`], `src/entry.js` against Workers KV.
//!
//! The record is versioned JSON, `{"v":1,"created":..,"abs_exp":..,"data":{..}}`, at
//! the key `SESSION_KV_PREFIX` + base64url(SHA-256(session id)).

use std::future::Future;

use crate::config::Config;
use crate::exchange::{Exchange, Step};
use crate::keys::Entropy;

pub mod memory;

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

/// Carries out an [`Exchange`]'s KV steps against `store` until the exchange asks
/// for something else (the origin, an asset, or its answer), which it returns. This is
/// the store-generic driver the tests use; the Worker's own driver is `src/entry.js`,
/// which does the same against the KV binding.
pub async fn settle<S: SessionStore>(
    ex: &mut Exchange,
    cfg: &Config,
    mut step: Step,
    store: &S,
    entropy: &mut dyn Entropy,
) -> Step {
    loop {
        step = match step {
            Step::KvGet { key } => ex.record(cfg, store.get(&key).await, entropy),
            Step::KvPut(p) => ex.written(cfg, store.put(&p.key, &p.value, p.ttl).await),
            Step::KvDelete { key } => ex.written(cfg, store.delete(&key).await),
            other => return other,
        }
    }
}

#[cfg(test)]
mod acceptance;
