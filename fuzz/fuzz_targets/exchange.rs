//! A whole request through `exchange::Exchange`, the state machine the Worker drives:
//! any method, path, `Cookie`, `Sec-Fetch-Site` and other headers from the client; any
//! KV results (records, missing, garbage, failures); any answer of a user's object (its
//! real logic, "revoked", garbage, failures); any origin answer (status, control headers
//! and other headers), or none; and, now and then, a call out of order.
//!
//! Input: a `config` byte (picks one of `keycard_fuzz::CONFIGS`), a `bindings` byte
//! (bit 0 KV, bit 1 assets, bit 2 something else under the KV name, bit 3 the users'
//! Durable Objects), a `when` byte (`now = T0 + when * 900 s`), a `script` byte
//! (its bits choose the KV and origin results, in the order the steps ask for them),
//! then `method \0 path \0 cookie \0 fetch-site \0 set \0 action \0 max-age \0
//! client headers \0 origin headers`, the last two as `name:value` lines.
//!
//! Properties: nothing panics; every exchange ends within a bounded number of steps; the
//! origin is only told `valid` for a cookie that reads as a session, and never after its
//! user's object said it was revoked; a client alone
//! (KV and the origin working, the bindings the configuration needs present, the origin
//! setting no more data than a cookie can hold without KV) never gets a 5xx; a call out
//! of order is an opaque 500, never a panic; no session cookie value is logged; the
//! alias rule holds both ways: every client header whose name, lower-cased with every
//! character outside `a-z0-9` read as `-`, is `x-session`, `x-session-*`,
//! `x-forwarded-*`, `forwarded` or `x-real-ip`, or that of another proxy's identity
//! header (`remote-user`, `x-auth-request-*`, `x-webauth-*`, ...) or one that
//! overrides the path (`script-name`, `x-original-url`, ...), is deleted before
//! forwarding, and every origin header whose name reads as `x-session` or `x-session-*` is deleted before the
//! client sees the response (the rule restated here independently of `keycard::http::headers`).

#![no_main]

use keycard::config::StoreMode;
use std::rc::Rc;

