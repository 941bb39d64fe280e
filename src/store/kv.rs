//! The Workers KV [`SessionStore`] (wasm only).

use worker::kv::KvStore;

use super::{SessionStore, StoreError};

/// A KV namespace binding.
pub struct KvSessionStore(pub KvStore);

fn fail(op: &'static str, e: impl std::fmt::Display) -> StoreError {
    StoreError {
        op,
        detail: e.to_string(),
    }
}

impl SessionStore for KvSessionStore {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.0.get(key).text().await.map_err(|e| fail("get", e))
    }

    async fn put(&self, key: &str, value: &str, ttl: u64) -> Result<(), StoreError> {
        self.0
            .put(key, value)
            .map_err(|e| fail("put", e))?
            .expiration_ttl(ttl)
            .execute()
            .await
            .map_err(|e| fail("put", e))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.0.delete(key).await.map_err(|e| fail("delete", e))
    }
}
