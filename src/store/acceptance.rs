//! The store acceptance suite: the same session scenarios against every
//! [`SessionStore`], the way tower-sessions' `route_tests!` does. Natively it runs on
//! [`MemoryStore`]; the Workers KV store runs the same scenarios end to end in
//! `tests/e2e`.

use serde_json::{json, Value};

use super::memory::MemoryStore;
use super::{apply, load, SessionStore};
use crate::config::Config;
use crate::control::{self, Changes};
use crate::keys::tests::CountingEntropy;
use crate::session::tests::{config, T0};
use crate::session::{finish, forward_headers, read, Forward, Location, Status};
use crate::util::unb64;

struct Client {
    jar: Option<String>,
    seed: u8,
}

impl Client {
    fn new(seed: u8) -> Client {
        Client { jar: None, seed }
    }

    /// One request through the core with `store`; returns the forwarded headers.
    async fn go<S: SessionStore>(
        &mut self,
        cfg: &Config,
        store: &S,
        changes: Changes,
        now: u64,
    ) -> Forward {
        let header = self
            .jar
            .as_ref()
            .map(|v| format!("{}={v}", cfg.cookie.name));
        let loaded = load(read(cfg, header.as_deref(), now), Some(store))
            .await
            .unwrap();
        let fwd = forward_headers(cfg, &loaded, now, "GET", "https://h/");
        self.seed = self.seed.wrapping_add(1);
        let out = finish(
            cfg,
            loaded,
            changes,
            now,
            &mut CountingEntropy(self.seed),
            true,
        )
        .unwrap();
        apply(&out, store).await.unwrap();
        if let Some(sc) = out.set_cookie {
            let c = cookie::Cookie::parse(sc).unwrap();
            self.jar =
                (c.max_age() != Some(cookie::time::Duration::ZERO)).then(|| c.value().to_owned());
        }
        fwd
    }
}

fn set(j: &str) -> Changes {
    control::parse(Some(j), None, None).0
}

fn act(a: &str) -> Changes {
    control::parse(None, Some(a), None).0
}

fn data(f: &Forward) -> Value {
    serde_json::from_slice(&unb64(f.session.as_ref().unwrap()).unwrap()).unwrap()
}