use keycard::exchange::{Answer, Binding, Bindings, Exchange, Forwarding, Incoming, Step};
use keycard::http::headers::HeaderList;
use keycard::session::{self, Read};
use keycard::users;
use keycard_fuzz::{configs, Counter, T0};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [pick, bind, when, script, rest @ ..] = data else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut f = text.split('\0');
    let mut field = || f.next().filter(|s| !s.is_empty());
    let method = field().unwrap_or("GET");
    let path = field().unwrap_or("/");
    let (cookie, fetch_site) = (field(), field());
    let (set, action, max_age) = (field(), field(), field());
    let (client_extra, origin_extra) = (field().unwrap_or(""), field().unwrap_or(""));

    let cfgs = configs();
    let cfg = &cfgs[usize::from(*pick) % cfgs.len()];
    let now = T0 + u64::from(*when) * 900;
    let present = |bit: u8| match bind & bit != 0 {
        true => Binding::Present,
        false => Binding::Absent,
    };
    let bindings = Bindings {
        // Bit 2: something else sits under the KV binding's name.
        kv: match bind & 4 != 0 {
            true => Binding::WrongKind,
            false => present(1),
        },
        origin_service: Binding::Absent,
        assets: present(2),
        users: present(8),
        // Bit 16: keycard inside a workers-rs app, whose handler is the origin.
        forwarding: match bind & 16 != 0 {
            true => Forwarding::Handler,
            false => Forwarding::Fetch,
        },
    };
    // A method or path the runtime would never hand over (it parses the request line).
    if method.bytes().any(|b| !b.is_ascii_graphic()) || path.bytes().any(|b| b <= b' ') {
        return;
    }
    let url = format!("https://app.example/{}", path.trim_start_matches('/'));
    let mut client = header_lines(client_extra);
    for (name, value) in [
        ("cookie", cookie),
        ("sec-fetch-site", fetch_site),
        ("cf-connecting-ip", Some("203.0.113.7")),
    ] {
        if let Some(v) = value.filter(|v| !v.contains('\n')) {
            client.push_str(&format!("{name}:{v}\n"));
        }
    }
    let cookie = HeaderList::new(&client).get("cookie");
    let req = Incoming {
        method,
        url: &url,
        headers: HeaderList::new(&client),
    };
    let reads_valid = matches!(
        session::read(cfg, cookie, now),
        Read::Ready(_) | Read::NeedsRecord(_)
    );

    let (mut ex, mut step) =
        Exchange::start(Rc::new(cfg.clone()), bindings, &req, now, Counter(*script));
    let mut bits = u32::from(*script) | (u32::from(*when) << 8);
    let mut next_bits = |n: u32| {
        let v = bits & ((1 << n) - 1);
        bits = bits.rotate_right(n);
        v
    };
    // Whether anything but the client went wrong: a store or origin failure, a
    // configuration that needs a binding that is missing, or origin data too big for a
    // cookie with no KV to spill to.
    let mut not_the_client = (cfg.store == StoreMode::Kv && bindings.kv != Binding::Present)
        || (cfg.store != StoreMode::Cookie && bindings.kv == Binding::WrongKind);
    // The origin's headers, once it answered.
    let mut origin = String::new();
    // The users' objects, for the answers given by their real logic.
    let mut objects = std::collections::HashMap::<String, String>::new();
    // A user's object said the session was revoked, before it was forwarded.
    let mut revoked = false;
    let mut forwarded = false;
    let mut steps = 0;
    while !step.is_final() {
        steps += 1;
        assert!(steps < 32, "the exchange did not end: {step:?}");
        step = match step {
            Step::Users(call) => {
                let answer = match next_bits(2) {
                    0 => {
                        let state = objects.get(&call.object).map(String::as_str);
                        // The country a driver read from `request.cf`, if any.
                        let cf = [None, Some("de"), Some("<\n"), Some("DEU")];
                        let cf = cf[next_bits(2) as usize];
                        let (answer, stored) = users::answer(state, &call.json(cf))
                            .expect("keycard's own calls always read");
                        if let Some(s) = stored {
                            objects.insert(call.object.clone(), s);
                        }
                        Ok(answer)
                    }
                    1 => {
                        revoked |= !forwarded;
                        Ok(r#"{"caller_revoked":true}"#.to_owned())
                    }
                    2 => {
                        not_the_client = true;
                        Ok(text.to_owned())
                    }
                    _ => {
                        not_the_client = true;
                        Err("injected".to_owned())
                    }
                };
                ex.users_answered(answer)
            }
            Step::KvGet { .. } => {
                let found = match next_bits(2) {
                    0 => Ok(None),
                    1 => Ok(Some(
                        r#"{"v":1,"created":1,"abs_exp":2,"data":{"n":1}}"#.to_owned(),
                    )),
                    2 => Ok(Some(text.to_owned())),
                    _ => {
                        not_the_client = true;
                        Err("injected".to_owned())
                    }
                };
                ex.kv_read(found)
            }
            Step::KvPut(_) | Step::KvDelete { .. } => {
                let result = if next_bits(3) == 0 {
                    not_the_client = true;
                    Err("injected".to_owned())
                } else {
                    Ok(())
                };
                ex.written(result)
            }
            Step::Forward(fwd) => {
                for (name, _) in HeaderList::new(&client).iter() {
                    if reserved_request(name) {
                        assert!(fwd.strip.iter().any(|n| n == name), "{name:?} reached the origin");
                    }
                }
                forwarded = true;
                if fwd.session.status == "valid" {
                    assert!(
                        reads_valid,
                        "valid forwarded for a cookie that does not read"
                    );
                    assert!(!revoked, "valid forwarded after its object said revoked");
                    assert!(fwd.session.session.is_some() && fwd.session.handle.is_some());
                } else {
                    assert!(fwd.session.session.is_none() && fwd.session.handle.is_none());
                }
                if next_bits(4) == 0 {
                    not_the_client = true;
                    ex.unreachable("injected")
                } else {
                    let status = [200, 204, 302, 404, 500, 503][next_bits(3) as usize % 6];
                    let control = set.is_some() || action.is_some() || max_age.is_some();
                    if status >= 500 {
                        not_the_client = true; // the origin's own error, passed through
                    }
                    let mut lines = header_lines(origin_extra);
                    for (name, value) in [
                        ("x-session-set", set),
                        ("x-session-action", action),
                        ("x-session-max-age", max_age),
                    ] {
                        if let Some(v) = value.filter(|v| !v.contains('\n')) {
                            lines.push_str(&format!("{name}:{v}\n"));
                        }
                    }
                    if control || next_bits(1) == 1 {
                        lines.push_str("x-session-debug:1\n");
                    }
                    origin = lines;
                    let answer = Answer {
                        status,
                        headers: HeaderList::new(&origin),
                    };
                    // Data over the cookie limit with no KV is the origin's doing.
                    if set.is_some_and(|s| s.len() > 2000) {
                        not_the_client = true;
                    }
                    ex.answered(&answer)
                }
            }
            other => other,
        };
        if next_bits(5) == 0 && !step.is_final() {
            // The edge misbehaves: any call that does not fit is an opaque 500.
            let wrong = match step {
                Step::KvGet { .. } => ex.written(Ok(())),
                _ => ex.kv_read(Ok(None)),
            };
            match wrong {
                Step::Reply(r) => {
                    assert_eq!(
                        (r.status, r.body.as_str()),
                        (500, "keycard: internal error")
                    )
                }
                other => panic!("an out-of-order call went on: {other:?}"),
            }
            return;
        }
    }
    let origin_headers = HeaderList::new(&origin);
    let aliases = || {
        origin_headers
            .iter()
            .map(|(n, _)| n)
            .filter(|n| session_alias(n))
    };
    match &step {
        Step::Pass => assert_eq!(aliases().count(), 0, "a control header reached the client"),
        Step::Rewrap(r) => {
            for name in aliases() {
                assert!(r.strip.iter().any(|n| n == name), "{name:?} reached the client");
            }
        }
        _ => {}
    }
    if let Step::Reply(r) = &step {
        if r.status >= 500 {
            assert!(
                not_the_client,
                "the client alone caused {}: {:?}",
                r.status,
                ex.take_logs()
            );
            assert!(r.body.starts_with("keycard: "), "5xx bodies are opaque");
        }
    }
    // Session cookie values (the ones long and cookie-like enough not to turn up in a
    // log line by chance) never appear in one.
    let secrets: Vec<&str> = cookie
        .map(|c| keycard::http::cookie_header::values(c, &cfg.cookie.name).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|v| {
            v.len() >= 24
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .collect();
    for log in ex.take_logs() {
        let line = log.line();
        for v in &secrets {
            assert!(
                !line.contains(v),
                "a session cookie value was logged: {line}"
            );
        }
    }
});

/// `name` lower-cased, with every character outside `a-z0-9` read as `-`.
fn normal(name: &str) -> String {
    name.chars()
        .map(|c| match c.to_ascii_lowercase() {
            l @ ('a'..='z' | '0'..='9') => l,
            _ => '-',
        })
        .collect()
}

fn session_alias(name: &str) -> bool {
    let n = normal(name);
    n == "x-session" || n.starts_with("x-session-")
}

/// Reserved, another proxy's identity header (no fuzz configuration lets one through
/// with `KEYCARD_PASS_CLIENT_HEADERS`), or a header that overrides the path.
fn reserved_request(name: &str) -> bool {
    let n = normal(name);
    let proxy_identity = ["remote-user", "remote-groups", "remote-email", "remote-name", "x-remote-user", "x-remote-group"]
        .contains(&n.as_str())
        || ["x-auth-request-", "x-webauth-", "x-authentik-", "x-pomerium-"].iter().any(|p| n.starts_with(p))
        || ["script-name", "path-info", "x-original-url", "x-rewrite-url"].contains(&n.as_str());
    session_alias(name) || n.starts_with("x-forwarded-") || n == "forwarded" || n == "x-real-ip" || proxy_identity
}

/// The fuzzer's header lines, as the runtime would hand them over: names that are
/// HTTP tokens, lower-cased; values without control characters.
fn header_lines(text: &str) -> String {
    let mut out = String::new();
    for line in text.split('\n') {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) || value.chars().any(char::is_control) {
            continue;
        }
        out.push_str(&name.to_ascii_lowercase());
        out.push(':');
        out.push_str(value);
        out.push('\n');
    }
    out
}
