//! The origin's control headers, parsed into the session's [`Changes`].
//!
//! | header | meaning |
//! | --- | --- |
//! | `X-Session-Set` | a JSON object, raw or base64url; shallow merge, `null` deletes |
//! | `X-Session-Action` | comma-separated `destroy`, `clear`, `regenerate`, `destroy-others`, `destroy-all` |
//! | `X-Session-Max-Age` | the session's absolute lifetime from now, in seconds |
//! | `X-Session-Revoke` | comma-separated handles of the user's sessions to end |
//!
//! A header that cannot be parsed is ignored and reported as a [`ControlError`]; the
//! others still apply. Unknown actions in a list are reported and skipped, while the
//! known ones in the same list still apply (so `destroy, typo` still logs the user out).

use serde_json::{Map, Value};

use crate::session::Changes;
use crate::util::unb64;

/// The largest `X-Session-Set` accepted, in bytes. Larger values are ignored.
pub const MAX_SET_LEN: usize = 128 * 1024;

/// A control header the edge could not use. It is logged, never sent to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("X-Session-Set is not a JSON object, raw or base64url ({0})")]
    SetNotObject(&'static str),
    #[error("X-Session-Set is larger than {MAX_SET_LEN} bytes")]
    SetTooLarge,
    #[error("X-Session-Action has an unknown action ({0} bytes long)")]
    UnknownAction(usize),
    #[error("X-Session-Max-Age is not a whole number of seconds")]
    BadMaxAge,
    #[error("X-Session-Revoke holds something that is not a session handle")]
    BadRevoke,
}

fn parse_set(text: &str) -> Result<Map<String, Value>, ControlError> {
    let t = text.trim();
    if t.len() > MAX_SET_LEN {
        return Err(ControlError::SetTooLarge);
    }
    let owned;
    let json: &[u8] = if t.starts_with('{') {
        t.as_bytes()
    } else {
        // base64url, with or without padding.
        owned =
            unb64(t.trim_end_matches('=')).ok_or(ControlError::SetNotObject("not base64url"))?;
        &owned
    };
    match serde_json::from_slice::<Value>(json) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ControlError::SetNotObject("not an object")),
        Err(_) => Err(ControlError::SetNotObject("invalid JSON")),
    }
}

/// Parses the three control headers (each `None` when absent). Returns the changes
/// that could be parsed and the errors for those that could not.
pub fn parse(
    set: Option<&str>,
    action: Option<&str>,
    max_age: Option<&str>,
) -> (Changes, Vec<ControlError>) {
    let mut changes = Changes::default();
    let mut errors = Vec::new();
    if let Some(s) = set {
        match parse_set(s) {
            Ok(map) => changes.set = Some(map),
            Err(e) => errors.push(e),
        }
    }
    if let Some(list) = action {
        for token in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            match token.to_ascii_lowercase().as_str() {
                "destroy" => changes.destroy = true,
                "clear" => changes.clear = true,
                "regenerate" => changes.regenerate = true,
                "destroy-others" => changes.destroy_others = true,
                "destroy-all" => {
                    changes.destroy_all = true;
                    changes.destroy = true;
                }
                _ => errors.push(ControlError::UnknownAction(token.len())),
            }
        }
    }
    if let Some(m) = max_age {
        match crate::util::parse_u64(m.trim()) {
            Some(secs) => changes.max_age = Some(secs),
            None => errors.push(ControlError::BadMaxAge),
        }
    }
    (changes, errors)
}

/// Parses every control header of an answer, `get` giving a header's value by its
/// lower-case name: [`parse`]'s three and `X-Session-Revoke` ([`parse_revoke`]).
pub fn from_headers<'a>(get: impl Fn(&str) -> Option<&'a str>) -> (Changes, Vec<ControlError>) {
    let (mut changes, mut errors) = parse(
        get("x-session-set"),
        get("x-session-action"),
        get("x-session-max-age"),
    );
    match get("x-session-revoke").map(parse_revoke) {
        Some(Ok(handles)) => changes.revoke = handles,
        Some(Err(e)) => errors.push(e),
        None => {}
    }
    (changes, errors)
}

/// The most handles one `X-Session-Revoke` may name (a user's object keeps at most
/// [`crate::users::MAX_LIVE`] sessions).
pub const MAX_REVOKE: usize = 100;

