//! Device-bound sessions kept in the users' objects (`KEYCARD_DEVICE_BOUND=on` without
//! `SESSION_STORE=kv`), request after request: registration, the bound cookie's mark,
//! the pre-binding copy, refreshes and their single use, and a secret's rotation; and
//! at the end, binding's new id in a KV record (`SESSION_STORE=kv`). The
//! objects run their real logic ([`crate::testing::FakeUsers`]); the proofs' signatures
//! are the driver's to check, so these tests answer for WebCrypto. The Worker runs the
//! same end to end in `tests/e2e/device-bound.test.mjs`.

use serde_json::{json, Value};

use super::harness::{claims_of, refresh_headers, Browser, Seen, World, STEP_UP};
use super::*;
use crate::dbsc::proof::BoundKey;
use crate::session::codec;
use crate::testing::SECRET;
use crate::util::b64;

const REGISTER: &str = "/.keycard/dbsc/register";
const REFRESH: &str = "/.keycard/dbsc/refresh";
const SHORT: &str = "__Host-keycard-bound";
/// Device-bound sessions during a rotation: a new secret, the tests' own as the
/// previous one.
const ROTATED: [(&str, &str); 3] = [
    ("KEYCARD_DEVICE_BOUND", "on"),
    (
        "SESSION_SECRET",
        "the rotated secret, 0123456789abcdef0123456789",
    ),
    ("SESSION_SECRET_PREVIOUS", SECRET),
];

/// A P-256 public key of the shape a browser registers, told apart by `n`.
fn jwk(n: u8) -> Value {
    json!({ "kty": "EC", "crv": "P-256", "x": b64([n; 32]), "y": b64([n + 1; 32]) })
}

fn thumbprint(n: u8) -> String {
    BoundKey::from_stored(&format!("ES256 {}", jwk(n)))
        .unwrap()
        .thumbprint()
}

/// The request header of a registration, with a proof of the shape Chromium sends for
/// `challenge`, by key `n`.
fn registering(challenge: &str, n: u8) -> String {
    let header = json!({ "alg": "ES256", "typ": "dbsc+jwt", "jwk": jwk(n) });
    let proof = crate::testing::compact_jws(header, json!({ "jti": challenge }), &[7u8; 64]);
    format!("secure-session-response:{proof}\n")
}

/// The challenge of the binding a final step offers, if any.
fn offered(last: &Step) -> Option<String> {
    let offer = match last {
        Step::Rewrap(r) => r.offer.clone(),
        Step::Reply(r) => r
            .headers
            .iter()
            .find(|(n, _)| *n == crate::dbsc::REGISTRATION)
            .map(|(_, v)| v.clone()),
        _ => None,
    }?;
    let (_, c) = offer.split_once("challenge=\"")?;
    Some(c.trim_end_matches('"').to_owned())
}

