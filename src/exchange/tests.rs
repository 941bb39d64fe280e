use super::*;
use crate::config::{Config, ConfigError};
use crate::http::headers::HeaderList;
use crate::origin::headers::SessionHeaders;
use crate::session::KvPut;
use crate::testing::{config, CountingEntropy, T0};

/// An exchange as the tests run it.
type Ex = Exchange<CountingEntropy>;

const URL: &str = "https://app.example/account?tab=1";

/// A header list in the edge's form from `(name, value)` pairs.
fn hdrs(pairs: &[(&str, &str)]) -> String {
    pairs.iter().map(|(n, v)| format!("{n}:{v}\n")).collect()
}

/// A `Cookie` header list, or none.
fn cookie_hdr(cookie: Option<&str>) -> String {
    cookie.map_or_else(String::new, |c| hdrs(&[("cookie", c)]))
}

fn get(headers: &str) -> Incoming<'_> {
    Incoming {
        method: "GET",
        url: URL,
        headers: HeaderList::new(headers),
    }
}

fn kv() -> Bindings {
    Bindings {
        kv: Binding::Present,
        ..Default::default()
    }
}

/// Starts an exchange; its randomness is seeded from `now`, so that exchanges at
/// different times draw different session ids.
fn start(cfg: &Config, b: Bindings, req: &Incoming<'_>, now: u64) -> (Ex, Step) {
    Exchange::start(
        Rc::new(cfg.clone()),
        b,
        req,
        now,
        CountingEntropy(now as u8),
    )
}

/// The origin's plain 200, with no control headers.
fn ok() -> Answer<'static> {
    answer(200, "content-type:text/html\n")
}

fn answer(status: u16, headers: &str) -> Answer<'_> {
    Answer {
        status,
        headers: HeaderList::new(headers),
    }
}

/// An anonymous request, forwarded: the exchange waits for the origin's answer.
fn forwarded(cfg: &Config, b: Bindings) -> Ex {
    let (ex, step) = start(cfg, b, &get(""), T0);
    forward(step);
    ex
}

fn forward(step: Step) -> Forward {
    match step {
        Step::Forward(f) => *f,
        other => panic!("expected a forward, got {other:?}"),
    }
}

