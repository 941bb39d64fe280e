use super::*;
use crate::dbsc::Binding;

const NOW: u64 = 1_700_000_000;

fn caller(n: u8) -> Caller {
    Caller {
        key: format!("key-{n}"),
        handle: format!("handle-{n:0>15}"),
        created: NOW,
        expires: NOW + 1000,
    }
}

fn device(agent: &str) -> Device {
    Device {
        agent: agent.into(),
        country: Some("DE".into()),
    }
}

/// `SESSION_ABSOLUTE_TIMEOUT` in these tests.
const ABSOLUTE: u64 = 5000;

fn see(n: u8, now: u64) -> Call {
    Call {
        now,
        horizon: now + ABSOLUTE,
        caller: caller(n),
        op: Op::See {
            device: device("Firefox on Linux"),
            touch_after: 100,
            replaces: None,
            follows: false,
            fresh: false,
            unproven: false,
        },
    }
}

fn revoke(n: u8, which: Which) -> Call {
    Call {
        now: NOW + 1,
        horizon: NOW + 1 + ABSOLUTE,
        caller: caller(n),
        op: Op::Revoke { which },
    }
}

fn keys(s: &State) -> Vec<&str> {
    s.live.iter().map(|e| e.key.as_str()).collect()
}

#[test]
fn see_registers_once_and_touches_at_most_once_per_interval() {
    let mut s = State::default();
    assert_eq!(s.apply(see(1, NOW)), ObjectAnswer::default());
    assert_eq!(keys(&s), ["key-1"]);
    s.apply(see(1, NOW + 99));
    assert_eq!(s.live[0].last_seen, NOW, "not yet due");
    s.apply(see(1, NOW + 100));
    assert_eq!(s.live[0].last_seen, NOW + 100);
    assert_eq!(s.live.len(), 1);
}

#[test]
fn a_revoked_caller_is_told_so_and_changes_nothing() {
    let mut s = State::default();
    s.apply(see(1, NOW));
    s.apply(see(2, NOW));
    assert_eq!(s.apply(revoke(1, Which::Caller)).keys.len(), 1);
    let before = s.clone();
    for call in [
        see(1, NOW + 2),
        revoke(1, Which::All),
        revoke(1, Which::Others),
    ] {
        let a = s.apply(call);
        assert!(a.caller_revoked);
        assert!(a.keys.is_empty());
    }
    assert_eq!(
        s, before,
        "a revoked caller cannot register again or revoke others"
    );
    assert_eq!(keys(&s), ["key-2"]);
}

#[test]
fn others_all_and_handles() {
    let mut s = State::default();
    for n in 1..=4 {
        s.apply(see(n, NOW));
    }
    let h3 = caller(3).handle;
    assert_eq!(s.apply(revoke(1, Which::Handles(vec![h3]))).keys.len(), 1);
    assert_eq!(keys(&s), ["key-1", "key-2", "key-4"]);
    assert_eq!(s.apply(revoke(1, Which::Others)).keys.len(), 2);
    assert_eq!(keys(&s), ["key-1"]);
    assert!(s.apply(see(2, NOW + 5)).caller_revoked);
    assert_eq!(s.apply(revoke(1, Which::All)).keys.len(), 1);
    assert!(s.live.is_empty());
    assert!(s.apply(see(1, NOW + 5)).caller_revoked);
}

#[test]
fn replaces_revokes_the_id_before_regenerate() {
    let mut s = State::default();
    s.apply(see(1, NOW));
    let mut call = see(2, NOW + 1);
    call.op = Op::See {
        device: device("Safari on iOS"),
        touch_after: 100,
        replaces: Some("key-1".into()),
        follows: false,
        fresh: false,
        unproven: false,
    };
    assert_eq!(s.apply(call).keys.len(), 1);
    assert_eq!(keys(&s), ["key-2"]);
    assert!(s.apply(see(1, NOW + 2)).caller_revoked);
}

