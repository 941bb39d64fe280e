//! The `Cookie` header: `session::read`, `cookie_header::values` and the forwarded
//! rewrite `cookie_header::strip`, then the rest of a request with no changes.
//!
//! Input: a `config` byte (picks one of `keycard_fuzz::CONFIGS`), a `when` byte
//! (`now = T0 + when * 900 s`, which crosses the refresh, idle and absolute limits of
//! the seeds), then the header text.
//!
//! Properties: nothing panics; a session read is within its limits at `now`; an
//! unusable cookie gets a clearing cookie; the splitter follows RFC 6265bis, restated
//! here independently: pieces split on `;` and trimmed of SP and HTAB only, names
//! compared byte for byte (a look-alike such as `\u{a0}name`, or a comma sub-piece, is
//! never the session cookie); the stripped header never carries a piece or
//! comma sub-piece named like the session cookie, and keeps every other piece byte for
//! byte; an untouched header is reported as such.

#![no_main]

use keycard::config::StoreMode;
use keycard::session::Changes;
use keycard::http::cookie_header::{self, Stripped};
use keycard::session::{self, FinishError, Loaded, Read, Status, MAX_SKEW};
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

    let candidates = cookie_header::values(header, name).count();
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
                p.clone().complete(None).session().is_none(),
                "a missing record gave a session"
            );
            // Whatever a record holds, loading it never panics.
            if let Some(s) = p.clone().complete(Some(header)).session() {
                let _ = s.data();
            }
            let loaded = p.complete(Some(RECORD));
            assert!(loaded.session().is_some(), "a good record loads");
            loaded
        }
    };
    let bad = matches!(loaded.status(), Status::Invalid | Status::Expired);
    let fwd = keycard::origin::headers::forward_headers(cfg, &loaded, now, "GET", "https://example.com/p?q=1");
    assert_eq!(fwd.session.is_some(), loaded.session().is_some());
    match session::finish(cfg, loaded, Changes::default(), now, &mut Counter(0), true) {
        Ok(out) => {
            if bad {
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

    // The forwarded Cookie header, against an independent restatement of the rules.
    let trim = |p: &str| p.trim_matches([' ', '\t']).to_owned();
    let pieces = |h: &str| -> Vec<String> {
        h.split(';').map(trim).filter(|p| !p.is_empty()).collect()
    };
    let name_of = |p: &str| p.split_once('=').map_or(String::new(), |(n, _)| trim(n));
    let named = |p: &str| {
        name_of(p) == name || (p.contains(',') && p.split(',').any(|s| name_of(s) == name))
    };
    let kept: Vec<String> = pieces(header).into_iter().filter(|p| !named(p)).collect();
    match cookie_header::strip(header, name) {
        Stripped::Unchanged => {
            assert!(!pieces(header).iter().any(|p| named(p)), "a session cookie left in");
        }
        Stripped::Empty => assert!(kept.is_empty(), "other cookies were dropped"),
        Stripped::Rest(out) => {
            assert!(!out.is_empty());
            assert!(
                !pieces(&out).iter().any(|p| named(p)),
                "session cookie forwarded: {out:?}"
            );
            assert_eq!(cookie_header::values(&out, name).count(), 0);
            // Every piece that held no session cookie is there, byte for byte, in order.
            let mut rest = pieces(&out).into_iter();
            for p in &kept {
                assert!(rest.any(|q| &q == p), "{p:?} was changed or dropped: {out:?}");
            }
        }
    }
    // The candidates are exactly the pieces named byte for byte like the session
    // cookie: never a look-alike (`\u{a0}name`), never a comma sub-piece.
    let independent = pieces(header).iter().filter(|p| name_of(p) == name).count();
    assert_eq!(candidates, independent);
});
