//! An in-memory [`SessionStore`] for native tests. It records every operation so that
//! tests can count writes, and can be told to fail.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::{SessionStore, StoreError};

/// Records in a `HashMap`, with expiry by a settable clock.
#[derive(Default)]
pub struct MemoryStore {
    records: RefCell<HashMap<String, (String, u64)>>,
    now: Cell<u64>,
    /// How many `get` calls succeeded.
    pub gets: Cell<usize>,
    /// How many `put` calls succeeded.
    pub puts: Cell<usize>,
    /// How many `delete` calls succeeded.
    pub deletes: Cell<usize>,
    /// When true, every call fails.
    pub failing: Cell<bool>,
}

impl MemoryStore {
    /// Sets the clock used for expiry.
    pub fn set_now(&self, now: u64) {
        self.now.set(now);
    }

    /// How many live records there are.
    pub fn len(&self) -> usize {
        let now = self.now.get();
        self.records
            .borrow()
            .values()
            .filter(|(_, exp)| *exp > now)
            .count()
    }

    /// The keys of the live records, sorted.
    pub fn keys(&self) -> Vec<String> {
        let now = self.now.get();
        let mut keys: Vec<String> = self
            .records
            .borrow()
            .iter()
            .filter(|(_, (_, exp))| *exp > now)
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }

    /// Whether there are no live records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The expiry time of `key`, if present.
    pub fn expiry(&self, key: &str) -> Option<u64> {
        self.records.borrow().get(key).map(|(_, e)| *e)
    }

    fn check(&self, op: &'static str) -> Result<(), StoreError> {
        if self.failing.get() {
            Err(StoreError {
                op,
                detail: "injected failure".into(),
            })
        } else {
            Ok(())
        }
    }
}

impl SessionStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.check("get")?;
        self.gets.set(self.gets.get() + 1);
        let now = self.now.get();
        Ok(self
            .records
            .borrow()
            .get(key)
            .filter(|(_, exp)| *exp > now)
            .map(|(v, _)| v.clone()))
    }

    async fn put(&self, key: &str, value: &str, ttl: u64) -> Result<(), StoreError> {
        self.check("put")?;
        self.records
            .borrow_mut()
            .insert(key.to_owned(), (value.to_owned(), self.now.get() + ttl));
        self.puts.set(self.puts.get() + 1);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check("delete")?;
        self.records.borrow_mut().remove(key);
        self.deletes.set(self.deletes.get() + 1);
        Ok(())
    }
}