#[test]
fn revocations_last_until_no_session_can_outlive_them_then_go() {
    let mut s = State::default();
    s.apply(see(1, NOW));
    s.apply(revoke(1, Which::Caller));
    // Past the session's own expiry (an `X-Session-Max-Age` may have moved it), up to
    // the horizon: now + the absolute timeout, which also caps Max-Age.
    assert!(s.apply(see(1, NOW + 1000)).caller_revoked);
    assert!(s.apply(see(1, NOW + ABSOLUTE)).caller_revoked);
    s.apply(see(2, NOW + 1 + ABSOLUTE));
    assert!(s.revoked.is_empty());
}

#[test]
fn a_see_keeps_the_expiry_up_to_date() {
    let mut s = State::default();
    s.apply(see(1, NOW));
    let mut later = see(1, NOW + 10);
    later.caller.expires = NOW + 9000;
    s.apply(later);
    assert_eq!(
        s.live[0].expires,
        NOW + 9000,
        "within the touch interval too"
    );
    s.apply(see(2, NOW + 1001));
    assert_eq!(s.live.len(), 2, "not pruned at its first expiry");
}

#[test]
fn regenerating_a_revoked_session_is_refused_and_its_new_id_revoked() {
    let mut s = State::default();
    s.apply(see(1, NOW));
    s.apply(see(2, NOW));
    s.apply(revoke(2, Which::Others));
    let mut call = see(3, NOW + 2);
    call.op = Op::See {
        device: device("x"),
        touch_after: 100,
        replaces: Some("key-1".into()),
        follows: false,
        fresh: false,
        unproven: false,
    };
    assert!(s.apply(call).caller_revoked);
    assert!(
        s.apply(see(3, NOW + 3)).caller_revoked,
        "the new id is revoked too"
    );
    assert_eq!(keys(&s), ["key-2"]);
}

#[test]
fn revocations_answer_the_keys_and_keys_revoke_by_key() {
    let mut s = State::default();
    for n in 1..=3 {
        s.apply(see(n, NOW));
    }
    let a = s.apply(revoke(1, Which::Handles(vec![caller(2).handle])));
    assert_eq!(a.keys, ["key-2"]);
    let a = s.apply(revoke(1, Which::Keys(vec!["key-3".into(), "key-9".into()])));
    assert_eq!(a.keys, ["key-3", "key-9"]);
    assert!(
        s.apply(see(9, NOW + 2)).caller_revoked,
        "a key never seen here is revoked too"
    );
    assert_eq!(keys(&s), ["key-1"]);
}

#[test]
fn an_object_full_of_revocations_refuses_new_sessions_but_keeps_revoking() {
    let mut s = State::default();
    s.apply(see(1, NOW));
    for i in 0..MAX_REVOKED {
        s.revoked.insert(format!("old-{i}"), (NOW + 100).into());
    }
    assert!(
        s.apply(see(2, NOW + 1)).caller_revoked,
        "no room for a new session"
    );
    assert!(
        !s.apply(see(1, NOW + 1)).caller_revoked,
        "a known one goes on"
    );
    assert_eq!(s.apply(revoke(1, Which::Caller)).keys.len(), 1);
    // Once the old ones expire, there is room again.
    assert!(!s.apply(see(3, NOW + 200)).caller_revoked);
}

#[test]
fn forget_unlists_the_entry_but_others_still_revokes_it() {
    let mut s = State::default();
    s.apply(see(1, NOW));
    s.apply(see(2, NOW));
    let mut call = see(1, NOW);
    call.op = Op::Forget;
    s.apply(call);
    assert!(s.revoked.is_empty(), "not revoked");
    let mut list = see(2, NOW + 1);
    list.op = Op::List {
        device: Device::default(),
        touch_after: 100,
    };
    assert_eq!(s.apply(list).sessions.len(), 1, "not listed");
    // A copy of its signed-in cookie is still the user's: destroy-others ends it.
    s.apply(revoke(2, Which::Others));
    assert!(s.apply(see(1, NOW + 2)).caller_revoked);
}

