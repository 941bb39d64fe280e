//! Sessions in KV, request after request: the scenarios a session store must pass (as
//! tower-sessions' `route_tests!` has them), driven through whole exchanges against
//! [`FakeKv`]. The Workers KV binding runs the same scenarios end to end in
//! `tests/e2e/kv.test.mjs`.

use serde_json::{json, Value};

use super::*;
use crate::config::Config;
use crate::http::headers::HeaderList;
use crate::origin::headers::SessionHeaders;
use crate::session::{read, Location, Read, Status};
use crate::testing::{config, CountingEntropy, FakeKv, T0};
use crate::util::unb64;

/// A browser with a cookie jar of one cookie.
struct Client {
    jar: Option<String>,
}

/// What the origin answers with: its control headers.
#[derive(Default)]
struct Origin {
    set: Option<String>,
    action: Option<String>,
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

fn with_kv() -> Bindings {
    Bindings {
        kv: Binding::Present,
        ..Default::default()
    }
}

impl Client {
    fn new() -> Client {
        Client { jar: None }
    }

    fn start(&self, cfg: &Config, now: u64) -> (Exchange<CountingEntropy>, Step) {
        let header = self
            .jar
            .as_ref()
            .map(|v| format!("cookie:{}={v}\n", cfg.cookie.name))
            .unwrap_or_default();
        let req = Incoming {
            method: "GET",
            url: "https://h/",
            headers: HeaderList::new(&header),
        };
        let entropy = CountingEntropy(now as u8);
        Exchange::start(Rc::new(cfg.clone()), with_kv(), &req, now, entropy)
    }

    /// One request, the origin answering 200 with `origin`'s headers; returns what the
    /// origin was told.
    fn go(&mut self, cfg: &Config, kv: &mut FakeKv, origin: Origin, now: u64) -> SessionHeaders {
        kv.now = now;
        let (mut ex, step) = self.start(cfg, now);
        let Step::Forward(fwd) = kv.drive(&mut ex, step) else {
            panic!("not forwarded: {:?}", ex.take_logs())
        };
        let mut headers = String::new();
        for (name, value) in [
            ("x-session-set", origin.set),
            ("x-session-action", origin.action),
        ] {
            if let Some(v) = value {
                headers.push_str(&format!("{name}:{v}\n"));
            }
        }
        let answer = Answer {
            status: 200,
            headers: HeaderList::new(&headers),
        };
        let step = ex.answered(&answer);
        match kv.drive(&mut ex, step) {
            Step::Rewrap(Rewrap {
                set_cookie: Some(sc),
                ..
            }) => {
                let c = cookie::Cookie::parse(sc).unwrap();
                self.jar = (c.max_age() != Some(cookie::time::Duration::ZERO))
                    .then(|| c.value().to_owned());
            }
            Step::Rewrap(_) | Step::Pass => {}
            other => panic!("{other:?}: {:?}", ex.take_logs()),
        }
        fwd.session
    }

    /// The session as the next request would load it (a KV read included), or the
    /// step that came instead of the forward.
    fn loaded(&self, cfg: &Config, kv: &mut FakeKv, now: u64) -> Result<SessionHeaders, Step> {
        let (mut ex, step) = self.start(cfg, now);
        match kv.drive(&mut ex, step) {
            Step::Forward(f) => Ok(f.session),
            other => Err(other),
        }
    }

