//! Sign-out everywhere, request after request: browsers of one user and of another,
//! driven through whole exchanges against [`FakeKv`] and the users' objects running
//! their real logic ([`FakeUsers`](crate::testing::FakeUsers)). The Worker runs the same
//! scenarios end to end with real Durable Objects in `tests/e2e/users.test.mjs`.

use serde_json::Value;

use super::*;
use crate::testing::{config, CountingEntropy, FakeKv, T0};
use crate::util::unb64;

/// One browser: a cookie jar of one cookie.
#[derive(Default, Clone)]
struct Browser {
    jar: Option<String>,
}

/// What came of one request.
#[derive(Debug)]
struct Seen {
    /// What the origin was told, when it was asked at all.
    origin: Option<SessionHeaders>,
    /// The final step.
    last: Step,
}

impl Seen {
    /// The status the origin was told.
    fn status(&self) -> &'static str {
        self.origin.as_ref().map_or("not forwarded", |o| o.status)
    }

    /// The user the origin was told about.
    fn user(&self) -> Option<String> {
        let data = self.origin.as_ref()?.session.as_ref()?;
        let v: Value = serde_json::from_slice(&unb64(data)?).ok()?;
        v["user"].as_str().map(str::to_owned)
    }

    fn handle(&self) -> String {
        self.origin
            .as_ref()
            .and_then(|o| o.handle.clone())
            .expect("a handle")
    }

    fn reply(&self) -> &Reply {
        match &self.last {
            Step::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }
}

fn users() -> Bindings {
    Bindings {
        kv: Binding::Present,
        users: Binding::Present,
        ..Default::default()
    }
}

/// The platform: KV and the users' objects, and the clock.
struct World {
    cfg: Config,
    bindings: Bindings,
    p: FakeKv,
    now: u64,
    logs: Vec<Log>,
}

impl World {
    fn new(pairs: &[(&str, &str)]) -> World {
        World {
            cfg: config(pairs),
            bindings: users(),
            p: FakeKv::default(),
            now: T0,
            logs: Vec::new(),
        }
    }

    /// One request from `b`; the origin answers 200 with `control` headers.
    fn go(&mut self, b: &mut Browser, method: &str, path: &str, control: &[(&str, &str)]) -> Seen {
        self.p.now = self.now;
        let mut headers =
            String::from("user-agent:Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0\n");
        if let Some(v) = &b.jar {
            headers.push_str(&format!("cookie:{}={v}\n", self.cfg.cookie.name));
        }
        let url = format!("https://app.example{path}");
        let req = Incoming {
            method,
            url: &url,
            headers: HeaderList(&headers),
            country: Some("de"),
        };
        let entropy = CountingEntropy(self.now as u8 ^ b.jar.as_ref().map_or(0, |j| j.len() as u8));
        let (mut ex, step) = Exchange::start(
            Rc::new(self.cfg.clone()),
            self.bindings,
            &req,
            self.now,
            entropy,
        );
        let mut step = self.p.drive(&mut ex, step);
        let mut origin = None;
        if let Step::Forward(f) = step {
            origin = Some(f.session.clone());
            let h: String = control.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
            let answered = ex.answered(&Answer {
                status: 200,
                headers: HeaderList(&h),
            });
            step = self.p.drive(&mut ex, answered);
        }
        self.logs.extend(ex.take_logs());
        let set_cookie = match &step {
            Step::Rewrap(r) => r.set_cookie.clone(),
            Step::Reply(r) => r
                .headers
                .iter()
                .find(|(n, _)| *n == "set-cookie")
                .map(|(_, v)| v.clone()),
            _ => None,
        };
        if let Some(sc) = set_cookie {
            let value = sc.split(';').next().unwrap().split_once('=').unwrap().1;
            b.jar = (!value.is_empty()).then(|| value.to_owned());
        }
        Seen { origin, last: step }
    }

    /// Signs `b` in as `user`, the way an app should: `Set` and `regenerate`.
    fn sign_in(&mut self, b: &mut Browser, user: &str) -> Seen {
        let set = format!(r#"{{"user":"{user}"}}"#);
        let s = self.go(
            b,
            "POST",
            "/login",
            &[("x-session-set", &set), ("x-session-action", "regenerate")],
        );
        self.now += 1;
        s
    }

    fn ops(&mut self) -> Vec<String> {
        self.p.users.take_ops()
    }

    fn logged(&self, event: &str) -> bool {
        self.logs.iter().any(|l| l.event == event)
    }
}

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
    assert_eq!(w.ops(), ["see"], "a refresh is checked");
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