#[test]
fn others_and_all_also_end_sessions_the_object_never_heard_of() {
    let mut s = State::default();
    s.apply(see(1, NOW));
    // key-5 began before the cutoff but was never registered (its registration failed
    // under SESSION_KV_FAILURE=open, say).
    s.apply(revoke(1, Which::Others));
    let mut unknown = see(5, NOW + 2);
    unknown.caller.created = NOW - 10;
    assert!(s.apply(unknown.clone()).caller_revoked);
    assert!(
        s.revoked.contains_key("key-5"),
        "and it is known as revoked from then on"
    );
    // A session that began after it, or one that became the user's just now, is not.
    let mut later = see(6, NOW + 3);
    later.caller.created = NOW + 3;
    assert!(!s.apply(later).caller_revoked);
    let mut sign_in = see(7, NOW + 4);
    sign_in.caller.created = NOW - 10;
    sign_in.op = Op::See {
        device: device("x"),
        touch_after: 100,
        replaces: None,
        follows: false,
        fresh: true,
        unproven: false,
    };
    assert!(
        !s.apply(sign_in).caller_revoked,
        "a sign-in from an older anonymous session"
    );
    assert!(
        !s.apply(see(1, NOW + 5)).caller_revoked,
        "the session that made it"
    );
    // The state reads back as it was written.
    assert_eq!(State::parse(&s.to_json()), Ok(s.clone()));
}

/// The id a `regenerate` replaced is revoked at once, and for a minute its caller is
/// told why, so that the page's requests in flight with its cookie leave it alone.
#[test]
fn a_regenerated_caller_is_told_so_for_a_minute() {
    let mut s = State::default();
    s.apply(see(1, NOW));
    let mut regenerate = see(2, NOW + 1);
    if let Op::See { replaces, .. } = &mut regenerate.op {
        *replaces = Some("key-1".into());
    }
    assert_eq!(s.apply(regenerate).keys, ["key-1"]);
    let a = s.apply(see(1, NOW + 2));
    assert!(a.caller_revoked && a.caller_regenerated, "{a:?}");
    assert_eq!(ObjectAnswer::parse(&a.to_json()).unwrap(), a);
    assert_eq!(State::parse(&s.to_json()), Ok(s.clone()));
    let a = s.apply(see(1, NOW + 1 + crate::session::REGENERATED_WINDOW));
    assert!(a.caller_revoked && !a.caller_regenerated, "{a:?}");
    assert!(s.regenerated.is_empty(), "forgotten after the minute");
    // A session revoked otherwise is not told so.
    s.apply(see(3, NOW + 100));
    s.apply(Call {
        now: NOW + 100,
        ..revoke(3, Which::Caller)
    });
    assert!(!s.apply(see(3, NOW + 101)).caller_regenerated);
}

#[test]
fn past_the_limit_the_session_seen_longest_ago_is_revoked() {
    let mut s = State::default();
    for n in 0..MAX_LIVE as u8 {
        s.apply(see(n, NOW + u64::from(n)));
    }
    s.apply(see(1, NOW + 500)); // key-1 seen again: key-0 is now the oldest
    s.apply(see(200, NOW + 501));
    assert_eq!(s.live.len(), MAX_LIVE);
    assert!(s.revoked.contains_key("key-0"));
    assert!(!s.revoked.contains_key("key-1"));
}