    /// The KV key of this client's session record.
    fn record_key(&self, cfg: &Config) -> String {
        let h = format!("{}={}", cfg.cookie.name, self.jar.as_ref().unwrap());
        match read(cfg, Some(&h), T0) {
            Read::NeedsRecord(p) => p.key,
            other => panic!("{other:?}"),
        }
    }
}

fn data(f: &SessionHeaders) -> Value {
    serde_json::from_slice(&unb64(f.session.as_ref().unwrap()).unwrap()).unwrap()
}

/// How many session records `kv` holds, tombstones aside.
fn records(kv: &FakeKv) -> usize {
    kv.keys().iter().filter(|k| !k.contains("revoked.")).count()
}

/// How many tombstones `kv` holds.
fn tombstones(kv: &FakeKv) -> usize {
    kv.keys().len() - records(kv)
}

#[test]
fn kv_round_trip_without_needless_writes() {
    let cfg = config(&[("SESSION_STORE", "kv")]);
    let mut kv = FakeKv::default();
    let mut c = Client::new();
    c.go(&cfg, &mut kv, set(r#"{"user":"ada"}"#), T0);
    assert_eq!(kv.puts, 1);
    for i in 1..20 {
        let f = c.go(&cfg, &mut kv, Origin::default(), T0 + i);
        assert_eq!(data(&f), json!({"user":"ada"}));
    }
    assert_eq!(kv.puts, 1, "requests that change nothing write nothing");
}

#[test]
fn logout_revokes_replayed_cookie() {
    let cfg = config(&[("SESSION_STORE", "kv")]);
    let mut kv = FakeKv::default();
    let mut c = Client::new();
    c.go(&cfg, &mut kv, set(r#"{"user":"ada"}"#), T0);
    let stolen = c.jar.clone();
    c.go(&cfg, &mut kv, act("destroy"), T0 + 1);
    assert!(c.jar.is_none());
    assert_eq!((records(&kv), tombstones(&kv)), (0, 1));
    let mut thief = Client { jar: stolen };
    let f = thief.go(&cfg, &mut kv, Origin::default(), T0 + 2);
    assert_eq!(f.status, "invalid");
    assert!(thief.jar.is_none(), "the replayed cookie is cleared");
}

#[test]
fn regenerate_invalidates_the_old_cookie() {
    let cfg = config(&[("SESSION_STORE", "kv")]);
    let mut kv = FakeKv::default();
    let mut c = Client::new();
    c.go(&cfg, &mut kv, set(r#"{"n":1}"#), T0);
    let old = c.jar.clone();
    c.go(&cfg, &mut kv, act("regenerate"), T0 + 1);
    assert_eq!(records(&kv), 1, "the old record is deleted");
    assert_eq!(tombstones(&kv), 1, "and its id revoked");
    let f = c.go(&cfg, &mut kv, Origin::default(), T0 + 2);
    assert_eq!(data(&f), json!({"n":1}));
    let mut replay = Client { jar: old };
    let f = replay.go(&cfg, &mut kv, Origin::default(), T0 + 3);
    assert_eq!(f.status, "invalid");
}

#[test]
fn refresh_rewrites_record_with_ttl() {
    let cfg = config(&[("SESSION_STORE", "kv")]);
    let mut kv = FakeKv::default();
    let mut c = Client::new();
    c.go(&cfg, &mut kv, set(r#"{"n":1}"#), T0);
    let key = c.record_key(&cfg);
    assert_eq!(kv.expiry(&key), Some(T0 + 1000));
    c.go(&cfg, &mut kv, Origin::default(), T0 + 100);
    assert_eq!(kv.puts, 2, "the refresh touches the record");
    assert_eq!(kv.gets, 2, "its record, then its tombstone");
    assert_eq!(kv.expiry(&key), Some(T0 + 1100));
}

#[test]
fn store_failure_is_an_error_not_a_session() {
    let cfg = config(&[("SESSION_STORE", "kv")]);
    let mut kv = FakeKv::default();
    let mut c = Client::new();
    c.go(&cfg, &mut kv, set(r#"{"n":1}"#), T0);
    kv.failing.insert("get");
    match c.loaded(&cfg, &mut kv, T0 + 1) {
        Err(Step::Reply(r)) => assert_eq!(r.status, 503),
        other => panic!("{other:?}"),
    }
}

/// `auto` keeps small data in the cookie (no store traffic) and spills big data.
#[test]
fn auto_mode_spills_and_shrinks_back() {
    let cfg = config(&[]);
    let mut kv = FakeKv::default();
    let mut c = Client::new();
    c.go(&cfg, &mut kv, set(r#"{"n":1}"#), T0);
    assert_eq!(kv.puts, 0);
    let big = format!(r#"{{"blob":"{}"}}"#, "y".repeat(7000));
    c.go(&cfg, &mut kv, set(&big), T0 + 1);
    assert_eq!(records(&kv), 1);
    assert!(c.jar.as_ref().unwrap().len() < 4096);
    for i in 2..30 {
        let f = c.go(&cfg, &mut kv, Origin::default(), T0 + i);
        assert_eq!(data(&f)["blob"].as_str().unwrap().len(), 7000);
    }
    assert_eq!(kv.puts, 1);
    c.go(&cfg, &mut kv, set(r#"{"blob":null}"#), T0 + 40);
    assert_eq!(kv.keys().len(), 0);
    let f = c.loaded(&cfg, &mut kv, T0 + 41).unwrap();
    assert_eq!(f.status, Status::Valid.as_str());
    let h = format!("{}={}", cfg.cookie.name, c.jar.as_ref().unwrap());
    let Read::Ready(s) = read(&cfg, Some(&h), T0 + 41) else {
        panic!("the session is back in the cookie")
    };
    assert_eq!(s.location, Location::Cookie);
}
