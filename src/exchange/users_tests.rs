//! Sign-out everywhere, request after request: browsers of one user and of another,
//! driven through whole exchanges against [`FakeKv`] and the users' objects running
//! their real logic ([`FakeUsers`](crate::testing::FakeUsers)). The Worker runs the same
//! scenarios end to end with real Durable Objects in `tests/e2e/users.test.mjs`.

use serde_json::Value;

use super::harness::{start_request, Browser, Seen, World, STEP_UP};
use super::*;
use crate::testing::{config, T0};

#[test]
fn a_sign_in_registers_with_one_call_and_reads_cost_none() {
    let mut w = World::new(&[]);
    let mut b = Browser::default();
    w.go(
        &mut b,
        "GET",
        "/cart",
        &[("x-session-set", r#"{"cart":[1]}"#)],
    );
    assert_eq!(
        w.ops(),
        Vec::<String>::new(),
        "an anonymous session never calls"
    );
    w.sign_in(&mut b, "ada");
    assert_eq!(w.ops(), ["see"], "sign-in: one call");
    let seen = w.go(&mut b, "GET", "/page", &[]);
    assert_eq!(seen.user().as_deref(), Some("ada"));
    assert_eq!(
        w.ops(),
        Vec::<String>::new(),
        "a plain read in writes mode calls nothing"
    );
    w.go(&mut b, "POST", "/form", &[]);
    assert_eq!(w.ops(), ["see"], "an unsafe method is checked");
    w.now += 100;
    w.go(&mut b, "GET", "/page", &[]);
    assert_eq!(
        w.ops(),
        ["see", "see"],
        "a refresh is checked before it is forwarded, and again when it is re-issued"
    );
}

#[test]
fn destroy_others_revokes_every_other_session_of_the_user_only() {
    let mut w = World::new(&[]);
    let (mut laptop, mut phone, mut other) = Default::default();
    w.sign_in(&mut laptop, "ada");
    w.sign_in(&mut phone, "ada");
    w.sign_in(&mut other, "bob");
    w.go(
        &mut phone,
        "POST",
        "/devices",
        &[("x-session-action", "destroy-others")],
    );
    let lost = w.go(&mut laptop, "POST", "/form", &[]);
    assert_eq!(lost.status(), "invalid", "the other session is revoked");
    assert!(laptop.jar.is_none(), "and its cookie cleared");
    assert!(w.logged("session_revoked"));
    assert_eq!(w.go(&mut phone, "POST", "/form", &[]).status(), "valid");
    assert_eq!(w.go(&mut other, "POST", "/form", &[]).status(), "valid");
}

#[test]
fn destroy_all_ends_this_session_and_a_replayed_cookie_is_refused() {
    let mut w = World::new(&[("SESSION_STORE", "cookie")]);
    let mut b = Browser::default();
    w.sign_in(&mut b, "ada");
    let copy = b.clone();
    w.go(
        &mut b,
        "POST",
        "/everywhere",
        &[("x-session-action", "destroy-all")],
    );
    assert!(b.jar.is_none(), "this session's cookie is cleared");
    let mut thief = copy;
    let replay = w.go(&mut thief, "POST", "/transfer", &[]);
    assert_eq!(
        replay.status(),
        "invalid",
        "even a cookie-mode session is revoked"
    );
    assert_eq!(replay.user(), None);
}

#[test]
fn a_revoked_session_reads_until_its_next_check_in_writes_mode_and_never_in_always() {
    for (check, reads) in [("writes", true), ("always", false)] {
        let mut w = World::new(&[
            ("SESSION_REVOCATION_CHECK", check),
            ("SESSION_STORE", "cookie"),
        ]);
        let (mut a, mut b) = (Browser::default(), Browser::default());
        w.sign_in(&mut a, "ada");
        w.sign_in(&mut b, "ada");
        w.go(
            &mut b,
            "POST",
            "/",
            &[("x-session-action", "destroy-others")],
        );
        let read = w.go(&mut a, "GET", "/page", &[]);
        assert_eq!(read.user().is_some(), reads, "{check}");
    }
}

#[test]
fn required_paths_are_always_checked() {
    let mut w = World::new(&[("KEYCARD_REQUIRE", "/admin")]);
    let (mut a, mut b) = (Browser::default(), Browser::default());
    w.sign_in(&mut a, "ada");
    w.sign_in(&mut b, "ada");
    w.go(
        &mut b,
        "POST",
        "/",
        &[("x-session-action", "destroy-others")],
    );
    let seen = w.go(&mut a, "GET", "/admin/x", &[]);
    assert_eq!(seen.status(), "not forwarded");
    assert_eq!(seen.reply().status, 401);
}

#[test]
fn the_login_url_says_revoked_only_for_a_session_ended_elsewhere() {
    let mut w = World::new(&[
        ("KEYCARD_REQUIRE", "/admin"),
        ("KEYCARD_LOGIN_URL", "/login"),
    ]);
    let login = |seen: &Seen| {
        let body: Value = serde_json::from_str(&seen.reply().body).unwrap();
        body["login"].as_str().unwrap().to_owned()
    };
    let (mut a, mut b) = (Browser::default(), Browser::default());
    w.sign_in(&mut a, "ada");
    w.sign_in(&mut b, "ada");
    w.go(
        &mut b,
        "POST",
        "/",
        &[("x-session-action", "destroy-others")],
    );
    let revoked = w.go(&mut a, "GET", "/admin/x", &[]);
    assert_eq!(login(&revoked), "/login?next=%2Fadmin%2Fx&session=revoked");
    assert!(a.jar.is_none(), "its cookie is cleared");
    // Then, without a cookie, it is any visitor; nor does a bad cookie say more.
    let anonymous = w.go(&mut a, "GET", "/admin/x", &[]);
    assert_eq!(login(&anonymous), "/login?next=%2Fadmin%2Fx");
    let mut forged = Browser {
        jar: Some("v1.AAAA.1.1.1.c2lk.e30.bWFj".into()),
        ..Default::default()
    };
    assert_eq!(
        login(&w.go(&mut forged, "GET", "/admin/x", &[])),
        "/login?next=%2Fadmin%2Fx"
    );
    // A signed-in session that is not revoked goes through.
    assert_eq!(w.go(&mut b, "GET", "/admin/x", &[]).status(), "valid");
}

#[test]
fn regenerate_revokes_the_old_id() {
    let mut w = World::new(&[("SESSION_STORE", "cookie")]);
    let mut b = Browser::default();
    w.sign_in(&mut b, "ada");
    let before = b.clone();
    w.go(&mut b, "POST", "/", &[("x-session-action", "regenerate")]);
    assert_ne!(b.jar, before.jar);
    let mut old = before;
    assert_eq!(w.go(&mut old, "POST", "/", &[]).status(), "invalid");
    assert_eq!(w.go(&mut b, "POST", "/", &[]).status(), "valid");
}

#[test]
fn a_revoked_session_in_kv_loses_its_record_too() {
    let mut w = World::new(&[("SESSION_STORE", "kv")]);
    let (mut a, mut b) = (Browser::default(), Browser::default());
    w.sign_in(&mut a, "ada");
    w.sign_in(&mut b, "ada");
    let records = w.p.keys().len();
    w.go(
        &mut b,
        "POST",
        "/",
        &[("x-session-action", "destroy-others")],
    );
    assert_eq!(w.go(&mut a, "POST", "/", &[]).status(), "invalid");
    let keys = w.p.keys();
    assert_eq!(keys.iter().filter(|k| k.contains("revoked.")).count(), 1);
    assert_eq!(keys.len(), records + 1 - 1, "a tombstone in, a record out");
}

#[test]
fn sign_out_revokes_the_copy_of_the_cookie() {
    let mut w = World::new(&[("SESSION_STORE", "cookie")]);
    let mut b = Browser::default();
    w.sign_in(&mut b, "ada");
    let copy = b.clone();
    let out = w.go(&mut b, "POST", "/.keycard/logout", &[]);
    assert_eq!(out.reply().status, 204);
    let mut thief = copy;
    assert_eq!(w.go(&mut thief, "POST", "/", &[]).status(), "invalid");
}

#[test]
fn revoke_names_sessions_by_handle_and_only_the_users_own() {
    let mut w = World::new(&[]);
    let (mut a, mut b, mut bob) = Default::default();
    w.sign_in(&mut a, "ada");
    let ha = w.go(&mut a, "GET", "/", &[]).handle();
    w.sign_in(&mut b, "ada");
    w.sign_in(&mut bob, "bob");
    // bob cannot end ada's session: it is not in his object.
    w.go(&mut bob, "POST", "/", &[("x-session-revoke", &ha)]);
    assert_eq!(w.go(&mut a, "POST", "/", &[]).status(), "valid");
    w.go(&mut b, "POST", "/", &[("x-session-revoke", &ha)]);
    assert_eq!(w.go(&mut a, "POST", "/", &[]).status(), "invalid");
    // Naming one's own handle is a sign-out.
    let hb = w.go(&mut b, "GET", "/", &[]).handle();
    w.go(&mut b, "POST", "/", &[("x-session-revoke", &hb)]);
    assert!(b.jar.is_none());
}

#[test]
fn the_sessions_endpoints_list_and_revoke() {
    let mut w = World::new(&[]);
    let (mut a, mut b, mut anon) = Default::default();
    w.sign_in(&mut a, "ada");
    w.sign_in(&mut b, "ada");
    let list = w.go(&mut a, "GET", "/.keycard/sessions", &[]);
    let r = list.reply();
    assert_eq!((r.status, r.content_type), (200, JSON));
    let v: Value = serde_json::from_str(&r.body).unwrap();
    let sessions = v["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    assert_eq!(sessions.iter().filter(|s| s["current"] == true).count(), 1);
    assert_eq!(sessions[0]["agent"], "Firefox on Linux");
    assert_eq!(sessions[0]["country"], "DE");
    let other = sessions.iter().find(|s| s["current"] == false).unwrap();
    let id = other["id"].as_str().unwrap();
    let done = w.go(
        &mut a,
        "POST",
        &format!("/.keycard/sessions/revoke?id={id}"),
        &[],
    );
    assert_eq!(done.reply().status, 204);
    assert_eq!(w.go(&mut b, "POST", "/", &[]).status(), "invalid");
    let denied = w.go(&mut anon, "GET", "/.keycard/sessions", &[]);
    assert_eq!(denied.reply().status, 401);
    let bad = w.go(&mut a, "POST", "/.keycard/sessions/revoke?id=nope", &[]);
    assert_eq!(bad.reply().status, 400);
}

#[test]
fn failures_follow_the_kv_policy_and_revocations_fail_closed() {
    let mut w = World::new(&[("SESSION_STORE", "cookie")]);
    let mut b = Browser::default();
    w.sign_in(&mut b, "ada");
    w.p.users.failing = true;
    let closed = w.go(&mut b, "POST", "/", &[]);
    assert_eq!(closed.reply().status, 503);
    assert!(w.logged("users_unavailable"));

    let mut w = World::new(&[("SESSION_STORE", "cookie"), ("SESSION_KV_FAILURE", "open")]);
    let mut b = Browser::default();
    w.sign_in(&mut b, "ada");
    w.p.users.failing = true;
    let open = w.go(&mut b, "POST", "/", &[]);
    assert_eq!(
        open.user().as_deref(),
        Some("ada"),
        "open: forwarded with the session"
    );
    let out = w.go(&mut b, "POST", "/", &[("x-session-action", "destroy")]);
    assert_eq!(
        out.reply().status,
        503,
        "a sign-out that cannot revoke is not claimed"
    );
}

#[test]
fn unbound_nothing_is_called_and_destroy_all_ends_this_session() {
    let mut w = World::new(&[("SESSION_STORE", "cookie")]);
    w.bindings.users = Binding::Absent;
    let mut b = Browser::default();
    w.sign_in(&mut b, "ada");
    w.go(
        &mut b,
        "POST",
        "/",
        &[("x-session-action", "destroy-others")],
    );
    assert!(w.logged("users_unbound"));
    w.go(&mut b, "POST", "/", &[("x-session-action", "destroy-all")]);
    assert!(b.jar.is_none());
    assert_eq!(w.ops(), Vec::<String>::new());
    let s = w.go(&mut b, "GET", "/.keycard/sessions", &[]);
    assert_eq!(s.reply().status, 404);
}

#[test]
fn a_named_binding_that_is_missing_or_of_another_kind_is_a_misconfiguration() {
    for (pairs, b) in [
        (&[("SESSION_USERS_BINDING", "USERS")][..], Binding::Absent),
        (&[][..], Binding::WrongKind),
    ] {
        let mut w = World::new(pairs);
        w.bindings.users = b;
        let seen = w.go(&mut Browser::default(), "GET", "/", &[]);
        assert_eq!(seen.reply().status, 500);
        assert!(w
            .logs
            .iter()
            .any(|l| l.detail["var"] == "SESSION_USERS_BINDING"));
    }
}

#[test]
fn during_a_rotation_revocations_reach_the_object_under_the_old_secret() {
    let old = "old-secret-0123456789abcdef0123456789abcdef";
    let mut w = World::new(&[("SESSION_SECRET", old), ("SESSION_STORE", "cookie")]);
    let (mut laptop, mut phone) = (Browser::default(), Browser::default());
    w.sign_in(&mut laptop, "ada");
    w.sign_in(&mut phone, "ada");
    w.cfg = config(&[
        ("SESSION_SECRET_PREVIOUS", old),
        ("SESSION_STORE", "cookie"),
    ]);
    // The phone's cookie is re-issued under the new secret; the laptop is not seen.
    w.go(
        &mut phone,
        "POST",
        "/",
        &[("x-session-action", "destroy-others")],
    );
    let lost = w.go(&mut laptop, "POST", "/", &[]);
    assert_eq!(lost.status(), "invalid");
}

#[test]
fn no_user_name_reaches_an_object_name_or_a_log_line() {
    let mut w = World::new(&[]);
    let mut b = Browser::default();
    w.sign_in(&mut b, "ada-the-unique-user");
    w.go(&mut b, "POST", "/", &[("x-session-action", "destroy-all")]);
    for name in w.p.users.objects.keys() {
        assert!(!name.contains("ada-the-unique-user"));
    }
    for l in &w.logs {
        assert!(!l.line().contains("ada-the-unique-user"), "{}", l.line());
    }
}

// ---- review (issue 13): attacks that should fail ----

/// Sign-in with a raw JSON user value (a number, say).
fn sign_in_raw(w: &mut World, b: &mut Browser, set: &str) {
    w.go(
        b,
        "POST",
        "/login",
        &[("x-session-set", set), ("x-session-action", "regenerate")],
    );
    w.now += 1;
}

/// Keeps `b` alive (a read every 900 s refreshes it) until `until`.
fn keep_alive(w: &mut World, b: &mut Browser, until: u64) {
    while w.now + 900 < until {
        w.now += 900;
        assert_eq!(w.go(b, "GET", "/", &[]).status(), "valid");
    }
    w.now = until;
}

#[test]
fn regenerate_on_an_unchecked_read_revives_a_revoked_session() {
    let mut w = World::new(&[("SESSION_STORE", "cookie")]);
    let (mut laptop, mut phone) = (Browser::default(), Browser::default());
    w.sign_in(&mut laptop, "ada");
    w.sign_in(&mut phone, "ada");
    w.go(
        &mut phone,
        "POST",
        "/devices",
        &[("x-session-action", "destroy-others")],
    );
    // The thief on the laptop reads a page whose answer rotates the id (a step-up page,
    // an app that regenerates on a schedule): a GET, so not checked in writes mode.
    w.go(
        &mut laptop,
        "GET",
        "/account",
        &[("x-session-action", "regenerate")],
    );
    assert!(
        laptop.jar.is_none(),
        "the regenerated cookie is refused and cleared"
    );
    let after = w.go(&mut laptop, "POST", "/transfer", &[]);
    assert_ne!(
        after.status(),
        "valid",
        "a revoked session came out of regenerate with a fresh, registered id"
    );
}

#[test]
fn regenerate_racing_destroy_all_revives_the_session_even_in_always_mode() {
    let mut w = World::new(&[
        ("SESSION_STORE", "cookie"),
        ("SESSION_REVOCATION_CHECK", "always"),
    ]);
    let (mut laptop, mut phone) = (Browser::default(), Browser::default());
    w.sign_in(&mut laptop, "ada");
    w.sign_in(&mut phone, "ada");
    // Request 1 from the laptop: checked (not revoked yet) and forwarded...
    let mut ex = start_request(&mut w, &laptop, "POST", "/step-up");
    // ...while the phone signs out everywhere (the laptop included).
    w.go(
        &mut phone,
        "POST",
        "/devices",
        &[("x-session-action", "destroy-others")],
    );
    // Request 1's answer arrives and regenerates: refused, the cookie cleared.
    let _ = w.answer(&mut ex, &mut laptop, &[("x-session-action", "regenerate")]);
    assert!(
        laptop.jar.is_none(),
        "the regenerated cookie is refused and cleared"
    );
    w.now += 1;
    assert_ne!(
        w.go(&mut laptop, "POST", "/transfer", &[]).status(),
        "valid",
        "the regenerated id of a session revoked mid-request is live"
    );
}

/// The page's requests in flight while a signed-in session is regenerated (a second
/// sign-in step) carry the old cookie, which its object now knows revoked. Under
/// `always`, a read of it after the regenerate, and one read before it whose answer has
/// something to write, each find it revoked: they must not clear the cookie, whose
/// answers arrive after the new one, nor may the old id sign anyone in.
#[test]
fn requests_in_flight_during_a_regenerate_leave_the_new_cookie_alone() {
    let mut w = World::new(&[
        ("SESSION_STORE", "cookie"),
        ("SESSION_REVOCATION_CHECK", "always"),
        ("KEYCARD_INSPECT", "true"),
    ]);
    let mut page = Browser::default();
    w.sign_in(&mut page, "ada");
    let old = page.jar.clone();
    let mut early = page.clone();
    let mut ex = start_request(&mut w, &early, "GET", "/poll");
    w.go(&mut page, "POST", "/step-up", &STEP_UP);
    assert_ne!(page.jar, old);

    let mut late = Browser {
        jar: old.clone(),
        ..Default::default()
    };
    let seen = w.go(
        &mut late,
        "GET",
        "/poll",
        &[("x-session-set", r#"{"n":1}"#)],
    );
    assert_eq!((seen.status(), seen.user()), ("invalid", None));
    assert_eq!(late.jar, old, "no cookie cleared or issued");
    assert!(w.logged("control_ignored"));
    let inspected = w.go(&mut late, "GET", "/.keycard/session", &[]);
    let v: Value = serde_json::from_str(&inspected.reply().body).unwrap();
    assert_eq!(v["status"], "invalid", "{v}");
    assert_eq!(late.jar, old, "nor by the inspector");

    let _ = w.answer(&mut ex, &mut early, &[("x-session-set", r#"{"n":2}"#)]);
    assert_eq!(early.jar, old, "no cookie cleared or issued");

    let seen = w.go(&mut page, "GET", "/", &[]);
    assert_eq!(seen.data(), serde_json::json!({"user":"ada","mfa":true}));
    w.now += crate::session::REGENERATED_WINDOW;
    let seen = w.go(&mut late, "GET", "/poll", &[]);
    assert_eq!(seen.status(), "invalid");
    assert_eq!(late.jar, None, "a minute on, it is cleared");
}

#[test]
fn max_age_outlives_the_objects_memory_of_the_session() {
    let mut w = World::new(&[("SESSION_STORE", "cookie")]);
    let (mut laptop, mut phone) = (Browser::default(), Browser::default());
    w.sign_in(&mut laptop, "ada"); // registered with expires T0 + 5000
                                   // "Remember me": the app restarts the laptop's absolute lifetime.
    keep_alive(&mut w, &mut laptop, T0 + 4500);
    w.go(
        &mut laptop,
        "POST",
        "/remember",
        &[("x-session-max-age", "5000")],
    );
    // Sign out everywhere after the session's *original* absolute expiry.
    w.now = T0 + 5200;
    w.sign_in(&mut phone, "ada");
    w.go(
        &mut phone,
        "POST",
        "/devices",
        &[("x-session-action", "destroy-others")],
    );
    let lost = w.go(&mut laptop, "POST", "/form", &[]);
    assert_eq!(
        lost.status(),
        "invalid",
        "destroy-others missed a live session"
    );
}

#[test]
fn a_signed_out_copy_comes_back_after_the_original_expiry() {
    let mut w = World::new(&[("SESSION_STORE", "cookie")]);
    let mut b = Browser::default();
    w.sign_in(&mut b, "ada");
    keep_alive(&mut w, &mut b, T0 + 4500);
    w.go(
        &mut b,
        "POST",
        "/remember",
        &[("x-session-max-age", "5000")],
    );
    let copy = b.clone();
    w.now = T0 + 4600;
    assert_eq!(
        w.go(&mut b, "POST", "/.keycard/logout", &[]).reply().status,
        204
    );
    let mut thief = copy;
    w.now = T0 + 4700;
    assert_eq!(
        w.go(&mut thief.clone(), "POST", "/", &[]).status(),
        "invalid"
    );
    w.now = T0 + 5100; // the copy is still within its idle and (extended) absolute time
    assert_eq!(
        w.go(&mut thief, "POST", "/transfer", &[]).status(),
        "invalid",
        "the revocation was forgotten at the session's original expiry"
    );
}

#[test]
fn destroy_with_x_session_revoke_revokes_the_named_sessions_too() {
    let mut w = World::new(&[]);
    let (mut a, mut b) = (Browser::default(), Browser::default());
    w.sign_in(&mut a, "ada");
    let ha = w.go(&mut a, "GET", "/", &[]).handle();
    w.sign_in(&mut b, "ada");
    w.go(
        &mut b,
        "POST",
        "/sign-out-here-and-there",
        &[("x-session-action", "destroy"), ("x-session-revoke", &ha)],
    );
    assert!(b.jar.is_none());
    assert_eq!(
        w.go(&mut a, "POST", "/", &[]).status(),
        "invalid",
        "the named session survived"
    );
}

#[test]
fn revoking_a_list_that_names_ones_own_handle_revokes_the_others_too() {
    let mut w = World::new(&[]);
    let (mut a, mut b) = (Browser::default(), Browser::default());
    w.sign_in(&mut a, "ada");
    let ha = w.go(&mut a, "GET", "/", &[]).handle();
    w.sign_in(&mut b, "ada");
    let hb = w.go(&mut b, "GET", "/", &[]).handle();
    w.go(
        &mut b,
        "POST",
        "/devices",
        &[("x-session-revoke", &format!("{hb}, {ha}"))],
    );
    assert!(b.jar.is_none(), "its own handle: a sign-out");
    assert_eq!(
        w.go(&mut a, "POST", "/", &[]).status(),
        "invalid",
        "the other handle in the list was dropped"
    );
}

#[test]
fn a_kv_failure_under_open_drops_destroy_others_silently() {
    let mut w = World::new(&[("SESSION_STORE", "kv"), ("SESSION_KV_FAILURE", "open")]);
    let (mut laptop, mut phone) = (Browser::default(), Browser::default());
    w.sign_in(&mut laptop, "ada");
    w.sign_in(&mut phone, "ada");
    w.p.failing.insert("put");
    let r = w.go(
        &mut phone,
        "POST",
        "/devices",
        &[
            ("x-session-set", r#"{"flash":"signed out elsewhere"}"#),
            ("x-session-action", "destroy-others"),
        ],
    );
    w.p.failing.clear();
    let lost = w.go(&mut laptop, "POST", "/form", &[]);
    // Either the revocation happened, or the app was told (503); not neither.
    let told = matches!(&r.last, Step::Reply(rep) if rep.status == 503);
    assert!(
        told || lost.status() == "invalid",
        "destroy-others neither done nor refused: {:?}",
        r.last
    );
}

#[test]
fn a_number_and_a_string_user_are_two_objects() {
    let mut w = World::new(&[("SESSION_STORE", "cookie")]);
    let (mut laptop, mut phone) = (Browser::default(), Browser::default());
    sign_in_raw(&mut w, &mut laptop, r#"{"user":42}"#);
    sign_in_raw(&mut w, &mut phone, r#"{"user":"42"}"#);
    w.go(
        &mut phone,
        "POST",
        "/devices",
        &[("x-session-action", "destroy-others")],
    );
    assert_eq!(w.go(&mut laptop, "POST", "/", &[]).status(), "invalid");
}

#[test]
fn a_stale_handle_after_rotation_is_recorded_in_the_old_object_only() {
    let old = "old-secret-0123456789abcdef0123456789abcdef";
    let mut w = World::new(&[("SESSION_SECRET", old), ("SESSION_STORE", "cookie")]);
    let (mut laptop, mut phone) = (Browser::default(), Browser::default());
    w.sign_in(&mut laptop, "ada");
    let stored_by_the_app = w.go(&mut laptop, "GET", "/", &[]).handle();
    w.sign_in(&mut phone, "ada");
    w.cfg = config(&[
        ("SESSION_SECRET_PREVIOUS", old),
        ("SESSION_STORE", "cookie"),
    ]);
    // Both browsers come back once after the rotation (re-issued, registered anew).
    w.go(&mut laptop, "POST", "/", &[]);
    w.go(&mut phone, "POST", "/", &[]);
    w.go(
        &mut phone,
        "POST",
        "/admin/revoke",
        &[("x-session-revoke", &stored_by_the_app)],
    );
    assert_eq!(
        w.go(&mut laptop, "POST", "/", &[]).status(),
        "invalid",
        "the old object revoked it, the current one never heard"
    );
}

#[test]
fn inspect_shows_a_revoked_session_as_valid_in_always_mode() {
    let mut w = World::new(&[
        ("SESSION_STORE", "cookie"),
        ("SESSION_REVOCATION_CHECK", "always"),
        ("KEYCARD_INSPECT", "true"),
    ]);
    let (mut laptop, mut phone) = (Browser::default(), Browser::default());
    w.sign_in(&mut laptop, "ada");
    w.sign_in(&mut phone, "ada");
    w.go(
        &mut phone,
        "POST",
        "/devices",
        &[("x-session-action", "destroy-others")],
    );
    let seen = w.go(&mut laptop, "GET", "/.keycard/session", &[]);
    let v: Value = serde_json::from_str(&seen.reply().body).unwrap();
    assert_ne!(v["status"], "valid", "{v}");
}

// ---- second review (issue 13) ----

const OLD: &str = "old-secret-0123456789abcdef0123456789abcdef";

fn rotate(w: &mut World, store: &str) {
    w.cfg = config(&[("SESSION_SECRET_PREVIOUS", OLD), ("SESSION_STORE", store)]);
}

#[test]
fn a_revocation_racing_the_first_request_after_a_rotation_is_lost() {
    let mut w = World::new(&[("SESSION_SECRET", OLD), ("SESSION_STORE", "cookie")]);
    let (mut laptop, mut phone) = (Browser::default(), Browser::default());
    w.sign_in(&mut laptop, "ada");
    w.sign_in(&mut phone, "ada");
    rotate(&mut w, "cookie");
    // The laptop's first request since the rotation: checked with the object under the
    // old secret (not revoked yet) and forwarded...
    let mut ex = start_request(&mut w, &laptop, "POST", "/form");
    // ...while the phone signs out everywhere else.
    w.go(
        &mut phone,
        "POST",
        "/devices",
        &[("x-session-action", "destroy-others")],
    );
    // The laptop's answer: nothing asked; its cookie is re-issued under the new secret.
    let _ = w.answer(&mut ex, &mut laptop, &[]);
    w.now += 1;
    assert!(
        laptop.jar.is_none(),
        "the re-issue is refused and the cookie cleared"
    );
    assert_ne!(
        w.go(&mut laptop, "POST", "/transfer", &[]).status(),
        "valid",
        "the re-issued cookie of a session revoked mid-request is live"
    );
}

#[test]
fn destroy_with_a_stale_handle_during_a_rotation_does_not_follow_it() {
    let mut w = World::new(&[("SESSION_SECRET", OLD), ("SESSION_STORE", "cookie")]);
    let (mut laptop, mut phone) = (Browser::default(), Browser::default());
    w.sign_in(&mut laptop, "ada");
    let stored_by_the_app = w.go(&mut laptop, "GET", "/", &[]).handle();
    w.sign_in(&mut phone, "ada");
    rotate(&mut w, "cookie");
    w.go(&mut laptop, "POST", "/", &[]);
    w.go(&mut phone, "POST", "/", &[]);
    // "Sign out here, and that device too": destroy, with the handle the app kept.
    w.go(
        &mut phone,
        "POST",
        "/sign-out-here-and-there",
        &[
            ("x-session-action", "destroy"),
            ("x-session-revoke", &stored_by_the_app),
        ],
    );
    assert!(phone.jar.is_none());
    assert_eq!(
        w.go(&mut laptop, "POST", "/", &[]).status(),
        "invalid",
        "the follow-up by key came after the caller's own revocation, which refused it"
    );
}

#[test]
fn a_logout_while_kv_cannot_be_read_under_open_claims_a_sign_out_that_did_not_happen() {
    let mut w = World::new(&[("SESSION_STORE", "kv"), ("SESSION_KV_FAILURE", "open")]);
    let mut b = Browser::default();
    w.sign_in(&mut b, "ada");
    let copy = b.clone();
    w.p.failing.insert("get");
    let out = w.go(&mut b, "POST", "/.keycard/logout", &[]);
    w.p.failing.clear();
    let mut thief = copy;
    let replay = w.go(&mut thief, "POST", "/transfer", &[]);
    // Either the sign-out happened, or it was not claimed (503); not neither.
    assert!(
        out.reply().status == 503 || replay.status() == "invalid",
        "logout answered {} and the copy is {}",
        out.reply().status,
        replay.status()
    );
}

#[test]
fn destroy_others_misses_a_copy_of_a_session_whose_user_field_was_removed() {
    let mut w = World::new(&[("SESSION_STORE", "cookie")]);
    let (mut laptop, mut phone) = (Browser::default(), Browser::default());
    w.sign_in(&mut laptop, "ada");
    // A copy taken by a thief while signed in.
    let copy = laptop.clone();
    // The laptop leaves the account (the user field removed, no destroy): it leaves
    // the device list, but is not revoked.
    w.go(
        &mut laptop,
        "POST",
        "/leave",
        &[("x-session-set", r#"{"user":null}"#)],
    );
    // Ada, on her phone, signs out every other session of hers.
    w.sign_in(&mut phone, "ada");
    w.go(
        &mut phone,
        "POST",
        "/devices",
        &[("x-session-action", "destroy-others")],
    );
    let mut thief = copy;
    let seen = w.go(&mut thief, "POST", "/transfer", &[]);
    assert_ne!(
        seen.user().as_deref(),
        Some("ada"),
        "a signed-in copy of ada's session outlived destroy-others"
    );
}

#[test]
fn destroy_others_misses_a_session_whose_registration_failed_under_open() {
    let mut w = World::new(&[("SESSION_STORE", "cookie"), ("SESSION_KV_FAILURE", "open")]);
    let (mut laptop, mut phone) = (Browser::default(), Browser::default());
    w.p.users.failing = true; // the object is briefly unreachable
    w.sign_in(&mut laptop, "ada");
    w.p.users.failing = false;
    assert!(
        laptop.jar.is_some(),
        "open: signed in, registration left for later"
    );
    w.sign_in(&mut phone, "ada");
    w.go(
        &mut phone,
        "POST",
        "/devices",
        &[("x-session-action", "destroy-others")],
    );
    assert_eq!(
        w.go(&mut laptop, "POST", "/transfer", &[]).status(),
        "invalid",
        "a session of ada's that the object never heard of outlived destroy-others"
    );
}

// ---- third review (issue 22) ----

/// Finding 4: a session checked before forwarding because its refresh was due was
/// re-issued without asking again, so a `destroy-others` that raced the request was
/// lost: the fresh cookie read on as `valid` until its next refresh.
#[test]
fn regression_a_revocation_racing_a_refresh_wins() {
    let mut w = World::new(&[("SESSION_STORE", "cookie")]);
    let (mut laptop, mut phone) = (Browser::default(), Browser::default());
    w.sign_in(&mut laptop, "ada");
    w.sign_in(&mut phone, "ada");
    w.now += w.cfg.refresh_after;
    // The laptop's refresh: checked (not revoked yet) and forwarded...
    let mut ex = start_request(&mut w, &laptop, "GET", "/slow");
    // ...while the phone signs out everywhere else.
    w.go(
        &mut phone,
        "POST",
        "/devices",
        &[("x-session-action", "destroy-others")],
    );
    let _ = w.answer(&mut ex, &mut laptop, &[]);
    assert!(
        laptop.jar.is_none(),
        "the re-issue is refused and the cookie cleared"
    );
    w.now += 1;
    assert_ne!(w.go(&mut laptop, "GET", "/", &[]).status(), "valid");
}

// ---- review of the requests in flight during a regenerate ----

/// During a rotation, a session whose cookie is still signed under the previous secret
/// is regenerated (a second sign-in step). The `See` that remembers the replaced key
/// goes to the object under the current secret only; the old key is revoked in the
/// previous secret's object by a plain `Revoke{Caller}`. The page's requests in
/// flight with the old cookie are checked with the object its cookie was signed for,
/// the previous one, which has no `regenerated` entry: it clears the new cookie.
#[test]
fn in_flight_requests_during_a_regenerate_under_a_rotation_leave_the_new_cookie_alone() {
    let mut w = World::new(&[("SESSION_SECRET", OLD), ("SESSION_STORE", "cookie")]);
    let mut page = Browser::default();
    w.sign_in(&mut page, "ada");
    rotate(&mut w, "cookie");
    let old = page.jar.clone();
    // A read before the step-up, answered after it with something to write.
    let mut early = page.clone();
    let mut ex = start_request(&mut w, &early, "GET", "/poll");
    w.go(&mut page, "POST", "/step-up", &STEP_UP);
    assert_ne!(page.jar, old);
    // A checked request that left with the old cookie, answered after the new one.
    let mut late = Browser {
        jar: old.clone(),
        ..Default::default()
    };
    let seen = w.go(&mut late, "POST", "/form", &[]);
    assert_eq!((seen.status(), seen.user()), ("invalid", None));
    assert_eq!(late.jar, old, "the checked request cleared the new cookie");
    let _ = w.answer(&mut ex, &mut early, &[("x-session-set", r#"{"n":2}"#)]);
    assert_eq!(early.jar, old, "the re-issue cleared the new cookie");
    // The old id still signs no one in, and a minute on it is cleared.
    w.now += crate::session::REGENERATED_WINDOW;
    let seen = w.go(&mut late, "POST", "/form", &[]);
    assert_eq!(seen.status(), "invalid");
    assert_eq!(late.jar, None);
}

/// The same step-up sent twice from one page (a double click): the second leaves with
/// the old cookie, and its own `regenerate` is refused, since the first revoked the old
/// id. It must not clear the first one's cookie, which arrives before its answer.
#[test]
fn a_regenerate_sent_twice_keeps_the_first_ones_cookie() {
    let mut w = World::new(&[("SESSION_STORE", "cookie")]);
    let mut page = Browser::default();
    w.sign_in(&mut page, "ada");
    let old = page.jar.clone();
    let mut second = page.clone();
    // Both read before either is answered (a GET is not checked before forwarding).
    let mut ex = start_request(&mut w, &second, "GET", "/step-up");
    w.now += 1; // (the test's entropy follows the clock: two new ids, not one)
    w.go(&mut page, "GET", "/step-up", &STEP_UP);
    assert_ne!(page.jar, old);
    let _ = w.answer(&mut ex, &mut second, &STEP_UP);
    assert_eq!(second.jar, old, "neither cleared nor replaced");
    let seen = w.go(&mut page, "POST", "/form", &[]);
    assert_eq!(
        seen.user().as_deref(),
        Some("ada"),
        "the first one's session"
    );
}

/// The device list (`GET sessions`, which the account page fetches) in flight while
/// the page's app regenerates the session: the object answers `caller_regenerated`,
/// but the endpoint answers every revoked caller with the clearing cookie, which
/// arrives after the new one and signs the user out.
#[test]
fn a_device_list_in_flight_across_a_regenerate_leaves_the_new_cookie_alone() {
    let mut w = World::new(&[("SESSION_STORE", "cookie")]);
    let mut page = Browser::default();
    w.sign_in(&mut page, "ada");
    let old = page.jar.clone();
    let mut late = page.clone();
    w.go(&mut page, "POST", "/step-up", &STEP_UP);
    assert_ne!(page.jar, old);
    let list = w.go(&mut late, "GET", "/.keycard/sessions", &[]);
    assert_eq!(list.reply().status, 401, "the old id lists nothing");
    assert_eq!(late.jar, old, "the device list cleared the new cookie");
    w.now += crate::session::REGENERATED_WINDOW;
    w.go(&mut late, "GET", "/.keycard/sessions", &[]);
    assert_eq!(late.jar, None, "a minute on, it is cleared");
}

/// During a rotation, the laptop's anonymous session signs in without `regenerate`
/// after the phone signed out everywhere else, then steps up with `regenerate`. The
/// older secret's object never heard of the sign-in, so its cutoff took the session for
/// one that began before it, and the step-up signed the laptop out.
#[test]
fn during_a_rotation_a_sign_in_without_regenerate_outlives_an_older_cutoff() {
    let mut w = World::new(&[("SESSION_SECRET", OLD), ("SESSION_STORE", "cookie")]);
    let (mut laptop, mut phone) = (Browser::default(), Browser::default());
    w.go(
        &mut laptop,
        "GET",
        "/cart",
        &[("x-session-set", r#"{"cart":[1]}"#)],
    );
    w.sign_in(&mut phone, "ada");
    rotate(&mut w, "cookie");
    w.go(
        &mut phone,
        "POST",
        "/devices",
        &[("x-session-action", "destroy-others")],
    );
    w.now += 1;
    let seen = w.go(
        &mut laptop,
        "POST",
        "/login",
        &[("x-session-set", r#"{"user":"ada"}"#)],
    );
    assert_eq!(seen.status(), "valid");
    w.now += 1;
    w.go(&mut laptop, "POST", "/step-up", &STEP_UP);
    let seen = w.go(&mut laptop, "POST", "/form", &[]);
    assert_eq!(
        seen.user().as_deref(),
        Some("ada"),
        "signed out by a cutoff"
    );
}