#[test]
fn answer_stores_only_what_changed_and_refuses_what_does_not_read() {
    let call = see(1, NOW).to_json();
    let (a, stored) = answer(None, &call).unwrap();
    assert_eq!(a, r#"{"caller_revoked":false}"#);
    let stored = stored.expect("a new entry is stored");
    let (_, again) = answer(Some(&stored), &call).unwrap();
    assert_eq!(
        again, None,
        "a second look within the interval writes nothing"
    );
    assert!(answer(Some("{not json"), &call).is_err());
    assert!(answer(Some(r#"{"v":2,"live":[],"revoked":{}}"#), &call).is_err());
    assert!(answer(None, r#"{"v":1,"op":"see"}"#).is_err());
    // Every kind of call reads back as it was written.
    let c = caller(1);
    for op in [
        Op::See {
            device: device("x"),
            touch_after: 5,
            replaces: Some("k".into()),
            follows: false,
            fresh: false,
            unproven: false,
        },
        Op::List {
            device: Device::default(),
            touch_after: 0,
        },
        Op::Revoke {
            which: Which::Caller,
        },
        Op::Revoke {
            which: Which::Others,
        },
        Op::Revoke { which: Which::All },
        Op::Revoke {
            which: Which::Handles(vec!["h1".into(), "h2".into()]),
        },
        Op::Revoke {
            which: Which::Keys(vec!["k1".into()]),
        },
        Op::Forget,
    ] {
        let call = Call {
            now: NOW,
            horizon: NOW + ABSOLUTE,
            caller: c.clone(),
            op,
        };
        assert_eq!(Call::parse(&call.to_json()), Ok(call));
    }
    let list = Call {
        op: Op::List {
            device: Device::default(),
            touch_after: 100,
        },
        ..see(1, NOW)
    }
    .to_json();
    let (a, _) = answer(Some(&stored), &list).unwrap();
    let a = ObjectAnswer::parse(&a).unwrap();
    assert_eq!(a.sessions.len(), 1);
    assert_eq!(a.sessions[0].device.agent, "Firefox on Linux");
}

#[test]
fn agent_summaries() {
    let cases = [
        (Some("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"), "Firefox on Linux"),
        (Some("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0"), "Edge on Windows"),
        (Some("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"), "Safari on iOS"),
        (Some("Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"), "Chrome on Android"),
        (Some("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15"), "Safari on macOS"),
        (Some("curl/8.5.0"), "curl"),
        (None, "Other"),
    ];
    for (ua, want) in cases {
        assert_eq!(agent_summary(ua), want, "{ua:?}");
    }
    assert_eq!(country(Some("de")), Some("DE".into()));
    assert_eq!(country(Some("DEU")), None);
    assert_eq!(country(Some("<\n")), None);
}

#[test]
fn a_call_gets_the_country_the_driver_reads_when_it_sends_it() {
    let with_device = |op: Op| UsersCall {
        object: "o".into(),
        call: Box::new(Call { op, ..see(1, NOW) }),
    };
    let sent = |u: &UsersCall, cf: Option<&str>| -> Call {
        Call::parse(&u.json(cf)).expect("the call's JSON reads back")
    };
    let device_of = |c: Call| match c.op {
        Op::See { device, .. } | Op::List { device, .. } => device,
        other => panic!("no device in {other:?}"),
    };
    let blank = Device {
        agent: "Firefox on Linux".into(),
        country: None,
    };
    for op in [
        Op::See {
            device: blank.clone(),
            touch_after: 100,
            replaces: None,
            follows: false,
            fresh: true,
            unproven: false,
        },
        Op::List {
            device: blank.clone(),
            touch_after: 100,
        },
    ] {
        let u = with_device(op);
        assert_eq!(
            device_of(sent(&u, Some("de"))).country.as_deref(),
            Some("DE")
        );
        assert_eq!(
            device_of(sent(&u, Some("<\n"))).country,
            None,
            "checked like any country"
        );
        assert_eq!(device_of(sent(&u, None)), blank);
    }
    let revoke = with_device(Op::Revoke { which: Which::All });
    assert_eq!(
        sent(&revoke, Some("de")),
        *revoke.call,
        "a call without a device is as it was"
    );
}

fn binding(thumb: &str, last_ms: u64) -> Binding {
    Binding {
        key: format!(r#"ES256 {{"kty":"EC","thumb":"{thumb}"}}"#),
        thumbprint: thumb.into(),
        last_ms,
        until: last_ms + 600,
    }
}

/// `Bind` of the binding `one` from Chrome on Windows, replacing `replaces` if any.
fn bind_one(replaces: Option<String>) -> Op {
    Op::Bind {
        device: device("Chrome on Windows"),
        binding: binding("one", 5),
        replaces,
        follows: false,
    }
}

fn call(n: u8, op: Op) -> Call {
    Call {
        now: NOW,
        horizon: NOW + ABSOLUTE,
        caller: caller(n),
        op,
    }
}

/// A session is bound once; each challenge it answers must be later than the last,
/// and the object, which every location asks, is where that is decided. The binding
/// survives the object's stored JSON, and `See` answers it.
#[test]
fn a_session_binds_once_and_answers_each_challenge_once() {
    let bind = |thumb: &str| Op::Bind {
        device: device("Chrome on Windows"),
        binding: binding(thumb, 5),
        replaces: None,
        follows: false,
    };
    let prove = |ms| Op::Prove {
        challenge_ms: ms,
        until: ms + 600,
    };
    let mut s = State::default();
    assert_eq!(
        s.apply(call(1, prove(6))).device_refused,
        Some(DeviceRefusal::Unbound)
    );
    let a = s.apply(call(1, bind("one")));
    assert_eq!((a.device_refused, a.bound), (None, Some(binding("one", 5))));
    let a = s.apply(call(1, bind("two")));
    assert_eq!(a.device_refused, Some(DeviceRefusal::Bound));
    assert_eq!(a.bound, Some(binding("one", 5)), "the first binding stays");
    assert_eq!(
        s.apply(call(1, prove(5))).device_refused,
        Some(DeviceRefusal::Used)
    );
    let a = s.apply(call(1, prove(9)));
    assert_eq!((a.device_refused, a.bound), (None, Some(binding("one", 9))));
    assert_eq!(
        s.apply(call(1, prove(9))).device_refused,
        Some(DeviceRefusal::Used)
    );
    assert_eq!(s.apply(see(1, NOW)).bound, Some(binding("one", 9)));
    assert_eq!(
        s.apply(see(2, NOW)).bound,
        None,
        "another session is not bound"
    );

    let stored = State::parse(&s.to_json()).unwrap();
    assert_eq!(stored, s);
    for op in [bind("one"), prove(9)] {
        let c = call(1, op);
        assert_eq!(Call::parse(&c.to_json()).unwrap(), c);
    }
    let a = s.apply(call(1, prove(9)));
    assert_eq!(ObjectAnswer::parse(&a.to_json()).unwrap(), a);

    s.apply(revoke(1, Which::Caller));
    assert!(
        s.apply(call(1, prove(20))).caller_revoked,
        "a revoked session proves nothing"
    );
}

/// A registration gives the session a new id: `Bind` with `replaces` revokes the old
/// key and binds the new one in one call, remembering for a minute that the old one was
/// replaced; it refuses when the old key is revoked (nothing comes back under a new id)
/// or bound already (a copy of a cookie from before binding binds nothing), changing
/// nothing then.
#[test]
fn a_bind_that_replaces_revokes_the_old_key_or_refuses() {
    let bind = |n: u8, old: u8| call(n, bind_one(Some(format!("key-{old}"))));
    let mut s = State::default();
    s.apply(see(1, NOW));
    let a = s.apply(bind(2, 1));
    assert_eq!(
        (a.device_refused, &a.keys),
        (None, &vec!["key-1".to_owned()])
    );
    assert!(s.is_revoked("key-1") && s.regenerated.contains_key("key-1"));
    assert_eq!(
        s.entry("key-2").and_then(|e| e.bound.clone()),
        Some(binding("one", 5))
    );
    let c = bind(2, 1);
    assert_eq!(Call::parse(&c.to_json()).unwrap(), c);

    // Again from the old id (a registration sent twice): refused, as a regenerated one.
    let a = s.apply(bind(3, 1));
    assert!(a.caller_revoked && a.caller_regenerated, "{a:?}");
    assert!(s.entry("key-3").is_none());

    // An object that follows another's decision (an older secret's, during a
    // rotation) keeps and binds the caller even when the old key is revoked already
    // (an earlier attempt ended it there), and the old key stays revoked.
    let follows = |n: u8, old: u8| {
        let mut c = bind(n, old);
        if let Op::Bind { follows, .. } = &mut c.op {
            *follows = true;
        }
        c
    };
    let a = s.apply(follows(6, 1));
    assert!(!a.caller_revoked && a.device_refused.is_none(), "{a:?}");
    assert!(s.is_revoked("key-1") && !s.is_revoked("key-6"));
    assert_eq!(
        s.entry("key-6").and_then(|e| e.bound.clone()),
        Some(binding("one", 5))
    );
    let c = follows(6, 1);
    assert_eq!(Call::parse(&c.to_json()).unwrap(), c);

    // An id bound in place (before registrations gave new ids) is not replaced.
    let mut s = State::default();
    s.apply(call(4, bind_one(None)));
    let before = s.clone();
    let a = s.apply(bind(5, 4));
    assert_eq!(a.device_refused, Some(DeviceRefusal::Bound));
    assert_eq!(s, before, "nothing changed");
}

/// A bound entry is noted (seen when, where, until when) only by a caller that proved
/// its device: a `See` that has not (a copy of its cookie from before binding, or a
/// refresh about to prove) leaves it as the device last left it. An unbound entry is
/// noted by every `See`, as before.
#[test]
fn an_unproven_see_leaves_a_bound_entry_as_it_was() {
    let later = NOW + 500;
    let unproven = |n: u8| {
        let mut c = see(n, later);
        c.caller.expires = NOW + 10;
        if let Op::See {
            device, unproven, ..
        } = &mut c.op
        {
            *device = Device {
                agent: "curl".into(),
                country: Some("XX".into()),
            };
            *unproven = true;
        }
        c
    };
    let mut s = State::default();
    s.apply(see(1, NOW));
    s.apply(see(2, NOW));
    s.apply(call(1, bind_one(None)));
    let before = s.live[0].clone();
    let a = s.apply(unproven(1));
    assert_eq!(
        a.bound,
        Some(binding("one", 5)),
        "it is still told the binding"
    );
    assert_eq!(s.live[0], before, "the bound entry is left as it was");
    s.apply(unproven(2));
    assert_eq!(
        (s.live[1].last_seen, s.live[1].device.agent.as_str()),
        (later, "curl"),
        "an unbound one is noted"
    );
}

/// `until` came after the first version: a binding an object kept before, and a
/// `prove` from a keycard that does not send it (one still running while a deploy
/// rolls out), read as not knowing it, rather than failing the call.
#[test]
fn a_binding_or_prove_without_until_reads_as_unknown() {
    let mut with = call(
        1,
        Op::Prove {
            challenge_ms: 9,
            until: 609,
        },
    )
    .to_json();
    with = with
        .replace(r#","until":609"#, "")
        .replace(r#""until":609,"#, "");
    assert!(!with.contains("until"), "{with}");
    let c = Call::parse(&with).unwrap();
    assert!(
        matches!(
            c.op,
            Op::Prove {
                challenge_ms: 9,
                until: 0
            }
        ),
        "{:?}",
        c.op
    );

    let mut s = State::default();
    s.apply(call(1, bind_one(None)));
    let old = s
        .to_json()
        .replace(r#","until":605"#, "")
        .replace(r#""until":605,"#, "");
    assert!(!old.contains("until"), "{old}");
    let read = State::parse(&old).unwrap();
    assert_eq!(read.live[0].bound.as_ref().map(|b| b.until), Some(0));
}

/// Two locations' clocks, or a shorter TTL since, can make a later proof's cookie
/// expire earlier than one issued before, whose copies stay valid until then: the
/// binding keeps the later expiry.
#[test]
fn a_proof_never_moves_until_back() {
    let mut s = State::default();
    s.apply(call(1, bind_one(None)));
    let prove = |challenge_ms, until| Op::Prove {
        challenge_ms,
        until,
    };
    let a = s.apply(call(1, prove(9, 2_000)));
    assert_eq!(a.bound.map(|b| (b.last_ms, b.until)), Some((9, 2_000)));
    let a = s.apply(call(1, prove(10, 1_900)));
    assert_eq!(a.device_refused, None);
    assert_eq!(a.bound.map(|b| (b.last_ms, b.until)), Some((10, 2_000)));
}