/// The value of the cookie `name` a reply sets.
fn set_cookie(r: &Reply, name: &str) -> Option<String> {
    r.headers
        .iter()
        .filter(|(n, _)| *n == "set-cookie")
        .find_map(|(_, v)| v.strip_prefix(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
}

/// Runs a request that stops at its proof's signature, says it verifies, and carries
/// the rest out; `b` keeps the session cookie it is given.
fn proven(w: &mut World, b: &mut Browser, path: &str) -> Step {
    let (mut ex, step) = w.begin(b, "POST", path);
    assert!(matches!(step, Step::Verify(_)), "{step:?}");
    let step = ex.verified(Ok(true));
    let last = w.p.drive(&mut ex, step);
    w.end(&mut ex, b, last)
}

/// A Worker with device-bound sessions kept in the users' objects, and `b` signed in
/// as ada and bound to key 1 by a registration, its short-lived cookie in `b.others`;
/// the second browser holds a copy of ada's cookie taken before binding.
fn bound(pairs: &[(&str, &str)]) -> (World, Browser, Browser) {
    let (w, b, before, _) = bound_by_offer(pairs);
    (w, b, before)
}

/// [`bound`], with the challenge the sign-in offered (and the registration answered).
fn bound_by_offer(pairs: &[(&str, &str)]) -> (World, Browser, Browser, String) {
    let mut all = vec![("KEYCARD_DEVICE_BOUND", "on")];
    all.extend_from_slice(pairs);
    let mut w = World::new(&all);
    let mut b = Browser::default();
    let seen = w.sign_in(&mut b, "ada");
    let challenge = offered(&seen.last).expect("binding is offered at sign-in");
    let before = b.clone();
    w.ops();
    b.headers = registering(&challenge, 1);
    let last = proven(&mut w, &mut b, REGISTER);
    let Step::Reply(r) = &last else {
        panic!("{last:?}")
    };
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        w.ops(),
        ["bind"],
        "one call replaces the old id and binds the new one"
    );
    b.headers.clear();
    keep_short(&mut b, r);
    (w, b, before, challenge)
}

/// `b` is still signed in as ada a minute on, once a replaced id would no longer be
/// spared.
fn still_ada_a_minute_on(w: &mut World, b: &mut Browser, who: &str) {
    w.now += crate::session::REGENERATED_WINDOW;
    ada_on(w, b, "POST", &[], &format!("{who}: signed out"));
}

/// `b`'s request `method /` (the origin answering `control`) reaches the origin signed
/// in as ada; `why` is the failure's message. Returns what it saw.
fn ada_on(
    w: &mut World,
    b: &mut Browser,
    method: &str,
    control: &[(&str, &str)],
    why: &str,
) -> Seen {
    let seen = w.go(b, method, "/", control);
    assert_eq!(
        (seen.status(), seen.user().as_deref()),
        ("valid", Some("ada")),
        "{why}"
    );
    seen
}

/// `b` keeps the short-lived cookie the reply `r` sets, which it must set.
fn keep_short(b: &mut Browser, r: &Reply) {
    let short = set_cookie(r, SHORT).expect("a short-lived cookie");
    b.others = format!("{SHORT}={short}");
}

fn mark_of(w: &World, b: &Browser) -> Option<String> {
    claims_of(w, b).bound
}

#[test]
fn a_registration_binds_in_the_users_object_and_marks_the_cookie() {
    let (mut w, mut b, mut copy) = bound(&[]);
    assert_eq!(
        mark_of(&w, &b),
        Some(thumbprint(1)),
        "the re-issued cookie names the key"
    );
    assert_eq!(mark_of(&w, &copy), None);

    ada_on(&mut w, &mut b, "GET", &[], "signed out");
    assert_eq!(
        w.ops(),
        Vec::<String>::new(),
        "a marked cookie needs no call"
    );

    let mut no_short = b.clone();
    no_short.others.clear();
    let seen = w.go(&mut no_short, "GET", "/", &[]);
    assert_eq!((seen.status(), seen.user()), ("none", None));
    assert_eq!(no_short.jar, b.jar, "its cookie is kept");

    // The copy taken before binding names no key: the object says it is bound.
    let seen = w.go(
        &mut copy,
        "GET",
        "/",
        &[("x-session-set", r#"{"user":"mallory"}"#)],
    );
    assert_eq!((seen.status(), seen.user()), ("none", None));
    assert_eq!(w.ops(), ["see"], "an unmarked signed-in cookie is checked");
    assert!(w.logged("control_ignored"));
    w.cfg = crate::testing::config(&[
        ("KEYCARD_DEVICE_BOUND", "on"),
        ("KEYCARD_REQUIRE", "/admin"),
    ]);
    let seen = w.go(&mut copy, "GET", "/admin", &[]);
    assert_eq!(seen.status(), "not forwarded", "a required path is refused");

    // The device list shows the binding.
    let list = w.go(&mut b, "GET", "/.keycard/sessions", &[]);
    let v: Value = serde_json::from_str(&list.reply().body).unwrap();
    assert_eq!(v["sessions"][0]["device_bound"], true, "{v}");
}

/// Binding gives the session a new id: the real browser's requests that were in
/// flight while it registered carry the old cookie, which is no session even beside the
/// new short-lived cookie (that names the new id), and is left alone, as after any
/// `regenerate`; the browser holds the new cookie by then. Past that minute, a copy
/// checked with its object is cleared, as any revoked session is.
#[test]
fn the_cookie_from_before_binding_is_no_session_even_with_the_short_lived_cookie() {
    let (mut w, b, mut copy) = bound(&[]);
    assert_ne!(claims_of(&w, &b).sid, claims_of(&w, &copy).sid, "a new id");
    copy.others = b.others.clone();
    let jar = copy.jar.clone();
    let set = [("x-session-set", r#"{"n":1}"#)];
    let seen = w.go(&mut copy, "POST", "/", &set);
    assert_eq!((seen.status(), seen.user()), ("invalid", None));
    assert_eq!(
        copy.jar, jar,
        "its cookie is left alone, and nothing is issued"
    );
    assert!(w.logged("control_ignored"));

    w.now += crate::session::REGENERATED_WINDOW;
    let seen = w.go(&mut copy, "POST", "/", &set);
    assert_eq!((seen.status(), seen.user()), ("invalid", None));
    assert_eq!(copy.jar, None, "cleared");
}

#[test]
fn an_anonymous_session_is_not_offered_binding_nor_bound() {
    let mut w = World::new(&[("KEYCARD_DEVICE_BOUND", "on")]);
    let mut b = Browser::default();
    let seen = w.go(
        &mut b,
        "POST",
        "/cart",
        &[("x-session-set", r#"{"cart":[1]}"#)],
    );
    assert!(b.jar.is_some());
    assert_eq!(offered(&seen.last), None);
    b.headers = registering("x", 1);
    let seen = w.go(&mut b, "POST", REGISTER, &[]);
    assert_eq!(seen.reply().status, 400);
    assert!(w.logged("device_refused"));
}

#[test]
fn a_refresh_asks_the_object_and_each_challenge_is_answered_once() {
    let (mut w, mut b, _) = bound(&[]);
    let handle = handle_of(&w, &b);
    b.others.clear();
    b.headers = format!("sec-secure-session-id:{handle}\n");
    let seen = w.go(&mut b, "POST", REFRESH, &[]);
    let r = seen.reply();
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(w.ops(), ["see"]);
    let challenge = challenge_of(r);

    // Two locations check the same proof at once: the object lets one through.
    b.headers = refresh_headers(&handle, &challenge);
    let (mut first, s1) = w.begin(&b, "POST", REFRESH);
    let (mut second, s2) = w.begin(&b, "POST", REFRESH);
    assert!(matches!((&s1, &s2), (Step::Verify(_), Step::Verify(_))));
    let step = first.verified(Ok(true));
    let Step::Reply(r) = w.p.drive(&mut first, step) else {
        panic!("a reply")
    };
    assert_eq!(r.status, 200, "{r:?}");
    assert!(set_cookie(&r, SHORT).is_some());
    let step = second.verified(Ok(true));
    let Step::Reply(r) = w.p.drive(&mut second, step) else {
        panic!("a reply")
    };
    assert_eq!(r.status, 400, "the replay is refused: {r:?}");
    w.logs.extend(second.take_logs());
    assert!(w
        .logs
        .iter()
        .any(|l| l.detail["reason"] == "the challenge was answered already"));
}

/// A session bound before a rotation of `SESSION_SECRET` is known to the object under
/// the old secret only: a refresh finds it there, and copies it under the new one, so
/// that it outlives the old secret's leaving the ring.
#[test]
fn a_binding_outlives_a_rotation() {
    let (mut w, mut b, _) = bound(&[]);
    w.cfg = crate::testing::config(&ROTATED);
    let handle = handle_of(&w, &b);
    b.headers = format!("sec-secure-session-id:{handle}\n");
    let seen = w.go(&mut b, "POST", REFRESH, &[]);
    let r = seen.reply();
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(
        w.ops(),
        ["see", "see"],
        "the new secret's object, then the old one's"
    );
    let challenge = challenge_of(r);
    b.headers = refresh_headers(&handle, &challenge);
    let Step::Reply(r) = proven(&mut w, &mut b, REFRESH) else {
        panic!("a reply")
    };
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(w.ops(), ["see", "see", "prove", "bind"]);
    // Its next request re-issues the cookie under the new secret.
    b.headers.clear();
    keep_short(&mut b, &r);
    assert_eq!(w.go(&mut b, "GET", "/", &[]).status(), "valid");

    // The old secret leaves the ring: the binding is still known.
    w.cfg = crate::testing::config(&ROTATED[..2]);
    b.headers = format!("sec-secure-session-id:{handle}\n");
    b.others.clear();
    let seen = w.go(&mut b, "POST", REFRESH, &[]);
    assert_eq!(seen.reply().status, 403);
}

#[test]
fn binding_in_the_users_objects_needs_their_binding() {
    let mut w = World::new(&[("KEYCARD_DEVICE_BOUND", "on")]);
    w.bindings.users = Binding::Absent;
    let seen = w.go(&mut Browser::default(), "GET", "/", &[]);
    assert_eq!(seen.reply().status, 500);
    assert!(w
        .logs
        .iter()
        .any(|l| l.detail["var"] == "KEYCARD_DEVICE_BOUND"));
}

/// Regression: under `SESSION_KV_FAILURE=open`, a check that could not reach the
/// user's object forwarded a copy taken before binding as the signed-in session (and
/// re-issued it when due), so a thief who made the object fail (or waited for it to)
/// was signed in without the device.
#[test]
fn an_unmarked_copy_is_not_signed_in_when_its_object_cannot_be_asked() {
    let (mut w, _, mut copy) =
        bound(&[("SESSION_KV_FAILURE", "open"), ("KEYCARD_INSPECT", "true")]);
    w.p.users.failing = true;
    let seen = w.go(&mut copy, "GET", "/", &[]);
    assert_eq!((seen.status(), seen.user()), ("invalid", None));
    let before = copy.jar.clone();
    w.now += 100;
    let seen = w.go(
        &mut copy,
        "POST",
        "/cart",
        &[("x-session-set", r#"{"cart":[1]}"#)],
    );
    assert_eq!((seen.status(), seen.user()), ("invalid", None));
    assert_eq!(copy.jar, before, "nothing is issued to it");
    let inspected = w.go(&mut copy, "GET", "/.keycard/session", &[]);
    let v: Value = serde_json::from_str(&inspected.reply().body).unwrap();
    assert_eq!(v["data"], Value::Null, "{v}");
}

/// The session's handle under the current secret, as the origin sees it (and as the
/// device list, or any page that shows `X-Session-Id`, tells).
fn handle_of(w: &World, b: &Browser) -> String {
    w.cfg.keys.current().handle(&claims_of(w, b).sid)
}

/// Regression: keycard's own endpoints took a signed-in cookie without the mark at its
/// word: a copy taken before binding listed the user's devices, revoked the bound
/// session (a sign-out, or `sessions/revoke` with its handle) and the user's others.
#[test]
fn a_copy_from_before_binding_cannot_sign_out_list_or_revoke() {
    let (mut w, mut b, copy) = bound(&[]);
    let mut phone = Browser::default();
    w.sign_in(&mut phone, "ada");
    let phone_handle = handle_of(&w, &phone);
    let own = handle_of(&w, &b);

    let list = w.go(&mut copy.clone(), "GET", "/.keycard/sessions", &[]);
    assert_eq!(list.reply().status, 401, "{:?}", list.reply());
    for path in [
        format!("/.keycard/sessions/revoke?id={phone_handle}"),
        format!("/.keycard/sessions/revoke?id={own}"),
        "/.keycard/logout".to_owned(),
    ] {
        w.go(&mut copy.clone(), "POST", &path, &[]);
    }
    let seen = w.go(&mut b, "POST", "/", &[]);
    assert_eq!(
        seen.status(),
        "valid",
        "the bound browser is still signed in"
    );
    let seen = w.go(&mut phone, "POST", "/", &[]);
    assert_eq!(seen.status(), "valid", "and so is the phone");
    // A session that is not bound still has them, after one call.
    w.ops();
    let list = w.go(&mut phone, "GET", "/.keycard/sessions", &[]);
    assert_eq!(list.reply().status, 200);
    assert_eq!(w.ops(), ["see", "list"]);
}

/// The challenge of a refresh's 403.
fn challenge_of(r: &Reply) -> String {
    r.headers
        .iter()
        .find(|(n, _)| *n == crate::dbsc::CHALLENGE)
        .and_then(|(_, v)| v.split('"').nth(1))
        .expect("a challenge")
        .to_owned()
}

/// Regression: during a secret's rotation a binding is kept under the previous secret
/// until a refresh copies it; a copy of the cookie from before binding registered its
/// own key in the object under the new secret (the older object's refusal was not
/// looked at), and so was signed in for good with a key of its own, while the real
/// browser's next refresh was checked with the thief's key.
#[test]
fn a_copy_from_before_binding_cannot_register_during_a_rotation() {
    let (mut w, mut b, mut copy, sign_in_offer) = bound_by_offer(&[]);
    w.cfg = crate::testing::config(&ROTATED);
    // The copy's id ended at binding: it is given no challenge of its own.
    let old_handle = handle_of(&w, &copy);
    copy.headers = format!("sec-secure-session-id:{old_handle}\n");
    let seen = w.go(&mut copy, "POST", REFRESH, &[]);
    assert_eq!(seen.reply().status, 200);
    assert!(
        seen.reply().body.contains(r#""continue":false"#),
        "{seen:?}"
    );
    // Nor does the challenge the sign-in offered, which it holds too, bind it.
    copy.headers = registering(&sign_in_offer, 2);
    let seen = w.go(&mut copy, "POST", REGISTER, &[]);
    assert_ne!(
        seen.reply().status,
        200,
        "the registration is refused: {seen:?}"
    );
    assert_eq!(set_cookie(seen.reply(), SHORT), None);

    // The real browser refreshes with its own key.
    let handle = handle_of(&w, &b);
    b.others.clear();
    b.headers = format!("sec-secure-session-id:{handle}\n");
    let seen = w.go(&mut b, "POST", REFRESH, &[]);
    b.headers = refresh_headers(&handle, &challenge_of(seen.reply()));
    let Step::Verify(v) = w.begin(&b, "POST", REFRESH).1 else {
        panic!("a signature to check")
    };
    let key: Value = serde_json::from_str(&v.jwk).unwrap();
    assert_eq!(key["x"], jwk(1)["x"], "checked with the device's own key");

    // A session signed in under the new secret: every object of the ring hears of its
    // new id, the older first.
    let mut other = Browser::default();
    let seen = w.sign_in(&mut other, "bob");
    other.headers = registering(&offered(&seen.last).unwrap(), 3);
    w.ops();
    let Step::Reply(r) = proven(&mut w, &mut other, REGISTER) else {
        panic!("a reply")
    };
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(w.ops(), ["bind", "bind"]);
}

/// Regression: a bound session revoked elsewhere (sign-out everywhere from another
/// device) was told `continue: false` at its refresh and kept its cookie, which names
/// the device: with no short-lived cookie to be had, every request was no session and
/// every change the app answered (its own sign-in form included) was ignored, until
/// the cookie's idle timeout. The refresh now clears it, as a revoked session's
/// request does.
#[test]
fn a_revoked_bound_session_is_cleared_at_its_refresh_and_can_sign_in_again() {
    let (mut w, mut b, _) = bound(&[]);
    let mut phone = Browser::default();
    w.sign_in(&mut phone, "ada");
    let seen = w.go(
        &mut phone,
        "POST",
        "/account",
        &[("x-session-action", "destroy-others")],
    );
    assert_eq!(seen.status(), "valid");

    // The laptop's short-lived cookie expires, and its browser refreshes.
    let handle = handle_of(&w, &b);
    b.others.clear();
    b.headers = format!("sec-secure-session-id:{handle}\n");
    let seen = w.go(&mut b, "POST", REFRESH, &[]);
    let v: Value = serde_json::from_str(&seen.reply().body).unwrap();
    assert_eq!(v["continue"], false, "{v}");
    b.headers.clear();

    w.sign_in(&mut b, "ada");
    ada_on(&mut w, &mut b, "GET", &[], "signed in again");
}

/// Regression: a binding is kept in the object of the session's user, but the app may
/// change the session's user field without a new id (`X-Session-Set`, as a sign-out
/// that keeps the cart, or a rename): the cookie went on naming the device, whose
/// binding no object of the new user (or of none) held, so once its short-lived cookie
/// ran out the session could never be proven again. The session now leaves its binding
/// with its user, as a regenerated one does, and is offered binding again.
#[test]
fn a_session_whose_user_changes_leaves_its_binding_with_its_user() {
    for (set, user) in [
        (r#"{"user":null,"cart":[1]}"#, None),
        (r#"{"user":"ada.lovelace"}"#, Some("ada.lovelace")),
    ] {
        let (mut w, mut b, mut copy) = bound(&[]);
        let seen = w.go(&mut b, "POST", "/account", &[("x-session-set", set)]);
        assert_eq!(seen.status(), "valid");
        assert_eq!(mark_of(&w, &b), None, "{set}: the cookie names no device");
        assert_eq!(offered(&seen.last).is_some(), user.is_some(), "{set}");

        // Its short-lived cookie is gone: the session is still the app's.
        b.others.clear();
        let seen = w.go(&mut b, "GET", "/", &[]);
        assert_eq!(seen.status(), "valid", "{set}");
        assert_eq!(seen.user().as_deref(), user, "{set}");

        // The copy from before binding is still no session.
        let seen = w.go(&mut copy, "GET", "/", &[]);
        assert_eq!((seen.status(), seen.user()), ("none", None), "{set}");
    }
}

/// Regression: during a rotation a refresh proves its challenge in the object that
/// holds the binding (the previous secret's) and copies the binding under the new
/// secret; of two refreshes that found it there at once, the later challenge's copy was
/// refused (the first had copied it already, with its earlier challenge), so the new
/// object took that later challenge for unanswered, and its proof was answered twice.
#[test]
fn a_refresh_proof_is_answered_once_across_a_rotation() {
    let (mut w, mut b, _) = bound(&[]);
    w.cfg = crate::testing::config(&ROTATED);
    let handle = handle_of(&w, &b);
    b.others.clear();
    let mut proofs = Vec::new();
    for _ in 0..2 {
        b.headers = format!("sec-secure-session-id:{handle}\n");
        let seen = w.go(&mut b, "POST", REFRESH, &[]);
        b.headers = refresh_headers(&handle, &challenge_of(seen.reply()));
        proofs.push(b.clone());
        w.now += 1;
    }
    // Both refreshes find the binding under the previous secret, then the earlier
    // one finishes first.
    let (mut first, s1) = w.begin(&proofs[0], "POST", REFRESH);
    let (mut second, s2) = w.begin(&proofs[1], "POST", REFRESH);
    assert!(matches!((&s1, &s2), (Step::Verify(_), Step::Verify(_))));
    for ex in [&mut first, &mut second] {
        let step = ex.verified(Ok(true));
        let Step::Reply(r) = w.p.drive(ex, step) else {
            panic!("a reply")
        };
        assert_eq!(r.status, 200, "{r:?}");
    }
    // The later proof, again.
    let (mut again, step) = w.begin(&proofs[1], "POST", REFRESH);
    let last = match step {
        Step::Verify(_) => {
            let step = again.verified(Ok(true));
            w.p.drive(&mut again, step)
        }
        other => other,
    };
    let Step::Reply(r) = last else {
        panic!("a reply")
    };
    assert_eq!(r.status, 400, "the replay is refused: {r:?}");
}

/// Regression: a refresh re-issued the session cookie only when it named no device,
/// not when it named another than the one its object binds, which a race can leave
/// behind (with `SESSION_STORE=auto`, a request from before a user change that writes
/// the session back with the old mark after the browser bound the new user's session):
/// the short-lived cookie named the object's key and the session cookie the other, so
/// every request was no session however often the device refreshed. The refresh now
/// re-issues the cookie whenever its mark is not the object's.
#[test]
fn a_refresh_heals_a_cookie_that_names_another_device() {
    let (mut w, mut b, _) = bound(&[]);
    let mut claims = claims_of(&w, &b);
    claims.bound = Some(thumbprint(9));
    b.jar = Some(codec::encode_signed(
        w.cfg.keys.current(),
        &w.cfg.cookie.name,
        &claims,
    ));
    let handle = handle_of(&w, &b);
    b.others.clear();
    b.headers = format!("sec-secure-session-id:{handle}\n");
    let seen = w.go(&mut b, "POST", REFRESH, &[]);
    b.headers = refresh_headers(&handle, &challenge_of(seen.reply()));
    let Step::Reply(r) = proven(&mut w, &mut b, REFRESH) else {
        panic!("a reply")
    };
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        mark_of(&w, &b),
        Some(thumbprint(1)),
        "re-issued with the mark"
    );
    b.headers.clear();
    keep_short(&mut b, &r);
    ada_on(&mut w, &mut b, "GET", &[], "signed out");
}

/// Regression: with `SESSION_STORE=cookie`, a session whose cookie fit, but not with
/// the device's mark in it, answered its registration with a 500 (the re-issue was
/// too large), which the browser, offered binding again at each re-issue, kept
/// asking for. It is now a refusal, like every other one, and the session goes on
/// unbound.
#[test]
fn a_session_too_large_to_name_its_device_is_refused_binding_not_a_500() {
    let pairs = [("KEYCARD_DEVICE_BOUND", "on"), ("SESSION_STORE", "cookie")];
    let mut found = None;
    for n in 2800..2900 {
        let mut w = World::new(&pairs);
        let mut b = Browser::default();
        let set = format!(r#"{{"user":"ada","pad":"{}"}}"#, "x".repeat(n));
        let seen = w.go(
            &mut b,
            "POST",
            "/login",
            &[("x-session-set", &set), ("x-session-action", "regenerate")],
        );
        let Step::Rewrap(r) = &seen.last else {
            break;
        };
        let len = r.set_cookie.as_ref().map_or(0, String::len);
        if len + 44 > crate::session::MAX_COOKIE_LEN {
            found = Some((w, b, offered(&seen.last).expect("binding is offered")));
            break;
        }
    }
    let (mut w, mut b, challenge) = found.expect("a session just under the limit");
    w.now += 1;
    b.headers = registering(&challenge, 1);
    let before = b.jar.clone();
    let Step::Reply(r) = proven(&mut w, &mut b, REGISTER) else {
        panic!("a reply")
    };
    assert_eq!(r.status, 400, "{r:?}");
    assert!(w.logged("device_refused"));
    assert_eq!(b.jar, before);
    b.headers.clear();
    ada_on(&mut w, &mut b, "GET", &[], "signed out");
}

/// During a rotation, a session the previous secret's object never knew (one signed in
/// since) may be one that object's last `destroy-others` would take for a session it
/// was meant to end (a `regenerate` keeps the session's creation time, and only the
/// current object hears of the new id): binding it there must not sign it out. Only
/// a binding found there refuses the registration.
#[test]
fn a_registration_during_a_rotation_is_not_refused_by_an_older_objects_cutoff() {
    let mut w = World::new(&ROTATED);
    let mut a = Browser::default();
    w.sign_in(&mut a, "ada");
    w.go(
        &mut a,
        "POST",
        "/account",
        &[("x-session-action", "destroy-others")],
    );
    w.now += 1;
    let seen = w.go(
        &mut a,
        "POST",
        "/sudo",
        &[("x-session-action", "regenerate")],
    );
    let challenge = offered(&seen.last).expect("binding is offered");
    w.now += 1;
    a.headers = registering(&challenge, 1);
    let Step::Reply(r) = proven(&mut w, &mut a, REGISTER) else {
        panic!("a reply")
    };
    assert_eq!(r.status, 200, "{r:?}");
    a.headers.clear();
    keep_short(&mut a, &r);
    ada_on(&mut w, &mut a, "GET", &[], "signed out");
}

/// Regression: with bindings in the users' objects, every request of a signed-in
/// cookie without the mark is checked with its object, reads included; a read the
/// page sent just before the app regenerated the session (a second sign-in step) found
/// the old id revoked and answered with the clearing cookie, which took the new
/// session's cookie with it. A read that only the binding had checked now goes on as
/// no session and leaves the cookie alone, as it did unchecked: clearing is for the
/// checks `SESSION_REVOCATION_CHECK` asks for.
#[test]
fn a_read_in_flight_across_a_regenerate_does_not_clear_the_new_cookie() {
    let mut w = World::new(&[("KEYCARD_DEVICE_BOUND", "on")]);
    let mut b = Browser::default();
    w.sign_in(&mut b, "ada");
    let mut in_flight = b.clone();
    let seen = w.go(&mut b, "POST", "/2fa", &STEP_UP);
    assert_eq!(seen.status(), "valid");
    let before = in_flight.jar.clone();
    let seen = w.go(&mut in_flight, "GET", "/poll", &[]);
    assert_eq!((seen.status(), seen.user()), ("none", None));
    assert_eq!(in_flight.jar, before, "no clearing cookie");
    let seen = w.go(&mut b, "GET", "/", &[]);
    assert_eq!(seen.data()["mfa"], true);
    // A check the policy asks for finds it revoked, and leaves it alone as well while
    // the page's requests may still be in flight; a minute on, it clears it.
    let seen = w.go(&mut in_flight, "POST", "/poll", &[]);
    assert_eq!(seen.status(), "invalid");
    assert_eq!(in_flight.jar, before, "no clearing cookie");
    w.now += crate::session::REGENERATED_WINDOW;
    let seen = w.go(&mut in_flight, "POST", "/poll", &[]);
    assert_eq!(seen.status(), "invalid");
    assert_eq!(in_flight.jar, None);
}

/// A browser whose device cannot prove itself (it lost its DBSC state while the binding
/// lives on) is no session, and the app's answers to it are ignored, so that a request
/// between two refreshes never changes the bound session. Signing in again through the
/// app (`regenerate`), or out (`destroy`), is what the app would answer any visitor: it
/// gets a new session, or its cookie cleared, and the bound session stays as it was.
#[test]
fn an_unproven_browser_can_sign_in_again_through_the_app() {
    let (mut w, b, _) = bound(&[]);
    let mut lost = b.clone();
    lost.others.clear();
    let seen = w.go(
        &mut lost,
        "POST",
        "/cart",
        &[("x-session-set", r#"{"cart":[1]}"#)],
    );
    assert_eq!(seen.status(), "none");
    assert_eq!(lost.jar, b.jar, "a change alone is ignored");

    let seen = w.sign_in(&mut lost, "ada");
    assert_eq!(seen.status(), "none", "the app saw no session");
    assert_ne!(lost.jar, b.jar, "a new session");
    assert_eq!(
        mark_of(&w, &lost),
        None,
        "not bound: binding is offered again"
    );
    assert!(offered(&seen.last).is_some());
    ada_on(&mut w, &mut lost, "GET", &[], "signed out");

    let mut device = b.clone();
    let seen = w.go(&mut device, "GET", "/", &[]);
    assert_eq!(seen.status(), "valid", "the bound session is as it was");

    let mut out = b.clone();
    out.others.clear();
    w.go(
        &mut out,
        "POST",
        "/logout",
        &[("x-session-action", "destroy")],
    );
    assert_eq!(out.jar, None, "signing out clears its cookie");
    assert_eq!(
        w.go(&mut device, "GET", "/", &[]).status(),
        "valid",
        "and only its cookie"
    );
}

/// Review of the users' objects path: every request of a copy from before binding was
/// noted in the bound session's entry, so the device list showed the copy's browser and
/// country, and when it was last seen, as the bound device's.
#[test]
fn a_copy_from_before_binding_does_not_move_the_device_list() {
    let (mut w, _, mut copy) = bound(&[]);
    let entry = |w: &World| {
        w.p.users
            .objects
            .values()
            .map(|text| crate::users::State::parse(text).unwrap())
            .find_map(|s| s.live.into_iter().find(|e| e.bound.is_some()))
            .expect("the bound entry")
    };
    let before = entry(&w);
    assert_eq!(
        before.device.country.as_deref(),
        Some("DE"),
        "the registration notes its country"
    );
    w.now += 500;
    w.p.users.country = Some("xx");
    copy.headers = "user-agent:curl/8.0\n".into();
    assert_eq!(w.go(&mut copy, "GET", "/", &[]).status(), "invalid");
    assert_eq!(entry(&w), before);
}

/// The device list says when each bound session's short-lived cookie expires: the one
/// its registration issued, then the one each refresh issues.
#[test]
fn the_device_list_shows_when_the_short_lived_cookie_expires() {
    let (mut w, mut b, _) = bound(&[]);
    let expires = |w: &mut World, b: &mut Browser| {
        let list = w.go(b, "GET", "/.keycard/sessions", &[]);
        let v: Value = serde_json::from_str(&list.reply().body).unwrap();
        v["sessions"][0]["bound_expires"].as_u64()
    };
    let exp_of = |b: &Browser| {
        let value = b.others.split_once('=').unwrap().1;
        value.split('.').next().unwrap().parse::<u64>().unwrap()
    };
    assert_eq!(expires(&mut w, &mut b), Some(exp_of(&b)));
    assert_eq!(
        exp_of(&b),
        w.now + 600,
        "KEYCARD_DEVICE_BOUND_TTL's default"
    );

    w.now += 300;
    let handle = handle_of(&w, &b);
    b.headers = format!("sec-secure-session-id:{handle}\n");
    let seen = w.go(&mut b, "POST", REFRESH, &[]);
    let challenge = challenge_of(seen.reply());
    b.headers = refresh_headers(&handle, &challenge);
    let Step::Reply(r) = proven(&mut w, &mut b, REFRESH) else {
        panic!("a reply")
    };
    assert_eq!(r.status, 200, "{r:?}");
    b.headers.clear();
    keep_short(&mut b, &r);
    assert_eq!(exp_of(&b), w.now + 600);
    assert_eq!(
        expires(&mut w, &mut b),
        Some(w.now + 600),
        "the refresh moves it"
    );
}

/// The device list says what the object knows: with `SESSION_STORE=kv` the bindings
/// are in the records, which it does not read, so `null` rather than a wrong `false`;
/// with the setting turned off, a binding the object still keeps binds nothing.
#[test]
fn the_device_list_says_bound_only_where_it_knows() {
    let list = |w: &mut World, b: &mut Browser| {
        let r = w.go(b, "GET", "/.keycard/sessions", &[]);
        let v: Value = serde_json::from_str(&r.reply().body).unwrap();
        v["sessions"][0].clone()
    };
    let mut kv = World::new(&[("KEYCARD_DEVICE_BOUND", "on"), ("SESSION_STORE", "kv")]);
    let mut b = Browser::default();
    kv.sign_in(&mut b, "ada");
    let row = list(&mut kv, &mut b);
    assert_eq!(row["current"], true, "{row}");
    assert_eq!(
        (&row["device_bound"], &row["bound_expires"]),
        (&Value::Null, &Value::Null)
    );

    let (mut w, mut b, _) = bound(&[]);
    assert_eq!(list(&mut w, &mut b)["device_bound"], true);
    w.cfg = crate::testing::config(&[]);
    let row = list(&mut w, &mut b);
    assert_eq!(
        (&row["device_bound"], &row["bound_expires"]),
        (&Value::Bool(false), &Value::Null),
        "{row}"
    );
}

// ---- review of the requests in flight during a regenerate ----

/// A device's refresh that left with the old cookie while the app regenerated the
/// bound session (a second sign-in step) reaches the object after the regenerate: the
/// object answers `caller_regenerated`, but the refresh endpoint clears the cookie on
/// any revoked answer, and that answer arrives after the new cookie. With
/// `SESSION_STORE=kv` the same refresh finds the old record's marker
/// (`Loaded::Regenerated`) and leaves the cookie alone.
#[test]
fn a_refresh_in_flight_across_a_regenerate_does_not_clear_the_new_cookie() {
    let (mut w, mut b, _) = bound(&[]);
    let handle = handle_of(&w, &b);
    let mut in_flight = b.clone();
    in_flight.others.clear();
    in_flight.headers = format!("sec-secure-session-id:{handle}\n");
    let before = in_flight.jar.clone();
    let seen = w.go(&mut b, "POST", "/2fa", &STEP_UP);
    assert_eq!(seen.status(), "valid");
    assert_ne!(b.jar, before);
    let seen = w.go(&mut in_flight, "POST", REFRESH, &[]);
    assert!(
        seen.reply().body.contains(r#""continue":false"#),
        "{:?}",
        seen.reply()
    );
    assert_eq!(in_flight.jar, before, "the refresh cleared the new cookie");
    let seen = w.go(&mut b, "GET", "/", &[]);
    assert_eq!(seen.data()["mfa"], true);
}

/// A re-issue that its user's object stops (the session was replaced by a `regenerate`,
/// or signed out, while this request was at the origin) issues no cookie, and so offers
/// no binding either: an offer belongs to the cookie it comes with.
#[test]
fn a_re_issue_the_object_stops_offers_no_binding() {
    for ending in [&STEP_UP[..], &[("x-session-action", "destroy")][..]] {
        let mut w = World::new(&[("KEYCARD_DEVICE_BOUND", "on")]);
        let mut b = Browser::default();
        w.sign_in(&mut b, "ada");
        let mut early = b.clone();
        let mut in_flight = super::harness::start_request(&mut w, &early, "GET", "/poll");
        w.go(&mut b, "POST", "/2fa", ending);
        let last = w.answer(
            &mut in_flight,
            &mut early,
            &[("x-session-set", r#"{"n":1}"#)],
        );
        assert_eq!(offered(&last), None, "{ending:?}: {last:?}");
    }
}

/// A Worker with device-bound sessions kept in KV records (`SESSION_STORE=kv`), and the
/// users' objects too when `users`; `b` signed in as ada and bound to key 1. Also the
/// copy of ada's cookie taken before binding, and the challenge it answered.
fn bound_in_kv(users: bool) -> (World, Browser, Browser, String) {
    let pairs = [("KEYCARD_DEVICE_BOUND", "on"), ("SESSION_STORE", "kv")];
    let mut w = match users {
        true => World::new(&pairs),
        false => World::with(
            &pairs,
            Bindings {
                kv: Binding::Present,
                ..Default::default()
            },
        ),
    };
    let mut b = Browser::default();
    let seen = w.sign_in(&mut b, "ada");
    let challenge = offered(&seen.last).expect("binding is offered at sign-in");
    let before = b.clone();
    w.ops();
    b.headers = registering(&challenge, 1);
    let Step::Reply(r) = proven(&mut w, &mut b, REGISTER) else {
        panic!("a reply")
    };
    assert_eq!(r.status, 200, "{r:?}");
    keep_short(&mut b, &r);
    b.headers.clear();
    (w, b, before, challenge)
}

/// Binding gives the session a new id, as the contract says: the KV record moves to it
/// with the binding, and the old id's record becomes a replaced session's marker, so a
/// copy of the cookie from before binding is worth nothing, short-lived cookie or not.
#[test]
fn binding_in_kv_gives_the_session_a_new_id_and_ends_the_old_one() {
    let (mut w, mut b, mut copy, challenge) = bound_in_kv(false);
    let (old, new) = (claims_of(&w, &copy), claims_of(&w, &b));
    assert_ne!(new.sid, old.sid, "a new id");
    assert_eq!(
        new.created, old.created,
        "the same session: its lifetime is kept"
    );
    assert_eq!(
        new.bound, None,
        "the record keeps the binding: the cookie names no key"
    );
    let old_record = w.p.get(&crate::session::record::record_key(
        &w.cfg.kv_prefix,
        &old.sid,
    ));
    assert!(
        old_record
            .as_ref()
            .unwrap()
            .as_deref()
            .is_some_and(crate::session::record::regenerated),
        "the old record is a replaced session's marker: {old_record:?}"
    );

    ada_on(&mut w, &mut b, "GET", &[], "signed out");
    let body: Value = serde_json::from_str(&{
        let mut again = copy.clone();
        again.headers = registering(&challenge, 2);
        let (mut ex, step) = w.begin(&again, "POST", REGISTER);
        let last = match step {
            Step::Verify(_) => {
                let s = ex.verified(Ok(true));
                w.p.drive(&mut ex, s)
            }
            other => other,
        };
        match last {
            Step::Reply(r) if r.status == 200 => r.body,
            Step::Reply(r) => format!(r#"{{"status":{}}}"#, r.status),
            other => panic!("{other:?}"),
        }
    })
    .unwrap();
    assert_ne!(
        body["continue"], true,
        "the copy cannot bind a key of its own: {body}"
    );

    // The copy, with the new short-lived cookie or without: no session, its changes
    // ignored, its cookie left alone for the minute after binding, then cleared.
    copy.others = b.others.clone();
    let jar = copy.jar.clone();
    let seen = w.go(&mut copy, "POST", "/", &[("x-session-set", r#"{"n":1}"#)]);
    assert_eq!((seen.status(), seen.user()), ("invalid", None));
    assert_eq!(copy.jar, jar);
    w.now += crate::session::REGENERATED_WINDOW;
    let seen = w.go(&mut copy, "GET", "/", &[]);
    assert_eq!((seen.status(), seen.user()), ("invalid", None));
    assert_eq!(copy.jar, None, "cleared once the minute is over");

    // The device refreshes under its new id.
    b.others.clear();
    let handle = w.cfg.keys.current().handle(&new.sid);
    b.headers = format!("sec-secure-session-id:{handle}\n");
    let seen = w.go(&mut b, "POST", REFRESH, &[]);
    assert_eq!(seen.reply().status, 403);
    b.headers = refresh_headers(&handle, &challenge_of(seen.reply()));
    let Step::Reply(r) = proven(&mut w, &mut b, REFRESH) else {
        panic!("a reply")
    };
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains(&handle), "{}", r.body);
}

/// With the users' objects beside a KV store, the objects hear of binding's new id as
/// of a `regenerate`: the device list names the new session, and not the old one.
#[test]
fn binding_in_kv_tells_the_users_objects_of_the_new_id() {
    let (mut w, mut b, _, _) = bound_in_kv(true);
    assert_eq!(w.ops(), ["see"], "the old id replaced, in one call");
    let list = w.go(&mut b, "GET", "/.keycard/sessions", &[]);
    let v: Value = serde_json::from_str(&list.reply().body).unwrap();
    let handles: Vec<&str> = v["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap_or(""))
        .collect();
    let new = w.cfg.keys.current().handle(&claims_of(&w, &b).sid);
    assert_eq!(handles, [new.as_str()], "{v}");
}

/// A session signed out while its device's proof was being checked is not bound under
/// a new id: the old id's tombstone is looked at first.
#[test]
fn a_session_signed_out_during_its_registration_is_not_bound_in_kv() {
    let mut w = World::with(
        &[("KEYCARD_DEVICE_BOUND", "on"), ("SESSION_STORE", "kv")],
        Bindings {
            kv: Binding::Present,
            ..Default::default()
        },
    );
    let mut b = Browser::default();
    let seen = w.sign_in(&mut b, "ada");
    let challenge = offered(&seen.last).unwrap();
    let mut registering_browser = b.clone();
    registering_browser.headers = registering(&challenge, 1);
    let (mut ex, step) = w.begin(&registering_browser, "POST", REGISTER);
    assert!(matches!(step, Step::Verify(_)), "{step:?}");
    w.go(
        &mut b,
        "POST",
        "/logout",
        &[("x-session-action", "destroy")],
    );
    let s = ex.verified(Ok(true));
    let Step::Reply(r) = w.p.drive(&mut ex, s) else {
        panic!("a reply")
    };
    assert_eq!(r.status, 200);
    assert!(r.body.contains(r#""continue":false"#), "{}", r.body);
    assert_eq!(set_cookie(&r, SHORT), None, "no short-lived cookie");
    let name = w.cfg.cookie.name.clone();
    assert_eq!(
        set_cookie(&r, &name).as_deref(),
        Some(""),
        "the cookie is cleared"
    );
    let live =
        w.p.keys()
            .into_iter()
            .filter(|k| !k.contains("revoked."))
            .count();
    assert_eq!(live, 0, "no record was written under a new id");
}

/// Review: a session bound in place by the release before binding gave new ids (its
/// user's object binds key 1 under the same id; the real browser's cookie names the key, a copy taken before
/// binding does not). The copy asks the refresh endpoint for a challenge, then
/// registers a key of its own. The registration's replacement of the id did not ask
/// whether the id it replaces is bound, so the copy got a new id bound to its key, and
/// the real browser's id was revoked: `Bind` with `replaces` now refuses.
#[test]
fn a_copy_of_a_session_bound_in_place_cannot_register_a_key_of_its_own() {
    use crate::users::{Call, Caller, Op, UsersCall};
    let mut w = World::new(&[("KEYCARD_DEVICE_BOUND", "on")]);
    let mut b = Browser::default();
    w.sign_in(&mut b, "ada");
    let mut copy = b.clone();
    // What the previous release's registration did: `Bind`, in place.
    let claims = claims_of(&w, &b);
    let keys = w.cfg.keys.current();
    let key = BoundKey::from_stored(&format!("ES256 {}", jwk(1))).unwrap();
    let call = UsersCall {
        object: keys.users_object("ada"),
        call: Box::new(Call {
            now: w.now,
            horizon: w.now + 5000,
            caller: Caller {
                key: claims.sid.digest(),
                handle: keys.handle(&claims.sid),
                created: claims.created,
                expires: claims.abs_exp,
            },
            op: Op::Bind {
                device: Default::default(),
                binding: crate::dbsc::Binding::new(&key, w.now * 1000, w.now + 600),
                replaces: None,
                follows: false,
            },
        }),
    };
    w.p.users.call(&call.object, &call.json(None)).unwrap();
    // The real browser refreshes: its cookie is re-issued naming key 1.
    let handle = handle_of(&w, &b);
    w.now += 1;
    b.headers = format!("sec-secure-session-id:{handle}\n");
    let seen = w.go(&mut b, "POST", REFRESH, &[]);
    b.headers = refresh_headers(&handle, &challenge_of(seen.reply()));
    let Step::Reply(r) = proven(&mut w, &mut b, REFRESH) else {
        panic!("a reply")
    };
    assert_eq!(r.status, 200, "{r:?}");
    keep_short(&mut b, &r);
    b.headers.clear();
    assert_eq!(mark_of(&w, &b), Some(thumbprint(1)));
    assert_eq!(w.go(&mut b, "POST", "/", &[]).status(), "valid");

    // The copy from before binding: a challenge from the refresh endpoint, then a
    // registration of key 2.
    w.now += 1;
    copy.headers = format!("sec-secure-session-id:{handle}\n");
    let seen = w.go(&mut copy, "POST", REFRESH, &[]);
    assert_eq!(seen.reply().status, 403);
    copy.headers = registering(&challenge_of(seen.reply()), 2);
    let (mut ex, step) = w.begin(&copy, "POST", REGISTER);
    let last = match step {
        Step::Verify(_) => {
            let s = ex.verified(Ok(true));
            w.p.drive(&mut ex, s)
        }
        other => other,
    };
    let last = w.end(&mut ex, &mut copy, last);
    let Step::Reply(r) = &last else {
        panic!("{last:?}")
    };
    assert_ne!(r.status, 200, "the copy bound a key of its own: {r:?}");

    still_ada_a_minute_on(&mut w, &mut b, "the real browser");
}

/// Review: sign-out of every other device (from the phone) landed between a
/// registration's replacement of the old id and its binding of the new one, which were
/// two calls, and the binding's answer was not looked at: the revoked session was
/// bound and issued. Replacing and binding are now one call, which refuses.
#[test]
fn a_session_revoked_while_it_registers_is_not_issued() {
    let mut w = World::new(&[("KEYCARD_DEVICE_BOUND", "on")]);
    let mut b = Browser::default();
    let seen = w.sign_in(&mut b, "ada");
    let challenge = offered(&seen.last).unwrap();
    let mut phone = Browser::default();
    w.sign_in(&mut phone, "ada");
    b.headers = registering(&challenge, 1);
    let (mut ex, step) = w.begin(&b, "POST", REGISTER);
    assert!(matches!(step, Step::Verify(_)), "{step:?}");
    let bind = ex.verified(Ok(true));
    assert!(matches!(&bind, Step::Users(_)), "{bind:?}");
    // Meanwhile the phone signs out every other device.
    let seen = w.go(
        &mut phone,
        "POST",
        "/account",
        &[("x-session-action", "destroy-others")],
    );
    assert_eq!(seen.status(), "valid");
    let last = w.p.drive(&mut ex, bind);
    let last = w.end(&mut ex, &mut b, last);
    let Step::Reply(r) = &last else {
        panic!("{last:?}")
    };
    assert!(
        !r.body.contains(r#""continue":true"#) && set_cookie(r, SHORT).is_none(),
        "a revoked session was bound and issued: {r:?}"
    );
}

/// Review: the user's object failed once, on a registration's binding after its
/// replacement of the old id went through: the registration was a 503 and the browser
/// kept its old cookie, whose id the object had revoked, so one passing failure signed
/// the user out. Replacing and binding are now one call: a failure changes nothing.
#[test]
fn an_object_failing_during_a_registration_does_not_sign_the_user_out() {
    let mut w = World::new(&[("KEYCARD_DEVICE_BOUND", "on")]);
    let mut b = Browser::default();
    let seen = w.sign_in(&mut b, "ada");
    let challenge = offered(&seen.last).unwrap();
    b.headers = registering(&challenge, 1);
    let (mut ex, step) = w.begin(&b, "POST", REGISTER);
    assert!(matches!(step, Step::Verify(_)), "{step:?}");
    let bind = ex.verified(Ok(true));
    w.p.users.failing = true;
    let last = w.p.drive(&mut ex, bind);
    let last = w.end(&mut ex, &mut b, last);
    let Step::Reply(r) = &last else {
        panic!("{last:?}")
    };
    assert_eq!(r.status, 503, "{r:?}");
    w.p.users.failing = false;
    b.headers.clear();
    still_ada_a_minute_on(&mut w, &mut b, "after one failed call");
}

/// Review: during a rotation a registration called the older secret's object, then the
/// current one's; when the second call failed, the first had revoked the old id there,
/// and the browser's next registration was refused and its cookie cleared. Only the
/// current secret's object, which checks the browser's fresh cookie, decides now: an
/// older one that ended the old id already does not stop the next registration.
#[test]
fn a_failed_registration_during_a_rotation_can_be_made_again() {
    let mut w = World::new(&ROTATED);
    let mut b = Browser::default();
    let seen = w.sign_in(&mut b, "ada");
    let challenge = offered(&seen.last).unwrap();
    b.headers = registering(&challenge, 1);
    let (mut ex, step) = w.begin(&b, "POST", REGISTER);
    assert!(matches!(step, Step::Verify(_)), "{step:?}");
    // Every object answers but the current secret's, whose call fails.
    let current = w.cfg.keys.current().users_object("ada");
    let mut step = ex.verified(Ok(true));
    while let Step::Users(u) = &step {
        let answer = match u.object == current {
            true => Err("injected failure".into()),
            false => w.p.users.call(&u.object, &u.json(None)),
        };
        step = ex.users_answered(answer);
    }
    let last = w.p.drive(&mut ex, step);
    let Step::Reply(r) = w.end(&mut ex, &mut b, last) else {
        panic!("a reply")
    };
    assert_eq!(r.status, 503, "{r:?}");
    b.headers.clear();

    // A minute on, a change re-issues the cookie and offers binding again.
    w.now += crate::session::REGENERATED_WINDOW;
    let seen = ada_on(
        &mut w,
        &mut b,
        "POST",
        &[("x-session-set", r#"{"n":1}"#)],
        "signed out",
    );
    let challenge = offered(&seen.last).expect("binding offered again");
    w.now += 1;
    b.headers = registering(&challenge, 1);
    let Step::Reply(r) = proven(&mut w, &mut b, REGISTER) else {
        panic!("a reply")
    };
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains(r#""continue":true"#), "{}", r.body);
    b.headers.clear();
    keep_short(&mut b, &r);
    ada_on(&mut w, &mut b, "POST", &[], "signed out");
}

/// Review: with `SESSION_STORE=kv` and the users' objects, a registration told the
/// objects that the old id ended before it put the record under the new one; when the
/// put failed, the browser kept a cookie whose id its object had revoked. The record
/// under the new id is now put first.
#[test]
fn a_kv_write_failing_during_a_registration_does_not_sign_the_user_out() {
    let mut w = World::new(&[("KEYCARD_DEVICE_BOUND", "on"), ("SESSION_STORE", "kv")]);
    let mut b = Browser::default();
    let seen = w.sign_in(&mut b, "ada");
    let challenge = offered(&seen.last).unwrap();
    b.headers = registering(&challenge, 1);
    w.p.failing.insert("put");
    let Step::Reply(r) = proven(&mut w, &mut b, REGISTER) else {
        panic!("a reply")
    };
    assert_eq!(r.status, 503, "{r:?}");
    w.p.failing.clear();
    b.headers.clear();
    still_ada_a_minute_on(&mut w, &mut b, "after one failed KV write");
}

/// Review: a registration called only the object under the secret the browser's
/// cookie was signed with (the current one, since the offer came with a fresh cookie),
/// so a copy of the same session's cookie from before a rotation, checked with the
/// previous secret's object, never heard that its id ended: it was still signed in,
/// with no device. Every object of the ring now hears of the new id.
#[test]
fn a_copy_signed_under_the_previous_secret_ends_at_registration() {
    let mut w = World::new(&[("KEYCARD_DEVICE_BOUND", "on")]);
    let mut b = Browser::default();
    w.sign_in(&mut b, "ada");
    // Stolen before binding (the browser did not register the sign-in's offer).
    let mut copy = b.clone();
    let kid = |w: &World, b: &Browser| {
        codec::decode(&w.cfg.keys, &w.cfg.cookie.name, b.jar.as_deref().unwrap())
            .unwrap()
            .kid
    };
    let signed_before = kid(&w, &b);
    // SESSION_SECRET rotates; the browser's next request (refresh due) re-issues its
    // cookie under the new secret, same id, with a new offer.
    w.cfg = crate::testing::config(&ROTATED);
    w.now += 101;
    let seen = w.go(&mut b, "GET", "/", &[]);
    assert_eq!(seen.status(), "valid");
    assert_ne!(kid(&w, &b), signed_before, "re-issued under the new secret");
    assert_eq!(kid(&w, &copy), signed_before);
    assert_eq!(
        claims_of(&w, &b).sid,
        claims_of(&w, &copy).sid,
        "the same id"
    );
    let challenge = offered(&seen.last).expect("binding offered with the re-issue");
    w.now += 1;
    b.headers = registering(&challenge, 1);
    w.ops();
    let Step::Reply(r) = proven(&mut w, &mut b, REGISTER) else {
        panic!("a reply")
    };
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(w.ops(), ["bind", "bind"], "every object of the ring");

    // The copy, signed under the previous secret, ended with the old id.
    w.now += crate::session::REGENERATED_WINDOW;
    let seen = w.go(&mut copy, "GET", "/", &[]);
    assert_ne!(
        (seen.status(), seen.user().as_deref()),
        ("valid", Some("ada")),
        "a copy from before binding is signed in without the device"
    );
}

/// Review: a registration during a rotation whose call to the current secret's object
/// failed (a 503) left the old id revoked in the older secret's object; the next
/// registration passed there, but that object revoked the NEW id too, and every later
/// call to it that checks (an app's `regenerate`, `destroy-others`) signed the user
/// out. An older object now follows the current one's decision (`follows`): it keeps
/// the new id. With `fail`, the first registration's call to the current secret's
/// object fails and the browser registers again; without, the first one succeeds.
fn registered_again_after_a_failure(pairs: &[(&str, &str)], fail: bool) -> (World, Browser) {
    let mut w = World::new(pairs);
    let mut b = Browser::default();
    let seen = w.sign_in(&mut b, "ada");
    let challenge = offered(&seen.last).unwrap();
    b.headers = registering(&challenge, 1);
    let (mut ex, step) = w.begin(&b, "POST", REGISTER);
    assert!(matches!(step, Step::Verify(_)), "{step:?}");
    let current = w.cfg.keys.current().users_object("ada");
    let mut step = ex.verified(Ok(true));
    // Every step carried out, but the current secret's object fails.
    let last = loop {
        step = match step {
            Step::Users(u) if fail && u.object == current => {
                ex.users_answered(Err("injected failure".into()))
            }
            Step::Users(u) => ex.users_answered(w.p.users.call(&u.object, &u.json(None))),
            Step::KvGet { key } => ex.kv_read(w.p.get(&key)),
            Step::KvPut(p) => ex.written(w.p.put(&p.key, &p.value, p.ttl)),
            Step::KvDelete { key } => ex.written(w.p.delete(&key)),
            other => break other,
        };
    };
    let Step::Reply(r) = w.end(&mut ex, &mut b, last) else {
        panic!("a reply")
    };
    assert_eq!(r.status, if fail { 503 } else { 200 }, "{r:?}");
    b.headers.clear();
    w.now += crate::session::REGENERATED_WINDOW;
    if fail {
        let seen = w.go(&mut b, "POST", "/", &[("x-session-set", r#"{"n":1}"#)]);
        let challenge = offered(&seen.last).expect("binding offered again");
        w.now += 1;
        b.headers = registering(&challenge, 1);
        let Step::Reply(r) = proven(&mut w, &mut b, REGISTER) else {
            panic!("a reply")
        };
        assert_eq!(r.status, 200, "{r:?}");
        b.headers.clear();
        keep_short(&mut b, &r);
        w.now += crate::session::REGENERATED_WINDOW;
    } else {
        keep_short(&mut b, &r);
    }
    (w, b)
}

/// After [`registered_again_after_a_failure`], the app answers `control`, and the
/// user is still signed in.
fn still_signed_in_after(pairs: &[(&str, &str)], fail: bool, control: &[(&str, &str)]) {
    let (mut w, mut b) = registered_again_after_a_failure(pairs, fail);
    let seen = w.go(&mut b, "POST", "/account", control);
    assert_eq!(seen.status(), "valid");
    w.now += 1;
    ada_on(
        &mut w,
        &mut b,
        "POST",
        &[],
        &format!("signed out by {control:?} (first registration failed: {fail})"),
    );
}

const DESTROY_OTHERS: [(&str, &str); 1] = [("x-session-action", "destroy-others")];

#[test]
fn a_re_registration_control_without_the_failure() {
    let mut kv = ROTATED.to_vec();
    kv.push(("SESSION_STORE", "kv"));
    for pairs in [&ROTATED[..], &kv[..]] {
        still_signed_in_after(pairs, false, &STEP_UP);
        still_signed_in_after(pairs, false, &DESTROY_OTHERS);
    }
}

#[test]
fn a_regenerate_after_a_re_registration_keeps_the_user_signed_in() {
    still_signed_in_after(&ROTATED, true, &STEP_UP);
}

#[test]
fn destroy_others_after_a_re_registration_keeps_the_user_signed_in() {
    still_signed_in_after(&ROTATED, true, &DESTROY_OTHERS);
}

#[test]
fn a_re_registration_with_kv_records_keeps_the_user_signed_in() {
    let mut kv = ROTATED.to_vec();
    kv.push(("SESSION_STORE", "kv"));
    still_signed_in_after(&kv, true, &STEP_UP);
}