/// Parses `X-Session-Revoke`: comma-separated handles. A list holding anything else,
/// or more than [`MAX_REVOKE`] handles, is ignored whole.
pub fn parse_revoke(list: &str) -> Result<Vec<String>, ControlError> {
    let handles: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect();
    match handles.len() <= MAX_REVOKE && handles.iter().all(|h| crate::crypto::keys::is_handle(h)) {
        true => Ok(handles),
        false => Err(ControlError::BadRevoke),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::util::b64;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn raw_json_set() {
        let (c, e) = parse(Some(r#" {"user":"ada","n":1} "#), None, None);
        assert!(e.is_empty());
        assert_eq!(c.set, Some(obj(json!({"user":"ada","n":1}))));
    }

    #[test]
    fn base64url_set_with_and_without_padding() {
        let raw = r#"{"a":"?>?"}"#;
        let enc = b64(raw);
        for text in [enc.clone(), format!("{enc}=="), format!("{enc}=")] {
            let (c, e) = parse(Some(&text), None, None);
            assert!(e.is_empty(), "{text}: {e:?}");
            assert_eq!(c.set, Some(obj(json!({"a":"?>?"}))));
        }
    }

    #[test]
    fn null_deletes_on_merge() {
        let mut data = obj(json!({"a":1,"b":2}));
        let (c, _) = parse(Some(r#"{"a":null,"c":3}"#), None, None);
        crate::session::merge(&mut data, c.set.unwrap());
        assert_eq!(Value::Object(data), json!({"b":2,"c":3}));
    }

    #[test]
    fn non_objects_and_junk_are_errors() {
        for bad in [
            "[1,2]",
            "42",
            "\"x\"",
            "null",
            "{",
            "not base64!",
            "W10",
            "{\"a\":1}, {\"b\":2}",
        ] {
            let (c, e) = parse(Some(bad), None, None);
            assert!(c.set.is_none(), "{bad}");
            assert_eq!(e.len(), 1, "{bad}");
        }
    }

    /// Found by fuzzing (`fuzz/regressions/control_headers/`): without serde_json's
    /// `float_roundtrip`, a number parsed from `X-Session-Set` was not the number read
    /// back from the stored session, so the data drifted between requests.
    #[test]
    fn set_number_survives_the_round_trip() {
        let (c, e) = parse(Some(r#"{"usap":1111111.11202302222222222}"#), None, None);
        assert!(e.is_empty());
        let set = c.set.unwrap();
        let stored = serde_json::to_string(&set).unwrap();
        let read: Map<String, Value> = serde_json::from_str(&stored).unwrap();
        assert_eq!(read, set, "{stored}");
    }

    #[test]
    fn deeply_nested_json_is_refused_not_a_crash() {
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(5000), "]".repeat(5000));
        let (c, e) = parse(Some(&deep), None, None);
        assert!(c.set.is_none());
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn oversized_set_is_refused() {
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_SET_LEN));
        let (_, e) = parse(Some(&big), None, None);
        assert_eq!(e, vec![ControlError::SetTooLarge]);
    }

    #[test]
    fn actions_in_any_case_with_unknown_ones_reported() {
        let (c, e) = parse(None, Some("Regenerate, clear ,bogus,,DESTROY"), None);
        assert!(c.destroy && c.clear && c.regenerate);
        assert_eq!(e, vec![ControlError::UnknownAction(5)]);
        let (c, e) = parse(None, Some("frobnicate"), None);
        assert!(c.is_empty());
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn max_age() {
        assert_eq!(parse(None, None, Some("3600")).0.max_age, Some(3600));
        assert_eq!(parse(None, None, Some(" 0 ")).0.max_age, Some(0));
        for bad in ["-1", "1h", "", "1.5", "60, 60"] {
            let (c, e) = parse(None, None, Some(bad));
            assert_eq!(c.max_age, None, "{bad}");
            assert_eq!(e, vec![ControlError::BadMaxAge], "{bad}");
        }
    }

    #[test]
    fn errors_never_echo_values() {
        let (_, e) = parse(Some("secret-data-here"), Some("secret-action"), None);
        for err in e {
            let s = err.to_string();
            assert!(!s.contains("secret"), "{s}");
        }
    }

    #[test]
    fn sign_out_everywhere_actions_and_revoke_lists() {
        let (c, e) = parse(None, Some("Destroy-Others"), None);
        assert!(e.is_empty());
        assert!(c.destroy_others && !c.destroy && !c.destroy_all);
        let (c, _) = parse(None, Some("destroy-all"), None);
        assert!(
            c.destroy_all && c.destroy,
            "destroy-all ends this session too"
        );
        let h = "AAAAAAAAAAAAAAAAAAAAAA";
        assert_eq!(
            parse_revoke(&format!(" {h} , {h}")),
            Ok(vec![h.to_owned(), h.to_owned()])
        );
        assert_eq!(
            parse_revoke(&format!("{h}, not-a-handle")),
            Err(ControlError::BadRevoke)
        );
        assert_eq!(parse_revoke(""), Ok(vec![]));
        let many = vec![h; MAX_REVOKE + 1].join(",");
        assert_eq!(parse_revoke(&many), Err(ControlError::BadRevoke));
    }
}