fn reply(step: Step) -> Reply {
    match step {
        Step::Reply(r) => r,
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn rewrap(step: Step) -> Rewrap {
    match step {
        Step::Rewrap(r) => r,
        other => panic!("expected a rewrap, got {other:?}"),
    }
}

fn set_cookie(step: Step) -> String {
    match rewrap(step).set_cookie {
        Some(sc) => sc,
        None => panic!("expected a Set-Cookie"),
    }
}

/// Carries out KV writes with `result` until another step comes; returns them and
/// that step.
fn write_all(ex: &mut Ex, mut step: Step) -> (Vec<Step>, Step) {
    let mut writes = Vec::new();
    while let Step::KvPut(_) | Step::KvDelete { .. } = step {
        writes.push(step);
        step = ex.written(Ok(()));
    }
    (writes, step)
}

/// Signs in with `data` through the exchange; returns the cookie header to send and
/// the KV writes made.
fn sign_in(cfg: &Config, b: Bindings, data: &str) -> (String, Vec<Step>) {
    let mut ex = forwarded(cfg, b);
    let h = hdrs(&[("x-session-set", data)]);
    let step = ex.answered(&answer(200, &h));
    let (writes, step) = write_all(&mut ex, step);
    let sc = set_cookie(step);
    let pair = sc.split(';').next().unwrap().to_owned();
    (pair, writes)
}

/// Signs in a KV session; returns its cookie header and its record's write.
fn kv_session(cfg: &Config) -> (String, KvPut) {
    let (cookie, writes) = sign_in(cfg, kv(), r#"{"user":"ada"}"#);
    match writes.as_slice() {
        [Step::KvPut(put)] => (cookie, put.clone()),
        other => panic!("{other:?}"),
    }
}

/// `pass_unless` lets the JS driver skip `answered` for most responses: only a session
/// that needs nothing written whatever the origin answers may promise it.
#[test]
fn only_a_session_at_rest_promises_a_pass() {
    let cfg = config(&[("SESSION_REFRESH_AFTER", "60")]);
    let (cookie, _) = sign_in(&cfg, Bindings::default(), r#"{"user":"ada"}"#);
    let at = |now, cookie: &str| {
        let h = cookie_hdr(Some(cookie));
        let (mut ex, step) = start(&cfg, Bindings::default(), &get(&h), now);
        let promise = forward(step).pass_unless;
        (promise, ex.answered(&ok()))
    };
    assert_eq!(
        at(T0, "theme=dark"),
        (Some("session"), Step::Pass),
        "no session"
    );
    assert_eq!(
        at(T0 + 1, &cookie),
        (Some("session"), Step::Pass),
        "a fresh session"
    );
    let (promise, step) = at(T0 + 61, &cookie);
    assert_eq!(promise, None, "a session due for its refresh");
    assert!(matches!(step, Step::Rewrap(_)), "{step:?}");
    let forged = format!("{}=v1.AAAA.1.1.1.c2lk.e30.bWFj", cfg.cookie.name);
    let (promise, step) = at(T0, &forged);
    assert_eq!(promise, None, "a bad cookie, which is cleared");
    assert!(matches!(step, Step::Rewrap(_)), "{step:?}");
}

#[test]
fn anonymous_request_is_forwarded_then_passed_through() {
    let cfg = config(&[]);
    let h = hdrs(&[
        ("cookie", "theme=dark"),
        ("cf-connecting-ip", "203.0.113.9"),
        ("x-forwarded-for", "198.51.100.1"),
        ("user-agent", "test"),
    ]);
    let (mut ex, step) = start(&cfg, Bindings::default(), &get(&h), T0);
    let f = forward(step);
    assert_eq!(f.url, URL, "route mode forwards to the request's own URL");
    assert_eq!(f.service, None);
    assert_eq!(
        f.cookie,
        CookieEdit::Keep,
        "no session cookie: the header is left as it came"
    );
    assert_eq!(f.session.status, "none");
    assert_eq!(f.session.session, None);
    assert_eq!(
        f.forwarded_for.as_deref(),
        Some("198.51.100.1, 203.0.113.9")
    );
    assert_eq!(f.real_ip.as_deref(), Some("203.0.113.9"));
    assert_eq!(
        (f.forwarded_host.as_str(), f.forwarded_proto.as_str()),
        ("app.example", "https")
    );
    assert_eq!(f.strip, vec!["x-forwarded-for".to_owned()]);
    assert!(f.drop_body, "a GET carries no body to the origin");
    assert_eq!(ex.answered(&ok()), Step::Pass);
    assert!(ex.take_logs().is_empty());
}

/// The wire form is the whole contract with `src/driver/wire.js`: pin it (and
/// tests/e2e/driver-wire.test.mjs reads this same text).
#[test]
fn forward_plan_crosses_as_tagged_edit_lines() {
    let f = Forward {
        url: "http://o/p?q".into(),
        service: Some("APP".into()),
        drop_body: true,
        timeout_ms: Some(5000),
        strip: vec!["x_session".into()],
        cookie: CookieEdit::Set("a=1".into()),
        session: SessionHeaders {
            session: Some("e30".into()),
            status: "valid",
            handle: Some("h".into()),
            expires: Some(9),
        },
        forwarded_for: Some("1.2.3.4".into()),
        forwarded_host: "app".into(),
        forwarded_proto: "https".into(),
        real_ip: Some("1.2.3.4".into()),
        identity: vec![("x-forwarded-user".into(), "ada".into())],
        via: "m".into(),
        pass_unless: Some("session"),
    };
    assert_eq!(
        f.wire(),
        "Uhttp://o/p?q\nSAPP\nT5000\nB\nQsession\n-x_session\n=cookie:a=1\n=x-session:e30\n\
         =x-session-status:valid\n=x-session-id:h\n=x-session-expires:9\n\
         =x-forwarded-for:1.2.3.4\n=x-forwarded-host:app\n=x-forwarded-proto:https\n\
         =x-real-ip:1.2.3.4\n=x-forwarded-user:ada\n=x-session-via:m\n"
    );
    let r = Rewrap {
        strip: vec!["x-session-set".into()],
        set_cookie: Some("kc=v; Path=/".into()),
        cache_control: Some("private".into()),
        offer: None,
    };
    assert_eq!(
        r.wire(),
        "-x-session-set\n+set-cookie:kc=v; Path=/\n=cache-control:private\n"
    );
}

/// Regression (critical): only names starting exactly with `x-session` were
/// stripped, so `X_Session: <base64 of {"user":"root"}>` reached PHP and WSGI apps
/// as `HTTP_X_SESSION`, a forged session.
#[test]
fn client_aliases_of_reserved_headers_are_stripped() {
    let cfg = config(&[]);
    let forged = crate::util::b64(r#"{"user":"root"}"#);
    let h = hdrs(&[
        ("x_session", &forged),
        ("x.session", &forged),
        ("x_session_status", "valid"),
        ("x-session-id", "h"),
        ("x_forwarded_user", "root"),
        ("x-forwarded-host", "evil.example"),
        ("forwarded", "for=6.6.6.6"),
        ("x_real_ip", "6.6.6.6"),
        ("x-sessions", "kept"),
        ("accept", "*/*"),
    ]);
    let (_, step) = start(&cfg, Bindings::default(), &get(&h), T0);
    let f = forward(step);
    assert_eq!(
        f.strip,
        [
            "x_session",
            "x.session",
            "x_session_status",
            "x-session-id",
            "x_forwarded_user",
            "x-forwarded-host",
            "forwarded",
            "x_real_ip"
        ]
    );
    assert_eq!(f.session.session, None);
    assert_eq!(f.real_ip, None, "no CF-Connecting-IP, no X-Real-IP");
    let wire = f.wire();
    assert!(!wire.contains("x-sessions"), "{wire}");
    assert!(!wire.contains(&forged), "{wire}");
}

/// Regression: a `GET` with a body made the runtime's `Request` constructor throw,
/// a 500 for a well-formed request.
#[test]
fn get_and_head_are_forwarded_without_their_body() {
    let cfg = config(&[]);
    let h = hdrs(&[("content-length", "5"), ("content-type", "text/plain")]);
    for (method, bodiless) in [
        ("GET", true),
        ("HEAD", true),
        ("POST", false),
        ("PUT", false),
    ] {
        let req = Incoming { method, ..get(&h) };
        let f = forward(start(&cfg, Bindings::default(), &req, T0).1);
        assert_eq!(f.drop_body, bodiless, "{method}");
        assert_eq!(
            f.strip.contains(&"content-length".to_owned()),
            bodiless,
            "{method}"
        );
    }
}

#[test]
fn valid_cookie_session_is_forwarded_and_the_session_cookie_removed() {
    let cfg = config(&[
        ("SESSION_STORE", "cookie"),
        ("ORIGIN_URL", "http://127.0.0.1:9000"),
    ]);
    let (cookie, writes) = sign_in(&cfg, Bindings::default(), r#"{"user":"ada"}"#);
    assert!(writes.is_empty(), "cookie mode never writes KV");
    let h = cookie_hdr(Some(&cookie));
    let (mut ex, step) = start(&cfg, Bindings::default(), &get(&h), T0 + 1);
    let f = forward(step);
    assert_eq!(f.url, "http://127.0.0.1:9000/account?tab=1");
    assert_eq!(f.cookie, CookieEdit::Remove);
    assert_eq!(f.session.status, "valid");
    assert!(f.session.session.is_some() && f.session.handle.is_some());
    let pass = ex.answered(&ok());
    assert_eq!(
        pass,
        Step::Pass,
        "nothing to change: the response goes through untouched"
    );
}

#[test]
fn origin_aliases_of_control_headers_are_stripped_and_never_applied() {
    let cfg = config(&[]);
    let mut ex = forwarded(&cfg, Bindings::default());
    let h = hdrs(&[
        ("x_session_set", r#"{"user":"mallory"}"#),
        ("x.session.action", "regenerate"),
        ("x-session-internal", "debug"),
        ("x-sessions", "kept"),
    ]);
    assert_eq!(
        ex.answered(&answer(200, &h)),
        Step::Rewrap(Rewrap {
            strip: vec![
                "x_session_set".into(),
                "x.session.action".into(),
                "x-session-internal".into()
            ],
            set_cookie: None,
            cache_control: None,
            offer: None,
        })
    );
}

#[test]
fn control_headers_on_5xx_are_ignored_and_logged() {
    let cfg = config(&[]);
    let mut ex = forwarded(&cfg, Bindings::default());
    let h = hdrs(&[("x-session-set", r#"{"user":"mallory"}"#)]);
    let r = rewrap(ex.answered(&answer(503, &h)));
    assert_eq!(r.set_cookie, None);
    assert_eq!(r.strip, ["x-session-set"]);
    let logs = ex.take_logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].event, "control_ignored");
}

/// A shared cache in front of the origin stored a response that set someone's
/// session: its control headers were meant for whoever caused it to be stored.
#[test]
fn control_headers_of_a_cached_response_are_never_applied() {
    let cfg = config(&[]);
    for cached in [
        ("age", "12"),
        ("cf-cache-status", "HIT"),
        ("cf-cache-status", "stale"),
    ] {
        let mut ex = forwarded(&cfg, Bindings::default());
        let h = hdrs(&[("x-session-set", r#"{"user":"ada"}"#), cached]);
        let r = rewrap(ex.answered(&answer(200, &h)));
        assert_eq!(r.set_cookie, None, "{cached:?}");
        assert_eq!(ex.take_logs()[0].event, "control_ignored");
    }
    let mut ex = forwarded(&cfg, Bindings::default());
    let h = hdrs(&[
        ("x-session-set", r#"{"user":"ada"}"#),
        ("cf-cache-status", "MISS"),
    ]);
    assert!(rewrap(ex.answered(&answer(200, &h))).set_cookie.is_some());
}

#[test]
fn a_response_that_sets_the_session_cookie_is_kept_out_of_shared_caches() {
    let cfg = config(&[]);
    for (origin, want) in [
        (None, Some("private")),
        (Some("public, max-age=600"), Some("private, max-age=600")),
        (
            Some("max-age=60, s-maxage=600, must-revalidate"),
            Some("private, max-age=60, must-revalidate"),
        ),
        (Some("no-store"), None),
        (Some("private, No-Store"), None),
    ] {
        let mut ex = forwarded(&cfg, Bindings::default());
        let mut pairs = vec![("x-session-set", r#"{"user":"ada"}"#)];
        pairs.extend(origin.map(|o| ("cache-control", o)));
        let h = hdrs(&pairs);
        let r = rewrap(ex.answered(&answer(200, &h)));
        assert!(r.set_cookie.is_some());
        assert_eq!(r.cache_control.as_deref(), want, "{origin:?}");
    }
}

#[test]
fn bad_control_header_is_logged_without_its_value() {
    let cfg = config(&[]);
    let mut ex = forwarded(&cfg, Bindings::default());
    let h = hdrs(&[("x-session-set", r#"{"secret-value":"#)]);
    let _ = ex.answered(&answer(200, &h));
    let logs = ex.take_logs();
    assert_eq!(logs[0].event, "bad_control_header");
    assert!(
        !logs[0].line().contains("secret-value"),
        "{}",
        logs[0].line()
    );
}

#[test]
fn kv_session_reads_its_record_and_writes_nothing_when_unchanged() {
    let cfg = config(&[("SESSION_STORE", "kv")]);
    let (cookie, put) = kv_session(&cfg);
    let h = cookie_hdr(Some(&cookie));
    let (mut ex, step) = start(&cfg, kv(), &get(&h), T0 + 1);
    assert_eq!(
        step,
        Step::KvGet {
            key: put.key.clone()
        }
    );
    let f = forward(ex.kv_read(Ok(Some(put.value.clone()))));
    assert_eq!(f.session.status, "valid");
    assert_eq!(ex.answered(&ok()), Step::Pass);
}

#[test]
fn kv_record_missing_means_invalid_and_the_cookie_is_cleared() {
    let cfg = config(&[("SESSION_STORE", "kv")]);
    let (cookie, _) = kv_session(&cfg);
    let h = cookie_hdr(Some(&cookie));
    let (mut ex, _) = start(&cfg, kv(), &get(&h), T0 + 1);
    let f = forward(ex.kv_read(Ok(None)));
    assert_eq!(f.session.status, "invalid");
    let sc = set_cookie(ex.answered(&ok()));
    assert!(sc.contains("Max-Age=0"), "{sc}");
}

#[test]
fn kv_read_failure_follows_the_policy() {
    let err = || "boom".to_owned();
    for (policy, open) in [("closed", false), ("open", true)] {
        let cfg = config(&[("SESSION_STORE", "kv"), ("SESSION_KV_FAILURE", policy)]);
        let (cookie, _) = kv_session(&cfg);
        let h = cookie_hdr(Some(&cookie));
        let (mut ex, _) = start(&cfg, kv(), &get(&h), T0 + 1);
        let step = ex.kv_read(Err(err()));
        if open {
            let f = forward(step);
            assert_eq!(f.session.status, "invalid");
            assert_eq!(
                ex.answered(&ok()),
                Step::Pass,
                "the browser's cookie is left alone"
            );
        } else {
            let r = reply(step);
            assert_eq!(r.status, 503);
            assert_eq!(r.headers, vec![("retry-after", "5".to_owned())]);
        }
        let logs = ex.take_logs();
        assert_eq!(logs[0].event, "kv_unavailable", "{policy}");
    }
}

/// Regression: in `auto` mode with KV unreadable under the open policy, a small
/// `Set` created a new cookie session whose cookie replaced the user's KV-backed one.
#[test]
fn nothing_is_created_or_issued_while_the_store_is_unreadable() {
    let cfg = config(&[("SESSION_KV_FAILURE", "open")]);
    let big = format!(r#"{{"blob":"{}"}}"#, "y".repeat(7000));
    let (cookie, writes) = sign_in(&cfg, kv(), &big);
    assert!(matches!(writes.as_slice(), [Step::KvPut(_)]), "spilled");
    let h = cookie_hdr(Some(&cookie));
    let (mut ex, step) = start(&cfg, kv(), &get(&h), T0 + 1);
    assert!(matches!(step, Step::KvGet { .. }));
    let err = "boom".to_owned();
    forward(ex.kv_read(Err(err)));
    let h = hdrs(&[("x-session-set", r#"{"theme":"dark"}"#)]);
    let r = rewrap(ex.answered(&answer(200, &h)));
    assert_eq!(r.set_cookie, None, "the user's cookie is left alone");
    let events: Vec<_> = ex.take_logs().iter().map(|l| l.event).collect();
    assert_eq!(events, ["kv_unavailable", "control_ignored"]);
}

#[test]
fn kv_write_failure_follows_the_policy() {
    let err = || "boom".to_owned();
    for (policy, open) in [("closed", false), ("open", true)] {
        let cfg = config(&[("SESSION_STORE", "kv"), ("SESSION_KV_FAILURE", policy)]);
        let mut ex = forwarded(&cfg, kv());
        let h = hdrs(&[("x-session-set", r#"{"user":"ada"}"#)]);
        let step = ex.answered(&answer(200, &h));
        assert!(matches!(step, Step::KvPut(_)), "{step:?}");
        let step = ex.written(Err(err()));
        if open {
            assert_eq!(
                rewrap(step).set_cookie,
                None,
                "no cookie pointing at a record that was never written"
            );
        } else {
            assert_eq!(reply(step).status, 503);
        }
    }
}

/// Regression: under `SESSION_KV_FAILURE=open`, a `destroy` whose KV delete failed
/// still answered "signed out" while the record lived on.
#[test]
fn a_destroy_that_cannot_revoke_fails_closed_whatever_the_policy() {
    let cfg = config(&[("SESSION_STORE", "kv"), ("SESSION_KV_FAILURE", "open")]);
    let (cookie, put) = kv_session(&cfg);
    let err = || "boom".to_owned();
    // The failure may hit the tombstone or the record's deletion.
    for fail_at in 0..2 {
        let h = cookie_hdr(Some(&cookie));
        let (mut ex, _) = start(&cfg, kv(), &get(&h), T0 + 1);
        forward(ex.kv_read(Ok(Some(put.value.clone()))));
        let h = hdrs(&[("x-session-action", "destroy")]);
        let mut step = ex.answered(&answer(200, &h));
        for _ in 0..fail_at {
            step = ex.written(Ok(()));
        }
        assert!(matches!(step, Step::KvPut(_) | Step::KvDelete { .. }));
        let r = reply(ex.written(Err(err())));
        assert_eq!(r.status, 503, "fail at {fail_at}");
    }
}

/// Regression: a stolen cookie replayed where a stale KV location still served the
/// deleted record could re-put it with a fresh TTL (a refresh, or any `Set`), and
/// that write could beat the delete: revocation undone for good.
#[test]
fn a_revoked_session_is_never_written_again() {
    let cfg = config(&[("SESSION_STORE", "kv")]);
    let (cookie, put) = kv_session(&cfg);
    let h = cookie_hdr(Some(&cookie));

    // Sign out: a tombstone under its own key, then the record's deletion.
    let (mut ex, _) = start(&cfg, kv(), &get(&h), T0 + 1);
    forward(ex.kv_read(Ok(Some(put.value.clone()))));
    let destroy = hdrs(&[("x-session-action", "destroy")]);
    let step = ex.answered(&answer(200, &destroy));
    let (writes, end) = write_all(&mut ex, step);
    let [Step::KvPut(tomb), Step::KvDelete { key }] = writes.as_slice() else {
        panic!("{writes:?}")
    };
    assert_eq!(key, &put.key);
    assert_ne!(tomb.key, put.key);
    assert!(tomb.key.starts_with("keycard:revoked."), "{}", tomb.key);
    assert_eq!(tomb.ttl, 5000 - 1, "kept until the absolute expiry");
    assert!(set_cookie(end).contains("Max-Age=0"));

    // The replay, at a location that still has the record, with a Set and a refresh
    // due: the tombstone is looked at before the put, found, and nothing is written
    // but the record's deletion here too.
    for (at, origin) in [
        (T0 + 2, hdrs(&[("x-session-set", r#"{"n":1}"#)])),
        (T0 + 500, hdrs(&[])),
    ] {
        let (mut ex, _) = start(&cfg, kv(), &get(&h), at);
        let f = forward(ex.kv_read(Ok(Some(put.value.clone()))));
        assert_eq!(f.session.status, "valid", "the stale location still has it");
        let step = ex.answered(&answer(200, &origin));
        assert_eq!(
            step,
            Step::KvGet {
                key: tomb.key.clone()
            }
        );
        let step = ex.kv_read(Ok(Some(tomb.value.clone())));
        let (writes, end) = write_all(&mut ex, step);
        assert_eq!(
            writes,
            [Step::KvDelete {
                key: put.key.clone()
            }]
        );
        assert!(set_cookie(end).contains("Max-Age=0"));
        assert_eq!(ex.take_logs()[0].event, "session_revoked");
    }
}

#[test]
fn regenerate_revokes_the_old_id_and_writes_the_new_one_unchecked() {
    let cfg = config(&[("SESSION_STORE", "kv")]);
    let (cookie, put) = kv_session(&cfg);
    let h = cookie_hdr(Some(&cookie));
    let (mut ex, _) = start(&cfg, kv(), &get(&h), T0 + 1);
    forward(ex.kv_read(Ok(Some(put.value.clone()))));
    let regen = hdrs(&[("x-session-action", "regenerate")]);
    let step = ex.answered(&answer(200, &regen));
    let (writes, end) = write_all(&mut ex, step);
    let [Step::KvPut(new), Step::KvPut(tomb), Step::KvPut(marker)] = writes.as_slice() else {
        panic!("{writes:?}")
    };
    assert_ne!(
        new.key, put.key,
        "a new id, never revoked: no tombstone to check"
    );
    assert!(tomb.key.starts_with("keycard:revoked."));
    // The old record is its tombstone for a minute: the page's requests in flight.
    assert_eq!(
        (&marker.key, &marker.value, marker.ttl),
        (&put.key, &tomb.value, 60)
    );
    assert!(!set_cookie(end).contains("Max-Age=0"));
}

#[test]
fn a_refresh_of_a_live_kv_session_checks_its_tombstone_then_writes() {
    let cfg = config(&[("SESSION_STORE", "kv")]);
    let (cookie, put) = kv_session(&cfg);
    let h = cookie_hdr(Some(&cookie));
    let (mut ex, _) = start(&cfg, kv(), &get(&h), T0 + 100);
    forward(ex.kv_read(Ok(Some(put.value.clone()))));
    let step = ex.answered(&ok());
    assert!(matches!(&step, Step::KvGet { key } if key.contains("revoked.")));
    let step = ex.kv_read(Ok(None));
    let (writes, end) = write_all(&mut ex, step);
    assert!(matches!(writes.as_slice(), [Step::KvPut(p)] if p.key == put.key));
    assert!(set_cookie(end).starts_with(&cfg.cookie.name));
}

#[test]
fn auto_mode_without_a_binding_keeps_sessions_in_the_cookie() {
    let cfg = config(&[]);
    let big = format!(r#"{{"blob":"{}"}}"#, "y".repeat(7000));
    let mut ex = forwarded(&cfg, Bindings::default());
    let h = hdrs(&[("x-session-set", &big)]);
    let r = reply(ex.answered(&answer(200, &h)));
    assert_eq!(
        (r.status, r.body.as_str()),
        (500, "keycard: internal error")
    );
    let logs = ex.take_logs();
    assert_eq!(logs[0].event, "session_too_large");
    assert!(!logs[0].line().contains("yyyy"));
}

#[test]
fn missing_bindings_fail_closed_naming_the_variable() {
    let cfg = config(&[("SESSION_STORE", "kv")]);
    let (mut ex, step) = start(&cfg, Bindings::default(), &get(""), T0);
    assert_eq!(reply(step).status, 500);
    assert_eq!(ex.take_logs()[0].detail["var"], "SESSION_KV_BINDING");

    let cfg = config(&[("ORIGIN_SERVICE", "APP")]);
    let (mut ex, step) = start(&cfg, Bindings::default(), &get(""), T0);
    assert_eq!(reply(step).body, "keycard: misconfigured");
    assert_eq!(ex.take_logs()[0].detail["var"], "ORIGIN_SERVICE");

    let b = Bindings {
        origin_service: Binding::Present,
        ..Default::default()
    };
    assert_eq!(
        forward(start(&cfg, b, &get(""), T0).1).service.as_deref(),
        Some("APP")
    );
}

#[test]
fn misconfiguration_is_an_opaque_500() {
    let e = ConfigError {
        var: "SESSION_SECRET",
        problem: "is missing".into(),
    };
    let (step, log) = misconfigured(&e);
    let r = reply(step);
    assert_eq!((r.status, r.body.as_str()), (500, "keycard: misconfigured"));
    assert_eq!(log.detail["var"], "SESSION_SECRET");
}

#[test]
fn unreachable_origin_is_a_502() {
    let cfg = config(&[]);
    let (mut ex, _) = start(&cfg, Bindings::default(), &get(""), T0);
    let r = reply(ex.unreachable("connection refused"));
    assert_eq!(
        (r.status, r.body.as_str()),
        (502, "keycard: origin unreachable")
    );
    assert_eq!(ex.take_logs()[0].event, "origin_unreachable");
}

#[test]
fn an_origin_past_its_timeout_is_a_504_and_changes_nothing() {
    let cfg = config(&[("ORIGIN_TIMEOUT", "5s")]);
    let (mut ex, step) = start(&cfg, Bindings::default(), &get(""), T0);
    assert_eq!(forward(step).timeout_ms, Some(5000));
    let r = reply(ex.timed_out());
    assert_eq!(
        (r.status, r.body.as_str()),
        (504, "keycard: origin timeout")
    );
    assert!(r.headers.is_empty(), "no cookie: no session change");
    assert_eq!(ex.take_logs()[0].event, "origin_timeout");
    // Without the setting there is no timeout, and so no such call.
    let cfg = config(&[]);
    let (mut ex, step) = start(&cfg, Bindings::default(), &get(""), T0);
    assert_eq!(forward(step).timeout_ms, None);
    assert_eq!(reply(ex.timed_out()).status, 500);
}

#[test]
fn calls_out_of_order_are_internal_errors_not_panics() {
    let cfg = config(&[]);
    let (mut ex, _) = start(&cfg, Bindings::default(), &get(""), T0);
    assert_eq!(reply(ex.written(Ok(()))).status, 500);
    assert_eq!(reply(ex.kv_read(Ok(None))).status, 500);
    assert_eq!(reply(ex.answered(&ok())).status, 500);
    assert_eq!(reply(ex.unreachable("x")).status, 500);
    assert_eq!(reply(ex.timed_out()).status, 500);
}

#[test]
fn endpoints_answer_without_the_origin() {
    let cfg = config(&[("KEYCARD_INSPECT", "true")]);
    let at = |method: &'static str, url: &'static str| Incoming {
        method,
        url,
        ..Default::default()
    };
    let health = reply(start(&cfg, kv(), &at("GET", "https://h/.keycard/health"), T0).1);
    assert_eq!((health.status, health.content_type), (200, JSON));
    assert!(health.body.contains(r#""kv":true"#), "{}", health.body);
    let r = reply(start(&cfg, kv(), &at("POST", "https://h/.keycard/health"), T0).1);
    assert_eq!(
        (r.status, r.headers.clone()),
        (405, vec![("allow", "GET".to_owned())])
    );
    let r = reply(start(&cfg, kv(), &at("GET", "https://h/.keycard"), T0).1);
    assert_eq!(
        (r.status, r.headers.clone()),
        (308, vec![("location", "/.keycard/".to_owned())])
    );
    assert_eq!(
        reply(start(&cfg, kv(), &at("GET", "https://h/.keycard/nope!"), T0).1).status,
        404
    );
    let r = reply(start(&cfg, kv(), &at("GET", "https://h/.keycard/session"), T0).1);
    assert!(r.body.contains(r#""status":"none""#), "{}", r.body);

    // Assets come from the assets binding, when there is one.
    let asset = at("GET", "https://h/.keycard/");
    assert_eq!(reply(start(&cfg, kv(), &asset, T0).1).status, 404);
    let b = Bindings {
        assets: Binding::Present,
        ..kv()
    };
    assert_eq!(
        start(&cfg, b, &asset, T0).1,
        Step::Asset {
            url: "https://h/index.html".into()
        }
    );
}

#[test]
fn logout_revokes_the_record_and_clears_the_cookie() {
    let cfg = config(&[("SESSION_STORE", "kv")]);
    let (cookie, put) = kv_session(&cfg);
    let h = hdrs(&[("cookie", &cookie), ("sec-fetch-site", "same-origin")]);
    let req = Incoming {
        method: "POST",
        url: "https://h/.keycard/logout?next=/bye",
        headers: HeaderList::new(&h),
    };
    let (mut ex, step) = start(&cfg, kv(), &req, T0 + 1);
    assert!(matches!(step, Step::KvGet { .. }));
    let step = ex.kv_read(Ok(Some(put.value.clone())));
    let (writes, end) = write_all(&mut ex, step);
    assert!(
        matches!(writes.as_slice(), [Step::KvPut(t), Step::KvDelete { key }]
            if t.key.contains("revoked.") && key == &put.key),
        "{writes:?}"
    );
    let r = reply(end);
    assert_eq!(r.status, 303);
    assert_eq!(r.headers[0], ("location", "/bye".to_owned()));
    assert!(r.headers[1].1.contains("Max-Age=0"));

    // A logout that cannot delete the record fails closed whatever the policy:
    // answering "signed out" while the record lives on would be a lie.
    let cfg = config(&[("SESSION_STORE", "kv"), ("SESSION_KV_FAILURE", "open")]);
    let (cookie, put) = kv_session(&cfg);
    let h = hdrs(&[("cookie", &cookie)]);
    let req = Incoming {
        headers: HeaderList::new(&h),
        ..req
    };
    let (mut ex, _) = start(&cfg, kv(), &req, T0 + 1);
    let _ = ex.kv_read(Ok(Some(put.value.clone())));
    let err = "boom".to_owned();
    assert_eq!(reply(ex.written(Err(err))).status, 503);
}

/// Regression: only `Sec-Fetch-Site: cross-site` was refused, so a sibling
/// subdomain (`same-site`), or an old browser sending only `Origin`, could sign a
/// user out.
#[test]
fn cross_origin_logout_is_refused() {
    let cfg = config(&[]);
    for (site, origin, refused) in [
        (Some("cross-site"), None, true),
        (Some("same-site"), None, true),
        (None, Some("https://evil.example"), true),
        (None, Some("null"), true),
        (Some("same-origin"), None, false),
        (Some("none"), None, false),
        (None, Some("https://h"), false),
        (None, None, false),
    ] {
        let mut pairs = Vec::new();
        pairs.extend(site.map(|s| ("sec-fetch-site", s)));
        pairs.extend(origin.map(|o| ("origin", o)));
        let h = hdrs(&pairs);
        let req = Incoming {
            method: "POST",
            url: "https://h/.keycard/logout",
            headers: HeaderList::new(&h),
        };
        let (mut ex, step) = start(&cfg, Bindings::default(), &req, T0);
        let r = reply(step);
        assert_eq!(r.status == 403, refused, "{site:?} {origin:?}");
        if refused {
            assert_eq!(ex.take_logs()[0].event, "logout_refused");
        }
    }
}

#[test]
fn a_forged_cookie_is_logged_without_its_value_and_cleared() {
    let cfg = config(&[]);
    let forged = format!(
        "{}=v1.AAAA.1.1.1.c2lk.e30.bWFj-forged-value",
        cfg.cookie.name
    );
    let h = cookie_hdr(Some(&forged));
    let (mut ex, step) = start(&cfg, Bindings::default(), &get(&h), T0);
    let f = forward(step);
    assert_eq!(f.session.status, "invalid");
    assert_eq!(f.session.session, None);
    let logs = ex.take_logs();
    assert_eq!(logs[0].event, "bad_cookie");
    assert!(!logs[0].line().contains("forged-value"));
    let sc = set_cookie(ex.answered(&ok()));
    assert!(sc.starts_with(&format!("{}=;", cfg.cookie.name)), "{sc}");
    assert!(sc.contains("Max-Age=0"), "{sc}");
}

/// A request at `url` with `headers`, `method`.
fn at<'a>(method: &'a str, url: &'a str, headers: &'a str) -> Incoming<'a> {
    Incoming {
        method,
        url,
        headers: HeaderList::new(headers),
    }
}

#[test]
fn a_required_path_without_a_signed_in_user_never_reaches_the_origin() {
    let cfg = config(&[
        ("KEYCARD_REQUIRE", "/admin"),
        ("KEYCARD_LOGIN_URL", "/login"),
    ]);
    let url = "https://app.example/admin/x?a=1";
    let page = hdrs(&[("sec-fetch-mode", "navigate")]);
    let r = reply(start(&cfg, Bindings::default(), &at("GET", url, &page), T0).1);
    assert_eq!(r.status, 303);
    assert_eq!(
        r.headers,
        [("location", "/login?next=%2Fadmin%2Fx%3Fa%3D1".to_owned())]
    );
    // No Sec-Fetch-Mode: an Accept with HTML is a page load too.
    let html = hdrs(&[("accept", "text/html,*/*")]);
    assert_eq!(
        reply(start(&cfg, Bindings::default(), &at("GET", url, &html), T0).1).status,
        303
    );
    for (method, h) in [
        (
            "GET",
            hdrs(&[("sec-fetch-mode", "cors"), ("accept", "text/html")]),
        ),
        ("POST", page.clone()),
        (
            "GET",
            hdrs(&[("upgrade", "websocket"), ("accept", "text/html")]),
        ),
        ("GET", String::new()),
    ] {
        let r = reply(start(&cfg, Bindings::default(), &at(method, url, &h), T0).1);
        assert_eq!((r.status, r.content_type), (401, JSON), "{method} {h}");
        assert_eq!(
            r.body,
            r#"{"error":"session_required","login":"/login?next=%2Fadmin%2Fx%3Fa%3D1"}"#
        );
    }
    // An anonymous session (a cart) is not a sign-in.
    let (cookie, _) = sign_in(&cfg, Bindings::default(), r#"{"cart":[1]}"#);
    let h = hdrs(&[("cookie", &cookie)]);
    assert_eq!(
        reply(start(&cfg, Bindings::default(), &at("GET", url, &h), T0 + 1).1).status,
        401
    );
    // Other paths go through as before.
    let f = forward(
        start(
            &cfg,
            Bindings::default(),
            &at("GET", "https://app.example/about", ""),
            T0,
        )
        .1,
    );
    assert_eq!(f.session.status, "none");
}

#[test]
fn without_a_login_url_everything_gets_the_401_and_a_bad_cookie_is_still_cleared() {
    let cfg = config(&[("KEYCARD_REQUIRE", "/")]);
    let forged = format!(
        "cookie:{}=v1.AAAA.1.1.1.c2lk.e30.bWFj\nsec-fetch-mode:navigate\n",
        cfg.cookie.name
    );
    let r = reply(
        start(
            &cfg,
            Bindings::default(),
            &at("GET", "https://h/x", &forged),
            T0,
        )
        .1,
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.body, r#"{"error":"session_required","login":null}"#);
    assert!(matches!(r.headers.as_slice(), [("set-cookie", sc)] if sc.contains("Max-Age=0")));
}

#[test]
fn a_signed_in_user_reaches_the_origin_with_identity_headers() {
    let cfg = config(&[
        ("KEYCARD_REQUIRE", "/admin"),
        (
            "KEYCARD_IDENTITY_HEADERS",
            "X-Forwarded-User=user, X-Forwarded-Groups=roles, X-Forwarded-Email=email",
        ),
    ]);
    let (cookie, _) = sign_in(
        &cfg,
        Bindings::default(),
        r#"{"user":"ada","roles":["admin",7],"email":"a\u0007b"}"#,
    );
    let h = hdrs(&[
        ("cookie", &cookie),
        ("x_forwarded_user", "root"),
        ("x-forwarded-groups", "root"),
    ]);
    let (mut ex, step) = start(
        &cfg,
        Bindings::default(),
        &at("GET", "https://h/admin", &h),
        T0 + 1,
    );
    let f = forward(step);
    assert_eq!(
        f.identity,
        [
            ("x-forwarded-user".to_owned(), "ada".to_owned()),
            ("x-forwarded-groups".to_owned(), "admin,7".to_owned())
        ]
    );
    assert!(
        f.strip.contains(&"x_forwarded_user".to_owned()),
        "{:?}",
        f.strip
    );
    let logs = ex.take_logs();
    assert_eq!(logs[0].event, "identity_header_skipped");
    assert_eq!(logs[0].detail["header"], "x-forwarded-email");
    assert!(!logs[0].line().contains("a\\u0007b"));
    // Forged identity headers are dropped for anonymous requests too.
    let h = hdrs(&[("X-Forwarded-User", "root")]);
    let f = forward(start(&cfg, Bindings::default(), &at("GET", "https://h/", &h), T0).1);
    assert_eq!(f.strip, ["X-Forwarded-User"]);
    assert!(f.identity.is_empty());
}

#[test]
fn cross_origin_unsafe_requests_are_refused_before_anything_else() {
    let cfg = config(&[]);
    let h = hdrs(&[("sec-fetch-site", "cross-site")]);
    let (mut ex, step) = start(&cfg, Bindings::default(), &at("POST", URL, &h), T0);
    let r = reply(step);
    assert_eq!(
        (r.status, r.body.as_str()),
        (403, "keycard: cross-origin request refused")
    );
    let logs = ex.take_logs();
    assert_eq!(logs[0].event, "cross_origin_refused");
    assert_eq!(logs[0].detail["method"], "POST");
    // Regression (exchange fuzz target): the method is the client's text and was logged
    // as it came, so a client could write anything, a cookie value say, into the log.
    let secretish = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA";
    let (mut ex, _) = start(&cfg, Bindings::default(), &at(secretish, URL, &h), T0);
    let line = ex.take_logs()[0].line();
    assert!(!line.contains(secretish), "{line}");
    assert!(line.contains("\"method\":\"other\""), "{line}");
    assert!(matches!(
        start(&cfg, Bindings::default(), &at("GET", URL, &h), T0).1,
        Step::Forward(_)
    ));
    let off = config(&[("KEYCARD_CSRF", "off")]);
    assert!(matches!(
        start(&off, Bindings::default(), &at("POST", URL, &h), T0).1,
        Step::Forward(_)
    ));
}

/// Issue 23: a Worker on `workers.dev` with `ORIGIN_URL` unset (route mode) has no origin
/// to forward to. Every request there, health included, is a misconfiguration that names
/// `ORIGIN_URL`; the same Worker on a route of a zone, or with an `ORIGIN_URL`, forwards,
/// and so does keycard inside a workers-rs app, whose handler is the origin (found by
/// the review: every request of the embedded example on workers.dev was a 500).
#[test]
fn route_mode_on_a_workers_dev_address_is_a_misconfiguration_naming_origin_url() {
    let route_mode = config(&[]);
    for url in [
        "https://keycard.ada.workers.dev/",
        "https://keycard.ada.WORKERS.DEV:443/account",
    ] {
        for path in ["", ".keycard/health"] {
            let url = format!("{url}{path}");
            let (mut ex, step) = start(&route_mode, Bindings::default(), &at("GET", &url, ""), T0);
            let r = reply(step);
            assert_eq!(r.status, 500, "{url}");
            assert_eq!(r.body, "keycard: misconfigured");
            let logs = ex.take_logs();
            assert_eq!(logs[0].event, "misconfigured");
            assert_eq!(logs[0].detail["var"], "ORIGIN_URL");
            assert!(logs[0].detail["problem"]
                .as_str()
                .unwrap()
                .contains("workers.dev"));
        }
    }
    for url in [
        "https://workers.dev.example/",
        "https://app.example/",
        "https://notworkers.dev/",
    ] {
        let step = start(&route_mode, Bindings::default(), &at("GET", url, ""), T0).1;
        assert!(matches!(step, Step::Forward(_)), "{url}");
    }
    // Inside a workers-rs app the handler is the origin: nothing is fetched.
    let embedded = Bindings {
        forwarding: Forwarding::Handler,
        ..Bindings::default()
    };
    let step = start(
        &route_mode,
        embedded,
        &at("GET", "https://keycard.ada.workers.dev/", ""),
        T0,
    )
    .1;
    assert!(matches!(step, Step::Forward(_)), "embedded");
    let with_origin = config(&[("ORIGIN_URL", "https://app.example")]);
    let step = start(
        &with_origin,
        Bindings::default(),
        &at("GET", "https://keycard.ada.workers.dev/", ""),
        T0,
    )
    .1;
    assert!(matches!(step, Step::Forward(_)));
}

/// Issue 23: with `ORIGIN_URL` unset or misspelled under `wrangler dev`, keycard
/// forwarded each request to itself, thousands of times, until a 500 with a stack trace.
/// Its mark on the forwarded request makes the second pass a 508 that names the cause.
#[test]
fn a_request_that_comes_back_to_keycard_is_a_508_naming_the_variable() {
    for (pairs, var, problem) in [
        (&[][..], "ORIGIN_URL", "is unset"),
        (
            &[("ORIGIN_URL", "https://app.example")][..],
            "ORIGIN_URL",
            "points back",
        ),
        (
            &[("ORIGIN_SERVICE", "APP")][..],
            "ORIGIN_SERVICE",
            "names a service",
        ),
    ] {
        let cfg = config(pairs);
        let b = Bindings {
            origin_service: Binding::Present,
            ..Default::default()
        };
        let first = forward(start(&cfg, b, &get(""), T0).1);
        assert_eq!(first.via, cfg.keys.current().loop_mark());
        assert!(first
            .wire()
            .contains(&format!("\n=x-session-via:{}", first.via)));
        let back = hdrs(&[("x-session-via", &first.via)]);
        let (mut ex, step) = start(&cfg, b, &get(&back), T0);
        let r = reply(step);
        assert_eq!(r.status, 508, "{pairs:?}");
        assert!(r.body.contains(var), "{}", r.body);
        let logs = ex.take_logs();
        assert_eq!(logs[0].event, "forward_loop");
        assert_eq!(logs[0].detail["var"], var);
        assert!(logs[0].detail["problem"]
            .as_str()
            .unwrap()
            .starts_with(problem));
    }
    // Another keycard in front of this one has another mark: forwarded, the mark
    // dropped like any reserved header and replaced with this one's.
    let front = config(&[(
        "SESSION_SECRET",
        "another-secret-0123456789abcdef0123456789",
    )]);
    let cfg = config(&[]);
    let theirs = hdrs(&[("x-session-via", front.keys.current().loop_mark())]);
    let f = forward(start(&cfg, Bindings::default(), &get(&theirs), T0).1);
    assert!(f.strip.iter().any(|n| n == "x-session-via"));
    assert_ne!(f.via, front.keys.current().loop_mark());
}

/// Every driver answers with exactly the headers a reply carries: it adds none, so
/// `no-store` is decided here, once.
#[test]
fn a_reply_carries_all_its_headers_no_store_included() {
    let cfg = config(&[]);
    let h = hdrs(&[("origin", "https://evil.example")]);
    let r = reply(start(&cfg, Bindings::default(), &at("POST", URL, &h), T0).1);
    let all: Vec<(&str, &str)> = r.all_headers().collect();
    assert_eq!(
        all,
        [("content-type", TEXT), ("cache-control", "no-store")],
        "{r:?}"
    );
    let loc = reply(
        start(
            &cfg,
            Bindings::default(),
            &at("POST", "https://app.example/.keycard/logout?next=/bye", ""),
            T0,
        )
        .1,
    );
    assert!(
        loc.all_headers()
            .any(|(n, v)| n == "location" && v == "/bye"),
        "{loc:?}"
    );
    assert_eq!(
        loc.all_headers()
            .filter(|(n, _)| *n == "cache-control")
            .count(),
        1
    );
}
