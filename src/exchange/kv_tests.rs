//! Sessions in KV, request after request: the scenarios a session store must pass (as
//! tower-sessions' `route_tests!` has them), driven through whole exchanges by the
//! [`World`] against [`FakeKv`]. The Workers KV binding runs the same scenarios end to
//! end in `tests/e2e/kv.test.mjs`.

use serde_json::{json, Value};

use super::harness::{claims_of, refresh_headers, start_request, Browser, Seen, World};
use super::*;
use crate::session::{read, Location, Read, Status};
use crate::testing::{FakeKv, T0};

/// A Worker with KV (and no users' objects), configured with `pairs`.
fn kv_world(pairs: &[(&str, &str)]) -> World {
    World::with(
        pairs,
        Bindings {
            kv: Binding::Present,
            ..Default::default()
        },
    )
}

/// One `GET /` from `b` at `now`, the origin answering with `control`.
fn get(w: &mut World, b: &mut Browser, now: u64, control: &[(&str, &str)]) -> Seen {
    w.now = now;
    w.go(b, "GET", "/", control)
}

/// The origin's `X-Session-Set: json`.
fn set(json: &str) -> [(&str, &str); 1] {
    [("x-session-set", json)]
}

/// The origin's `X-Session-Action: action`.
fn act(action: &str) -> [(&str, &str); 1] {
    [("x-session-action", action)]
}