macro_rules! store_suite {
    ($store:expr, $($mode:literal),+) => {
        fn block_on<F: std::future::Future>(f: F) -> F::Output {
            pollster::block_on(f)
        }

        #[test]
        fn kv_round_trip_without_needless_writes() {
            $(block_on(async {
                let cfg = config(&[("SESSION_STORE", $mode)]);
                let store = $store;
                store.set_now(T0);
                let mut c = Client::new(1);
                c.go(&cfg, &store, set(r#"{"user":"ada"}"#), T0).await;
                assert_eq!(store.puts.get(), 1);
                for i in 1..20 {
                    let f = c.go(&cfg, &store, Changes::default(), T0 + i).await;
                    assert_eq!(data(&f), json!({"user":"ada"}));
                }
                assert_eq!(store.puts.get(), 1, "requests that change nothing write nothing");
            }));+
        }

        #[test]
        fn logout_revokes_replayed_cookie() {
            $(block_on(async {
                let cfg = config(&[("SESSION_STORE", $mode)]);
                let store = $store;
                let mut c = Client::new(2);
                c.go(&cfg, &store, set(r#"{"user":"ada"}"#), T0).await;
                let stolen = c.jar.clone();
                c.go(&cfg, &store, act("destroy"), T0 + 1).await;
                assert!(c.jar.is_none());
                assert!(store.is_empty());
                let mut thief = Client { jar: stolen, seed: 9 };
                let f = thief.go(&cfg, &store, Changes::default(), T0 + 2).await;
                assert_eq!(f.status, "invalid");
                assert!(thief.jar.is_none(), "the replayed cookie is cleared");
            }));+
        }

        #[test]
        fn regenerate_invalidates_the_old_cookie() {
            $(block_on(async {
                let cfg = config(&[("SESSION_STORE", $mode)]);
                let store = $store;
                let mut c = Client::new(3);
                c.go(&cfg, &store, set(r#"{"n":1}"#), T0).await;
                let old = c.jar.clone();
                c.go(&cfg, &store, act("regenerate"), T0 + 1).await;
                assert_eq!(store.len(), 1, "the old record is deleted");
                let f = c.go(&cfg, &store, Changes::default(), T0 + 2).await;
                assert_eq!(data(&f), json!({"n":1}));
                let mut replay = Client { jar: old, seed: 7 };
                assert_eq!(replay.go(&cfg, &store, Changes::default(), T0 + 3).await.status, "invalid");
            }));+
        }

        #[test]
        fn refresh_rewrites_record_with_ttl() {
            $(block_on(async {
                let cfg = config(&[("SESSION_STORE", $mode)]);
                let store = $store;
                store.set_now(T0);
                let mut c = Client::new(4);
                c.go(&cfg, &store, set(r#"{"n":1}"#), T0).await;
                let key = {
                    let h = format!("{}={}", cfg.cookie.name, c.jar.as_ref().unwrap());
                    match read(&cfg, Some(&h), T0) {
                        crate::session::Read::NeedsRecord(p) => p.key,
                        other => panic!("{other:?}"),
                    }
                };
                assert_eq!(store.expiry(&key), Some(T0 + 1000));
                store.set_now(T0 + 100);
                c.go(&cfg, &store, Changes::default(), T0 + 100).await;
                assert_eq!(store.puts.get(), 2, "the refresh touches the record");
                assert_eq!(store.expiry(&key), Some(T0 + 1100));
            }));+
        }

        #[test]
        fn store_failure_is_an_error_not_a_session() {
            $(block_on(async {
                let cfg = config(&[("SESSION_STORE", $mode)]);
                let store = $store;
                let mut c = Client::new(5);
                c.go(&cfg, &store, set(r#"{"n":1}"#), T0).await;
                store.failing.set(true);
                let h = format!("{}={}", cfg.cookie.name, c.jar.as_ref().unwrap());
                let e = load(read(&cfg, Some(&h), T0 + 1), Some(&store)).await.unwrap_err();
                assert_eq!(e.op, "get");
            }));+
        }
    };
}

mod memory_store {
    use super::*;
    store_suite!(MemoryStore::default(), "kv");
}

/// `auto` keeps small data in the cookie (no store traffic) and spills big data.
#[test]
fn auto_mode_spills_and_shrinks_back() {
    pollster::block_on(async {
        let cfg = config(&[]);
        let store = MemoryStore::default();
        let mut c = Client::new(6);
        c.go(&cfg, &store, set(r#"{"n":1}"#), T0).await;
        assert_eq!(store.puts.get(), 0);
        let big = format!(r#"{{"blob":"{}"}}"#, "y".repeat(7000));
        c.go(&cfg, &store, set(&big), T0 + 1).await;
        assert_eq!(store.len(), 1);
        assert!(c.jar.as_ref().unwrap().len() < 4096);
        for i in 2..30 {
            let f = c.go(&cfg, &store, Changes::default(), T0 + i).await;
            assert_eq!(data(&f)["blob"].as_str().unwrap().len(), 7000);
        }
        assert_eq!(store.puts.get(), 1);
        c.go(&cfg, &store, set(r#"{"blob":null}"#), T0 + 40).await;
        assert!(store.is_empty());
        let h = format!("{}={}", cfg.cookie.name, c.jar.as_ref().unwrap());
        let loaded = load(read(&cfg, Some(&h), T0 + 41), Some(&store))
            .await
            .unwrap();
        assert_eq!(loaded.status, Status::Valid);
        assert_eq!(loaded.session.unwrap().location, Location::Cookie);
    });
}
