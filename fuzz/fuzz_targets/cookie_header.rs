//! The `Cookie` header: `session::read`, `session::cookie_values` and the forwarded
//! rewrite `forward::strip_cookie`, then the rest of a request with no changes.
//!
//! Input: a `config` byte (picks one of `keycard_fuzz::CONFIGS`), a `when` byte
//! (`now = T0 + when * 900 s`, which crosses the refresh, idle and absolute limits of
//! the seeds), then the header text.
//!
//! Properties: nothing panics; a session read is within its limits at `now`; an
//! unusable cookie gets a clearing cookie; the stripped header never carries a cookie
//! with the session cookie's name, and keeps every other cookie as it was.

#![no_main]

use cookie::Cookie;
use keycard::config::StoreMode;
use keycard::control::Changes;
use keycard::forward;
use keycard::session::{self, Change, FinishError, Loaded, Read, Status, MAX_SKEW};
use keycard_fuzz::{configs, Counter, T0};
use libfuzzer_sys::fuzz_target;

const RECORD: &str = r#"{"v":1,"created":1700000000,"abs_exp":1700604800,"data":{"user":"ada"}}"#;

fuzz_target!(|data: &[u8]| {
    let [pick, when, rest @ ..] = data else {
        return;
    };
    let Ok(header) = std::str::from_utf8(rest) else {
        return;
    };
    let cfgs = configs();
    let cfg = &cfgs[usize::from(*pick) % cfgs.len()];
    let now = T0 + u64::from(*when) * 900;
    let name = cfg.cookie.name.as_str();

    let candidates = session::cookie_values(header, name).count();
    let loaded = match session::read(cfg, Some(header), now) {
        Read::None => {
            assert_eq!(candidates, 0, "session cookies present but read as none");
            Loaded::None
        }
        Read::Bad(status, _) => {
            assert!(candidates > 0);
            assert!(matches!(status, Status::Invalid | Status::Expired));
            Loaded::Bad(status)
        }
        Read::Ready(s) => {
            assert!(candidates > 0);
            assert!(
                s.issued <= now + MAX_SKEW && now < s.abs_exp && now < s.issued + cfg.idle_timeout
            );
            assert!(s.abs_exp <= s.issued + cfg.absolute_timeout);
            let _ = s.data();
            Loaded::Valid(s)
        }
        Read::NeedsRecord(p) => {
            assert!(candidates > 0);
            assert!(
                p.clone().complete(None).is_none(),
                "a missing record gave a session"
            );
            // Whatever a record holds, loading it never panics.
            if let Some(s) = p.clone().complete(Some(header)) {
                let _ = s.data();
            }
            Loaded::Valid(p.complete(Some(RECORD)).expect("a good record loads"))
        }
    };
    let bad = matches!(loaded.status(), Status::Invalid | Status::Expired);
    let fwd = session::forward_headers(cfg, &loaded, now, "GET", "https://example.com/p?q=1");
    assert_eq!(fwd.session.is_some(), loaded.session().is_some());
    match session::finish(cfg, loaded, Changes::default(), now, &mut Counter(0), true) {
        Ok(out) => {
            if bad {
                assert_eq!(out.change, Change::Purged);
                assert_eq!(
                    out.set_cookie.as_deref(),
                    Some(session::clearing_cookie(cfg).as_str())
                );
            }
            assert!(out
                .set_cookie
                .is_none_or(|c| c.len() <= session::MAX_COOKIE_LEN));
        }
        Err(FinishError::TooLarge { .. }) => assert_eq!(cfg.store, StoreMode::Cookie),
    }

    // The forwarded Cookie header.
    let others = |h: &str| -> Vec<(String, String)> {
        Cookie::split_parse(h)
            .filter_map(Result::ok)
            .filter(|c| c.name() != name)
            .map(|c| (c.name().to_owned(), c.value_raw().unwrap_or("").to_owned()))
            .collect()
    };
    match forward::strip_cookie(header, name) {
        Some(out) => {
            assert!(!out.is_empty());
            assert_eq!(
                session::cookie_values(&out, name).count(),
                0,
                "session cookie forwarded: {out:?}"
            );
            for part in out.split(';') {
                let n = part.split_once('=').map_or(part, |(n, _)| n).trim();
                assert_ne!(n, name, "session cookie forwarded: {out:?}");
            }
            assert_eq!(others(&out), others(header), "another cookie was changed");
        }
        None => assert!(others(header).is_empty(), "other cookies were dropped"),
    }
});
