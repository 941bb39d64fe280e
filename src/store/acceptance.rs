//! The store acceptance suite: the same session scenarios against every
//! [`SessionStore`], the way tower-sessions' `route_tests!` does. Natively it runs on
//! [`MemoryStore`]; the Workers KV store runs the same scenarios end to end in
//! `tests/e2e`.

use serde_json::{json, Value};

use super::memory::MemoryStore;
use super::{settle, SessionStore};
use crate::config::Config;
use crate::exchange::{Answer, Bindings, Exchange, Incoming, Step};
use crate::headers::HeaderList;
use crate::keys::tests::CountingEntropy;
use crate::session::tests::{config, T0};
use crate::session::{read, Location, Read, SessionHeaders, Status};
use crate::util::unb64;

struct Client {
    jar: Option<String>,
    seed: u8,
}

/// What the origin answers with: its control headers.
#[derive(Default)]
struct Origin {
    set: Option<String>,
    action: Option<String>,
}

impl Client {
    fn new(seed: u8) -> Client {
        Client { jar: None, seed }
    }

    /// One request through an [`Exchange`] with `store`, the origin answering 200 with
    /// `origin`'s headers; returns what the origin was told.
    async fn go<S: SessionStore>(
        &mut self,
        cfg: &Config,
        store: &S,
        origin: Origin,
        now: u64,
    ) -> SessionHeaders {
        let header = self
            .jar
            .as_ref()
            .map(|v| format!("cookie:{}={v}\n", cfg.cookie.name))
            .unwrap_or_default();
        let req = Incoming {
            method: "GET",
            url: "https://h/",
            headers: HeaderList(&header),
        };
        self.seed = self.seed.wrapping_add(1);
        let entropy = &mut CountingEntropy(self.seed);
        let bindings = Bindings {
            kv: true,
            ..Default::default()
        };
        let (mut ex, step) = Exchange::start(cfg, bindings, &req, now, entropy);
        let Step::Forward(fwd) = settle(&mut ex, cfg, step, store, entropy).await else {
            panic!("not forwarded: {:?}", ex.take_logs())
        };
        let mut answer = String::new();
        for (name, value) in [
            ("x-session-set", &origin.set),
            ("x-session-action", &origin.action),
        ] {
            if let Some(v) = value {
                answer.push_str(&format!("{name}:{v}\n"));
            }
        }
        let answer = Answer {
            status: 200,
            headers: HeaderList(&answer),
        };
        let step = ex.answered(cfg, &answer, entropy);
        match settle(&mut ex, cfg, step, store, entropy).await {
            Step::Rewrap(r) if r.set_cookie.is_some() => {
                let c = cookie::Cookie::parse(r.set_cookie.unwrap()).unwrap();
                self.jar = (c.max_age() != Some(cookie::time::Duration::ZERO))
                    .then(|| c.value().to_owned());
            }
            Step::Rewrap(_) | Step::Pass => {}
            other => panic!("{other:?}: {:?}", ex.take_logs()),
        }
        fwd.session
    }

    /// The session as the next request would load it (a KV read included).
    async fn loaded<S: SessionStore>(
        &self,
        cfg: &Config,
        store: &S,
        now: u64,
    ) -> Result<SessionHeaders, Step> {
        let h = format!(
            "cookie:{}={}\n",
            cfg.cookie.name,
            self.jar.as_ref().unwrap()
        );
        let req = Incoming {
            method: "GET",
            url: "https://h/",
            headers: HeaderList(&h),
        };
        let bindings = Bindings {
            kv: true,
            ..Default::default()
        };
        let entropy = &mut CountingEntropy(0);
        let (mut ex, step) = Exchange::start(cfg, bindings, &req, now, entropy);
        match settle(&mut ex, cfg, step, store, entropy).await {
            Step::Forward(f) => Ok(f.session),
            other => Err(other),
        }
    }
}

/// How many session records `store` holds, tombstones aside.
fn records(store: &MemoryStore) -> usize {
    store
        .keys()
        .iter()
        .filter(|k| !k.contains("revoked."))
        .count()
}

/// How many tombstones `store` holds.
fn tombstones(store: &MemoryStore) -> usize {
    store.keys().len() - records(store)
}

fn set(j: &str) -> Origin {
    Origin {
        set: Some(j.to_owned()),
        action: None,
    }
}

fn act(a: &str) -> Origin {
    Origin {
        set: None,
        action: Some(a.to_owned()),
    }
}

fn data(f: &SessionHeaders) -> Value {
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
                    let f = c.go(&cfg, &store, Origin::default(), T0 + i).await;
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
                assert_eq!((records(&store), tombstones(&store)), (0, 1));
                let mut thief = Client { jar: stolen, seed: 9 };
                let f = thief.go(&cfg, &store, Origin::default(), T0 + 2).await;
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
                assert_eq!(records(&store), 1, "the old record is deleted");
                assert_eq!(tombstones(&store), 1, "and its id revoked");
                let f = c.go(&cfg, &store, Origin::default(), T0 + 2).await;
                assert_eq!(data(&f), json!({"n":1}));
                let mut replay = Client { jar: old, seed: 7 };
                assert_eq!(replay.go(&cfg, &store, Origin::default(), T0 + 3).await.status, "invalid");
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
                        Read::NeedsRecord(p) => p.key,
                        other => panic!("{other:?}"),
                    }
                };
                assert_eq!(store.expiry(&key), Some(T0 + 1000));
                store.set_now(T0 + 100);
                c.go(&cfg, &store, Origin::default(), T0 + 100).await;
                assert_eq!(store.puts.get(), 2, "the refresh touches the record");
                assert_eq!(store.gets.get(), 2, "its record, then its tombstone");
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
                match c.loaded(&cfg, &store, T0 + 1).await {
                    Err(Step::Reply(r)) => assert_eq!(r.status, 503),
                    other => panic!("{other:?}"),
                }
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
            let f = c.go(&cfg, &store, Origin::default(), T0 + i).await;
            assert_eq!(data(&f)["blob"].as_str().unwrap().len(), 7000);
        }
        assert_eq!(store.puts.get(), 1);
        c.go(&cfg, &store, set(r#"{"blob":null}"#), T0 + 40).await;
        assert!(store.is_empty());
        let f = c.loaded(&cfg, &store, T0 + 41).await.unwrap();
        assert_eq!(f.status, Status::Valid.as_str());
        let h = format!("{}={}", cfg.cookie.name, c.jar.as_ref().unwrap());
        let Read::Ready(s) = read(&cfg, Some(&h), T0 + 41) else {
            panic!("the session is back in the cookie")
        };
        assert_eq!(s.location, Location::Cookie);
    });
}