/// The KV key of `b`'s session record.
fn record_key(w: &World, b: &Browser) -> String {
    let h = format!("{}={}", w.cfg.cookie.name, b.jar.as_ref().unwrap());
    match read(&w.cfg, Some(&h), T0) {
        Read::NeedsRecord(p) => p.key,
        other => panic!("not a KV session: {other:?}"),
    }
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
    let mut w = kv_world(&[("SESSION_STORE", "kv")]);
    let mut c = Browser::default();
    get(&mut w, &mut c, T0, &set(r#"{"user":"ada"}"#));
    assert_eq!(w.p.puts, 1);
    for i in 1..20 {
        let f = get(&mut w, &mut c, T0 + i, &[]);
        assert_eq!(f.data(), json!({"user":"ada"}));
    }
    assert_eq!(w.p.puts, 1, "requests that change nothing write nothing");
}

#[test]
fn logout_revokes_replayed_cookie() {
    let mut w = kv_world(&[("SESSION_STORE", "kv")]);
    let mut c = Browser::default();
    get(&mut w, &mut c, T0, &set(r#"{"user":"ada"}"#));
    let stolen = c.jar.clone();
    get(&mut w, &mut c, T0 + 1, &act("destroy"));
    assert!(c.jar.is_none());
    assert_eq!((records(&w.p), tombstones(&w.p)), (0, 1));
    let mut thief = Browser {
        jar: stolen,
        ..Default::default()
    };
    let f = get(&mut w, &mut thief, T0 + 2, &[]);
    assert_eq!(f.status(), "invalid");
    assert!(thief.jar.is_none(), "the replayed cookie is cleared");
}

#[test]
fn regenerate_invalidates_the_old_cookie() {
    let mut w = kv_world(&[("SESSION_STORE", "kv")]);
    let mut c = Browser::default();
    get(&mut w, &mut c, T0, &set(r#"{"n":1}"#));
    let old = c.jar.clone();
    let old_key = record_key(&w, &c);
    get(&mut w, &mut c, T0 + 1, &act("regenerate"));
    assert_eq!(tombstones(&w.p), 1, "its id revoked");
    assert_eq!(
        w.p.expiry(&old_key),
        Some(T0 + 1 + 60),
        "the old record is its tombstone for a minute"
    );
    let f = get(&mut w, &mut c, T0 + 2, &[]);
    assert_eq!(f.data(), json!({"n":1}));
    let mut replay = Browser {
        jar: old,
        ..Default::default()
    };
    let f = get(&mut w, &mut replay, T0 + 3, &[]);
    assert_eq!(f.status(), "invalid");
    assert!(replay.jar.is_some(), "within the minute, left alone");
    let f = get(&mut w, &mut replay, T0 + 62, &[]);
    assert_eq!(f.status(), "invalid");
    assert_eq!(records(&w.p), 1, "then the old record is gone");
    assert!(replay.jar.is_none(), "and its cookie is cleared");
}

/// The page's requests in flight while it signs in carry the old cookie, and their
/// answers arrive after the new one. They must neither clear nor replace it, or the
/// user is signed out the moment they sign in: whether such a request reached KV after
/// the regenerate (it finds the old record's marker), or before it and has something
/// to write (its write finds the tombstone).
#[test]
fn requests_in_flight_during_a_regenerate_leave_the_new_cookie_alone() {
    let mut w = kv_world(&[("SESSION_STORE", "kv"), ("KEYCARD_REQUIRE", "/account")]);
    let mut page = Browser::default();
    get(&mut w, &mut page, T0, &set(r#"{"cart":[1]}"#));
    let guest = page.jar.clone();

    // Read before the sign-in, answered after it with a change to write.
    let mut early = page.clone();
    w.now = T0 + 1;
    let mut in_flight = start_request(&mut w, &early, "GET", "/poll");
    w.sign_in(&mut page, "ada");
    assert_ne!(page.jar, guest);

    // Sent before the sign-in's answer arrived, read after it.
    let mut late = Browser {
        jar: guest.clone(),
        ..Default::default()
    };
    let seen = w.go(&mut late, "GET", "/", &set(r#"{"cart":[1,2]}"#));
    assert_eq!(seen.status(), "invalid", "the old id is no session");
    assert_eq!(late.jar, guest, "no cookie cleared or issued");
    assert!(w.logged("control_ignored"));
    // A sign-out the user clicked before the new cookie arrived still signs them out.
    let mut sign_out = late.clone();
    w.go(&mut sign_out, "POST", "/logout", &act("destroy"));
    assert_eq!(sign_out.jar, None);
    let seen = w.go(&mut late, "GET", "/account", &[]);
    assert_eq!(
        seen.status(),
        "not forwarded",
        "a required path wants a sign-in"
    );
    assert_eq!(late.jar, guest, "but clears nothing");

    let last = w.answer(&mut in_flight, &mut early, &set(r#"{"cart":[1,3]}"#));
    assert_eq!(early.jar, guest, "no cookie cleared or issued: {last:?}");
    assert!(w.logged("session_revoked"));

    let f = w.go(&mut page, "GET", "/", &[]);
    assert_eq!(
        f.data(),
        json!({"cart":[1],"user":"ada"}),
        "still signed in"
    );
    assert_eq!(records(&w.p), 2, "the new record and the old one's marker");
}

#[test]
fn refresh_rewrites_record_with_ttl() {
    let mut w = kv_world(&[("SESSION_STORE", "kv")]);
    let mut c = Browser::default();
    get(&mut w, &mut c, T0, &set(r#"{"n":1}"#));
    let key = record_key(&w, &c);
    assert_eq!(w.p.expiry(&key), Some(T0 + 1000));
    get(&mut w, &mut c, T0 + 100, &[]);
    assert_eq!(w.p.puts, 2, "the refresh touches the record");
    assert_eq!(w.p.gets, 2, "its record, then its tombstone");
    assert_eq!(w.p.expiry(&key), Some(T0 + 1100));
}

#[test]
fn store_failure_is_an_error_not_a_session() {
    let mut w = kv_world(&[("SESSION_STORE", "kv")]);
    let mut c = Browser::default();
    get(&mut w, &mut c, T0, &set(r#"{"n":1}"#));
    w.p.failing.insert("get");
    w.now = T0 + 1;
    match w.peek(&c) {
        Err(Step::Reply(r)) => assert_eq!(r.status, 503),
        other => panic!("{other:?}"),
    }
}

/// `auto` keeps small data in the cookie (no store traffic) and spills big data.
#[test]
fn auto_mode_spills_and_shrinks_back() {
    let mut w = kv_world(&[]);
    let mut c = Browser::default();
    get(&mut w, &mut c, T0, &set(r#"{"n":1}"#));
    assert_eq!(w.p.puts, 0);
    let big = format!(r#"{{"blob":"{}"}}"#, "y".repeat(7000));
    get(&mut w, &mut c, T0 + 1, &set(&big));
    assert_eq!(records(&w.p), 1);
    assert!(c.jar.as_ref().unwrap().len() < 4096);
    for i in 2..30 {
        let f = get(&mut w, &mut c, T0 + i, &[]);
        assert_eq!(f.data()["blob"].as_str().unwrap().len(), 7000);
    }
    assert_eq!(w.p.puts, 1);
    get(&mut w, &mut c, T0 + 40, &set(r#"{"blob":null}"#));
    assert_eq!(w.p.keys().len(), 0);
    w.now = T0 + 41;
    let f = w.peek(&c).unwrap();
    assert_eq!(f.status, Status::Valid.as_str());
    let h = format!("{}={}", w.cfg.cookie.name, c.jar.as_ref().unwrap());
    let Read::Ready(s) = read(&w.cfg, Some(&h), T0 + 41) else {
        panic!("the session is back in the cookie")
    };
    assert_eq!(s.location, Location::Cookie);
}

/// A device-bound session (issue 27; binding itself comes with the registration
/// endpoint): once its record names a device, a request is signed in only with a valid
/// short-lived cookie. A copy of the session cookie alone is forwarded as no session,
/// keeps its cookie, writes nothing, and the origin's changes are not applied to it.
#[test]
fn a_bound_session_needs_its_short_lived_cookie() {
    use crate::dbsc::short_cookie;

    let (mut w, mut b, device) = bound_world(&[]);
    let key = record_key(&w, &b);
    let bound = w.p.get(&key).unwrap().unwrap();
    let sid = sid_of(&w, &b);
    let keys = w.cfg.keys.clone();
    let proof = |exp| {
        let v = short_cookie::value(&keys, &sid, &device.thumbprint(), exp);
        format!("{}={v}", "__Host-keycard-bound")
    };

    let mut thief = b.clone();
    let jar = thief.jar.clone();
    let seen = get(&mut w, &mut thief, T0 + 2, &set(r#"{"user":"mallory"}"#));
    assert_eq!((seen.status(), seen.user()), ("none", None));
    assert!(
        matches!(&seen.last, Step::Rewrap(r) if r.set_cookie.is_none()),
        "{:?}",
        seen.last
    );
    assert_eq!(
        thief.jar, jar,
        "the cookie is kept: the real browser may be refreshing"
    );
    assert_eq!(
        w.p.get(&key).unwrap().as_deref(),
        Some(bound.as_str()),
        "nothing written"
    );
    assert!(w.logged("control_ignored"));

    thief.others = format!("{}=1900000000.AAAA", "__Host-keycard-bound");
    assert_eq!(
        get(&mut w, &mut thief, T0 + 2, &[]).status(),
        "none",
        "a forged one"
    );

    b.others = proof(T0 + 50);
    let seen = get(&mut w, &mut b, T0 + 3, &[]);
    assert_eq!(
        (seen.status(), seen.user().as_deref()),
        ("valid", Some("ada"))
    );
    let seen = get(&mut w, &mut b, T0 + 50, &[]);
    assert_eq!(seen.status(), "none", "an expired one");
}

/// A KV world with device-bound sessions on, `b` signed in as ada and bound by hand to
/// a P-256 key (as a registration would), with `last_ms` 1.
fn bound_world(pairs: &[(&str, &str)]) -> (World, Browser, crate::dbsc::proof::BoundKey) {
    use crate::dbsc::proof::BoundKey;
    let mut all = vec![("SESSION_STORE", "kv"), ("KEYCARD_DEVICE_BOUND", "on")];
    all.extend_from_slice(pairs);
    let mut w = kv_world(&all);
    let mut b = Browser::default();
    w.sign_in(&mut b, "ada");
    let key = record_key(&w, &b);
    let device = BoundKey::from_stored(&format!(
        r#"ES256 {{"kty":"EC","crv":"P-256","x":"{}","y":"{}"}}"#,
        crate::util::b64([1u8; 32]),
        crate::util::b64([2u8; 32])
    ))
    .unwrap();
    let rec = w.p.get(&key).unwrap().unwrap();
    let bound = format!(
        r#"{},"bound":{{"key":{},"thumb":"{}","last":1}}}}"#,
        &rec[..rec.len() - 1],
        Value::from(device.stored()),
        device.thumbprint()
    );
    w.p.put(&key, &bound, 600).unwrap();
    (w, b, device)
}

/// The session id in `b`'s cookie.
fn sid_of(w: &World, b: &Browser) -> crate::crypto::keys::SessionId {
    claims_of(w, b).sid
}

/// Review of issue 27: a rotation of SESSION_SECRET changed the session's identifier
/// (its handle under the current key), so every bound session's refresh was refused.
#[test]
fn a_bound_session_refreshes_across_a_rotation() {
    use crate::testing::SECRET;
    let (mut w, mut b, _) = bound_world(&[]);
    let old_handle = w.cfg.keys.current().handle(&sid_of(&w, &b));
    w.cfg = crate::testing::config(&[
        ("SESSION_STORE", "kv"),
        ("KEYCARD_DEVICE_BOUND", "on"),
        (
            "SESSION_SECRET",
            "the rotated secret, 0123456789abcdef0123456789",
        ),
        ("SESSION_SECRET_PREVIOUS", SECRET),
    ]);
    b.headers = format!("sec-secure-session-id:{old_handle}\n");
    let seen = w.go(&mut b, "POST", "/.keycard/dbsc/refresh", &[]);
    let r = seen.reply();
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r
        .headers
        .iter()
        .any(|(n, v)| *n == "secure-session-challenge"
            && v.ends_with(&format!(r#"id="{old_handle}""#))));
}

/// Review of issue 27: a refresh wrote the session's record back without looking at
/// its tombstone, so a session signed out while its proof was checked came back.
#[test]
fn a_refresh_does_not_bring_back_an_ended_session() {
    use crate::dbsc::challenge;
    let (mut w, mut b, _) = bound_world(&[]);
    let sid = sid_of(&w, &b);
    let handle = w.cfg.keys.current().handle(&sid);
    let c = challenge::mint(
        &w.cfg.keys,
        &handle,
        w.now * 1000,
        &mut crate::testing::CountingEntropy(9),
    );
    w.p.put(
        &crate::session::record::tombstone_key(&w.cfg.kv_prefix, &sid),
        "{}",
        600,
    )
    .unwrap();
    b.headers = refresh_headers(&handle, &c);
    let (mut ex, step) = w.begin(&b, "POST", "/.keycard/dbsc/refresh");
    assert!(matches!(step, Step::Verify(_)), "{step:?}");
    let step = ex.verified(Ok(true));
    let last = w.p.drive(&mut ex, step);
    let Step::Reply(r) = &last else {
        panic!("{last:?}")
    };
    assert_eq!(r.status, 200);
    assert!(r.body.contains(r#""continue":false"#), "{}", r.body);
    assert!(
        !r.headers
            .iter()
            .any(|(_, v)| v.starts_with("__Host-keycard-bound")),
        "no short-lived cookie"
    );
    assert_eq!(
        w.p.get(&record_key(&w, &b)).unwrap(),
        None,
        "the record is not written back"
    );
}

/// Review of issue 27: the origin's `regenerate` (or a sign-in) gave the bound session
/// a new id while keeping the binding, whose short-lived cookie names the old id: the
/// user was signed out at once. A new id is unbound, and binding is offered again.
#[test]
fn a_regenerated_bound_session_is_unbound_and_offered_binding_again() {
    use crate::dbsc::short_cookie;
    let (mut w, mut b, device) = bound_world(&[]);
    let sid = sid_of(&w, &b);
    let v = short_cookie::value(&w.cfg.keys, &sid, &device.thumbprint(), w.now + 60);
    b.others = format!("{}={v}", "__Host-keycard-bound");
    let now = w.now;
    let seen = get(&mut w, &mut b, now, &act("regenerate"));
    assert_eq!(seen.status(), "valid");
    let Step::Rewrap(r) = &seen.last else {
        panic!("{:?}", seen.last)
    };
    assert!(
        r.offer
            .as_deref()
            .is_some_and(|o| o.starts_with("(ES256 RS256)")),
        "{r:?}"
    );
    let next = get(&mut w, &mut b, now + 1, &[]);
    assert_eq!(
        (next.status(), next.user().as_deref()),
        ("valid", Some("ada"))
    );
}

/// Review of issue 27: a KV outage under SESSION_KV_FAILURE=open told the browser its
/// bound session was gone (`continue: false`), which it then dropped for good.
#[test]
fn a_refresh_during_a_kv_outage_is_a_503_not_an_end() {
    let (mut w, mut b, _) = bound_world(&[("SESSION_KV_FAILURE", "open")]);
    let handle = w.cfg.keys.current().handle(&sid_of(&w, &b));
    w.p.failing.insert("get");
    b.headers = format!("sec-secure-session-id:{handle}\n");
    let seen = w.go(&mut b, "POST", "/.keycard/dbsc/refresh", &[]);
    assert_eq!(seen.reply().status, 503);
}

// ---- Review of the requests in flight during a sign-in ----

/// In `auto`, a request the page sent before the sign-in, whose answer shrinks
/// a session that had spilled to KV, moves the old id back into the cookie without
/// looking at its tombstone. Its answer replaces the new cookie with a cookie-stored
/// session under the old (revoked) id, and deletes the old record's marker: the user
/// is signed out the moment they sign in, and the old id is forwarded as a valid
/// session from then on.
#[test]
fn an_in_flight_shrink_in_auto_neither_replaces_the_new_cookie_nor_revives_the_old_id() {
    let mut w = kv_world(&[]);
    let mut page = Browser::default();
    let big = format!(r#"{{"cart":[1],"blob":"{}"}}"#, "y".repeat(7000));
    get(&mut w, &mut page, T0, &set(&big));
    assert_eq!(records(&w.p), 1, "spilled to KV");
    let guest = page.jar.clone();

    let mut early = page.clone();
    w.now = T0 + 1;
    let mut in_flight = start_request(&mut w, &early, "GET", "/cart/clear");
    w.sign_in(&mut page, "ada");
    let old_marker = w.p.keys();

    // The app drops the blob: the old session would now fit in the cookie.
    let last = w.answer(&mut in_flight, &mut early, &set(r#"{"blob":null}"#));
    assert_eq!(
        early.jar, guest,
        "no cookie issued for the replaced id: {last:?}"
    );
    assert_eq!(w.p.keys(), old_marker, "the marker is left alone");

    // Whatever the browser holds now, the old id is no session.
    let mut after = Browser {
        jar: early.jar.clone(),
        ..Default::default()
    };
    let seen = w.go(&mut after, "GET", "/", &[]);
    assert_ne!(seen.status(), "valid", "the replaced id came back");
}

/// In `auto` (older than the marker, the same root cause), a KV session signed out
/// while another tab's request was at the origin comes back as a cookie-stored session
/// when that request's answer shrinks it: "a revoked session can never come back"
/// (docs/stores.md) does not hold for the move back into the cookie.
#[test]
fn a_destroyed_kv_session_does_not_come_back_in_the_cookie() {
    let mut w = kv_world(&[]);
    let mut tab1 = Browser::default();
    let big = format!(r#"{{"user":"ada","blob":"{}"}}"#, "y".repeat(7000));
    get(&mut w, &mut tab1, T0, &set(&big));
    let mut tab2 = tab1.clone();
    w.now = T0 + 1;
    let mut in_flight = start_request(&mut w, &tab2, "GET", "/shrink");
    get(&mut w, &mut tab1, T0 + 2, &act("destroy"));
    assert!(tab1.jar.is_none());
    let _ = w.answer(&mut in_flight, &mut tab2, &set(r#"{"blob":null}"#));
    let seen = get(&mut w, &mut tab2, T0 + 3, &[]);
    assert_eq!(
        (seen.status() == "valid", seen.user()),
        (false, None),
        "signed out, and signed back in by a request in flight"
    );
}

/// Drives `ex` from `step`, failing the `nth` KV put (0-based) it asks for.
fn drive_failing_put(
    w: &mut World,
    ex: &mut Exchange<crate::testing::CountingEntropy>,
    mut step: Step,
    nth: usize,
) -> Step {
    let mut puts = 0;
    loop {
        step = match step {
            Step::KvGet { key } => ex.kv_read(w.p.get(&key)),
            Step::KvPut(p) => {
                puts += 1;
                match puts - 1 == nth {
                    true => ex.written(Err("injected failure".into())),
                    false => ex.written(w.p.put(&p.key, &p.value, p.ttl)),
                }
            }
            Step::KvDelete { key } => ex.written(w.p.delete(&key)),
            other => return other,
        }
    }
}

/// A regenerate whose marker write fails (after its tombstone was written) answers
/// 500 and leaves the old record whole. A regenerated tombstone must not make every
/// later write of that cookie a silent no-op while its reads stay valid: past the
/// minute, the first write ends it like any revoked session. The same under
/// `SESSION_KV_FAILURE=open`.
#[test]
fn a_failed_marker_write_does_not_leave_a_session_that_drops_every_write() {
    for policy in ["closed", "open"] {
        let mut w = kv_world(&[("SESSION_STORE", "kv"), ("SESSION_KV_FAILURE", policy)]);
        let mut page = Browser::default();
        get(&mut w, &mut page, T0, &set(r#"{"cart":[1]}"#));
        w.now = T0 + 1;
        let (mut ex, step) = w.begin(&page, "POST", "/login");
        assert!(matches!(step, Step::Forward(_)), "{step:?}");
        let answered = ex.answered(&Answer {
            status: 200,
            headers: crate::http::headers::HeaderList::new(
                "x-session-set:{\"user\":\"ada\"}\nx-session-action:regenerate\n",
            ),
        });
        // The new record, the tombstone, then the marker: the marker's put fails.
        let last = drive_failing_put(&mut w, &mut ex, answered, 2);
        let last = w.end(&mut ex, &mut page, last);
        assert!(
            matches!(&last, Step::Reply(r) if r.status >= 500),
            "{policy}: {last:?}"
        );

        // The user goes on with the cookie they still hold: its first write after
        // the marker's minute (no request in flight any more) ends it, as before.
        get(&mut w, &mut page, T0 + 100, &set(r#"{"cart":[1,2]}"#));
        let seen = get(&mut w, &mut page, T0 + 101, &[]);
        assert_ne!(
            seen.status(),
            "valid",
            "{policy}: the old id still reads as a session whose writes are all dropped"
        );
    }
}
