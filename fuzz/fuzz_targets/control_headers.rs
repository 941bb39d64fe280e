//! The origin's control headers: `control::parse`, then `session::finish` applying them.
//!
//! Input: a `flags` byte, an `extra` byte, then `set \0 action \0 max-age`.
//!
//! - `flags & 1`, `& 2`, `& 4`: whether `X-Session-Set`, `X-Session-Action` and
//!   `X-Session-Max-Age` are present;
//! - `flags >> 3 & 3`: the config (one of `keycard_fuzz::CONFIGS`);
//! - `flags >> 5 & 3`: the session before: none, a bad cookie, data in the cookie, or
//!   data in KV;
//! - `extra & 1`: whether a KV binding exists; `extra & 2`: the session was signed
//!   under the previous key; `now = T0 + (extra >> 2) * 600 s`.
//!
//! Properties: nothing panics; each present header either parses or is reported; the
//! result is exactly destroy, or the merge of the old data with the `Set`; a session
//! that lives on reads back from the cookie (and record) keycard issued, with the same
//! id, data and absolute expiry.

#![no_main]

use keycard::config::StoreMode;
use keycard::origin::control::{self, ControlError};
use keycard::session::merge;
use keycard::session::{self, FinishError, Loaded, Location, Status};
use keycard_fuzz::{configs, read_back, record, session, Counter, T0};
use libfuzzer_sys::fuzz_target;
use serde_json::Map;

const DATA: &str = r#"{"user":"ada","n":1,"roles":["admin"]}"#;

fuzz_target!(|data: &[u8]| {
    let [flags, extra, rest @ ..] = data else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut fields = text.splitn(3, '\0');
    let mut field = |bit: u8| {
        let f = fields.next().unwrap_or("");
        (flags & bit != 0).then_some(f)
    };
    let (set, action, max_age) = (field(1), field(2), field(4));
    let cfgs = configs();
    let cfg = &cfgs[usize::from(flags >> 3 & 3) % cfgs.len()];
    let kv_available = extra & 1 != 0;
    let previous_key = extra & 2 != 0;
    let now = T0 + u64::from(extra >> 2) * 600;

    let (changes, errors) = control::parse(set, action, max_age);
    let set_failed = errors
        .iter()
        .any(|e| matches!(e, ControlError::SetNotObject(_) | ControlError::SetTooLarge));
    assert_eq!(set.is_some() && !set_failed, changes.set.is_some());
    let age_failed = errors.contains(&ControlError::BadMaxAge);
    assert_eq!(max_age.is_some() && !age_failed, changes.max_age.is_some());
    if action.is_none() {
        assert!(!changes.destroy && !changes.clear && !changes.regenerate);
    }

    let (loaded, kv_before) = match flags >> 5 & 3 {
        0 => (Loaded::None, None),
        1 => (Loaded::Bad(Status::Invalid), None),
        2 => (
            Loaded::Valid(session(cfg, T0, DATA, Location::Cookie, previous_key)),
            None,
        ),
        _ => {
            let s = session(cfg, T0, DATA, Location::Kv, previous_key);
            let kv = (s.kv_key(cfg), record(s.created, s.abs_exp, DATA));
            (Loaded::Valid(s), Some(kv))
        }
    };
    let before = loaded.session().cloned();
    let out = match session::finish(
        cfg,
        loaded,
        changes.clone(),
        now,
        &mut Counter(9),
        kv_available,
    ) {
        Ok(out) => out,
        Err(FinishError::TooLarge { .. }) => {
            assert!(
                cfg.store == StoreMode::Cookie || (cfg.store == StoreMode::Auto && !kv_available)
            );
            return;
        }
    };

    if changes.destroy || changes.max_age == Some(0) {
        assert!(out.session.is_none() && out.kv_put.is_none());
        assert_eq!(
            out.set_cookie.as_deref(),
            Some(session::clearing_cookie(cfg).as_str())
        );
        if let Some((key, _)) = &kv_before {
            assert!(
                out.kv_revoke
                    .iter()
                    .any(|r| r.record == session::RecordEnd::Delete(key.clone())),
                "destroy left the record behind"
            );
        }
        return;
    }

    let mut expect = match &before {
        Some(s) if !changes.clear => s.data(),
        _ => Map::new(),
    };
    if let Some(set) = changes.set.clone() {
        merge(&mut expect, set);
    }
    let Some(s) = &out.session else {
        assert!(
            before.is_none() && expect.is_empty(),
            "the session vanished"
        );
        assert!(out.kv_put.is_none());
        return;
    };
    assert_eq!(
        s.data(),
        expect,
        "the data is not the merge of the old data and the Set"
    );
    if let (Some(b), true) = (&before, changes.regenerate) {
        assert!(s.sid != b.sid, "regenerate kept the session id");
        if let Some((key, _)) = &kv_before {
            // The page's requests in flight with the old cookie find a marker there.
            assert!(
                out.kv_revoke.iter().any(|r| matches!(
                    &r.record,
                    session::RecordEnd::Regenerated(p) if &p.key == key
                        && keycard::session::record::regenerated(&p.value)
                )),
                "regenerate left no marker at the old record"
            );
        }
    }
    if let Some(m) = changes.max_age {
        assert_eq!(s.abs_exp, now + m.min(cfg.absolute_timeout));
    }
    let _ = keycard::origin::headers::forward_headers(
        cfg,
        &Loaded::Valid(s.clone()),
        now,
        "POST",
        "https://example.com/x",
    );

    // The next request sees exactly this session.
    let Some(set_cookie) = &out.set_cookie else {
        return;
    };
    let kv = match &out.kv_put {
        Some(p) => Some((p.key.as_str(), p.value.as_str())),
        None if s.location == Location::Kv => {
            kv_before.as_ref().map(|(k, v)| (k.as_str(), v.as_str()))
        }
        None => None,
    };
    let back = read_back(cfg, set_cookie, kv, now).expect("a live session got a clearing cookie");
    assert!(back.sid == s.sid, "the cookie names another session");
    assert_eq!(back.data(), s.data());
    assert_eq!(back.abs_exp, s.abs_exp);
    assert_eq!(back.location, s.location);
});
