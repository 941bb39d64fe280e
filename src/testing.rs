//! Test fixtures shared by the core's unit tests: one configuration builder and an
//! in-memory KV (with the users' Durable Objects beside it) that drives an exchange's
//! store steps, the way quinn's tests drive a connection pair.

use std::collections::{HashMap, HashSet};

use crate::config::Config;
pub use crate::crypto::keys::tests::CountingEntropy;
use crate::crypto::keys::Entropy;
use crate::exchange::{Exchange, Step};
use crate::users;

/// The session secret of every test configuration.
pub const SECRET: &str = "session-test-secret-0123456789abcdef0123456789";
/// The tests' clock starts here.
pub const T0: u64 = 1_700_000_000;

/// A valid configuration: `pairs` over short test timeouts (idle 1000 s, absolute
/// 5000 s, refresh after 100 s) and [`SECRET`].
pub fn config(pairs: &[(&str, &str)]) -> Config {
    let mut all = vec![
        ("SESSION_SECRET", SECRET),
        ("SESSION_IDLE_TIMEOUT", "1000"),
        ("SESSION_ABSOLUTE_TIMEOUT", "5000"),
        ("SESSION_REFRESH_AFTER", "100"),
    ];
    all.extend_from_slice(pairs);
    Config::from_pairs(&all).expect("a valid test configuration")
}

/// A compact JWS of `header` and `payload` (JSON texts) with `signature`'s bytes, as a
/// provider or a browser sends one: these tests answer for the signature's check, which
/// is the driver's (WebCrypto).
pub fn compact_jws(
    header: impl std::fmt::Display,
    payload: impl std::fmt::Display,
    signature: &[u8],
) -> String {
    use crate::util::b64;
    format!(
        "{}.{}.{}",
        b64(header.to_string()),
        b64(payload.to_string()),
        b64(signature)
    )
}

/// The sign-in settings of a configuration with `pairs` (which must configure a
/// provider).
pub fn sign_in(pairs: &[(&str, &str)]) -> crate::oidc::SignIn {
    let mut all = vec![
        ("KEYCARD_OIDC_CLIENT_ID", "app"),
        ("KEYCARD_OIDC_CLIENT_SECRET", "app-secret"),
    ];
    if pairs.iter().any(|(n, _)| *n == "KEYCARD_OIDC_PROVIDERS") {
        all.clear();
    }
    all.extend_from_slice(pairs);
    config(&all).sign_in.expect("a provider is configured")
}

/// The one provider of a configuration whose issuer is `issuer`, client `app`.
pub fn oidc_provider(issuer: &str) -> crate::oidc::Provider {
    sign_in(&[("KEYCARD_OIDC_ISSUER", issuer)])
        .providers
        .remove(0)
}

/// Workers KV in memory: values with their expiry, and a clock for it.
#[derive(Debug, Default)]
pub struct FakeKv {
    records: HashMap<String, (String, u64)>,
    /// The clock that expiry is checked against.
    pub now: u64,
    /// How many reads, writes and deletes succeeded.
    pub gets: usize,
    pub puts: usize,
    pub deletes: usize,
    /// The operations (`get`, `put`, `delete`) that fail.
    pub failing: HashSet<&'static str>,
    /// The users' Durable Objects.
    pub users: FakeUsers,
}

/// The users' Durable Objects in memory: each object's stored state, run through the
/// object's real logic ([`users::answer`]), as the Worker's `KeycardUsers` class does.
#[derive(Debug, Default)]
pub struct FakeUsers {
    /// Each object's stored state, by name.
    pub objects: HashMap<String, String>,
    /// The calls made, in order: the object's name and the call's `op`.
    pub calls: Vec<(String, String)>,
    /// Every call fails.
    pub failing: bool,
    /// The country a driver would read from `request.cf` when it sends a call.
    pub country: Option<&'static str>,
}

impl FakeUsers {
    /// Carries out `call` in the object named `object`.
    pub fn call(&mut self, object: &str, call: &str) -> Result<String, String> {
        if self.failing {
            return Err("injected failure".into());
        }
        let op = serde_json::from_str::<serde_json::Value>(call).map_err(|e| e.to_string())?;
        // `op` is `"forget"` or `{"<name>": {..}}`.
        let name = match &op["op"] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Object(m) => m.keys().next().cloned().unwrap_or_default(),
            _ => "?".into(),
        };
        self.calls.push((object.to_owned(), name));
        let (answer, stored) = users::answer(self.objects.get(object).map(String::as_str), call)?;
        if let Some(state) = stored {
            self.objects.insert(object.to_owned(), state);
        }
        Ok(answer)
    }

    /// The ops of the calls made since the last look.
    pub fn take_ops(&mut self) -> Vec<String> {
        self.calls.drain(..).map(|(_, op)| op).collect()
    }
}

impl FakeKv {
    /// Carries out `ex`'s KV steps, starting with `step`, until it asks for something
    /// else (the origin, an asset, or its answer), which it returns.
    pub fn drive<E: Entropy>(&mut self, ex: &mut Exchange<E>, mut step: Step) -> Step {
        loop {
            step = match step {
                Step::KvGet { key } => ex.kv_read(self.get(&key)),
                Step::KvPut(p) => ex.written(self.put(&p.key, &p.value, p.ttl)),
                Step::KvDelete { key } => ex.written(self.delete(&key)),
                Step::Users(u) => {
                    let call = u.json(self.users.country);
                    ex.users_answered(self.users.call(&u.object, &call))
                }
                other => return other,
            }
        }
    }

    fn fails(&self, op: &'static str) -> Result<(), String> {
        match self.failing.contains(op) {
            true => Err("injected failure".into()),
            false => Ok(()),
        }
    }

    /// The live value at `key`.
    pub fn get(&mut self, key: &str) -> Result<Option<String>, String> {
        self.fails("get")?;
        self.gets += 1;
        Ok(self
            .records
            .get(key)
            .filter(|(_, exp)| *exp > self.now)
            .map(|(v, _)| v.clone()))
    }

    /// Writes `value` at `key`, to expire `ttl` seconds from now.
    pub fn put(&mut self, key: &str, value: &str, ttl: u64) -> Result<(), String> {
        self.fails("put")?;
        self.puts += 1;
        self.records
            .insert(key.to_owned(), (value.to_owned(), self.now + ttl));
        Ok(())
    }

    /// Deletes `key`.
    pub fn delete(&mut self, key: &str) -> Result<(), String> {
        self.fails("delete")?;
        self.deletes += 1;
        self.records.remove(key);
        Ok(())
    }

    /// The keys of the live values, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .records
            .iter()
            .filter(|(_, (_, exp))| *exp > self.now)
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }

    /// When `key` expires, if present.
    pub fn expiry(&self, key: &str) -> Option<u64> {
        self.records.get(key).map(|(_, e)| *e)
    }
}
