//! The text of DBSC's headers and of the session configuration a browser reads after
//! registering or refreshing.

use serde_json::{json, Value};

/// `Secure-Session-Registration`: binding offered with ES256 or RS256, the proof to be
/// POSTed to `path`, answering `challenge`. Both are keycard's own text (a path and a
/// base64url challenge), so neither needs escaping in a structured-field string; a
/// character that would is a bug and is left out.
pub fn registration(path: &str, challenge: &str) -> String {
    format!(
        r#"(ES256 RS256);path="{}";challenge="{}""#,
        sf_safe(path),
        sf_safe(challenge)
    )
}

/// `Secure-Session-Challenge`: `challenge` for the session `id`.
pub fn challenge(challenge: &str, id: &str) -> String {
    format!(r#""{}";id="{}""#, sf_safe(challenge), sf_safe(id))
}

fn sf_safe(text: &str) -> String {
    text.chars()
        .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
        .collect()
}

/// The session a refresh names in `Sec-Secure-Session-Id`. The draft makes it a
/// structured-field string (`"id"`); Chromium 150 sends the bare identifier. Both are
/// read; anything with quotes, escapes or parameters inside is not an identifier
/// keycard gave.
pub fn session_id(header: &str) -> Option<&str> {
    let h = header.trim();
    let id = h
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(h);
    let plain = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plain.then_some(id)
}

/// What the browser keeps of a bound session: where it lives and what proves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configuration<'a> {
    /// The session's identifier, which refreshes name.
    pub id: &'a str,
    /// Where to refresh: a path on the same origin.
    pub refresh_url: &'a str,
    /// The origin the session covers: `scheme://host[:port]`.
    pub origin: &'a str,
    /// Whether it covers the whole site (`SESSION_COOKIE_DOMAIN` set).
    pub include_site: bool,
    /// Paths under the origin it does not cover (keycard's own static pages).
    pub exclude: &'a [&'a str],
    /// The short-lived cookie's name and its exact attributes.
    pub cookie_name: &'a str,
    /// Its attributes as `Set-Cookie` gives them, without `Max-Age`.
    pub cookie_attributes: &'a str,
    /// Whether the browser keeps the session: `false` ends it.
    pub keep: bool,
}

impl Configuration<'_> {
    /// The JSON the registration and refresh endpoints answer with.
    pub fn json(&self) -> String {
        let host = self
            .origin
            .split_once("://")
            .map_or("", |(_, h)| h.split(':').next().unwrap_or(h));
        let exclude: Vec<Value> = self
            .exclude
            .iter()
            .map(|p| json!({ "type": "exclude", "domain": host, "path": p }))
            .collect();
        json!({
            "session_identifier": self.id,
            "refresh_url": self.refresh_url,
            "scope": {
                "origin": self.origin,
                "include_site": self.include_site,
                "scope_specification": exclude,
            },
            "credentials": [{
                "type": "cookie",
                "name": self.cookie_name,
                "attributes": self.cookie_attributes,
            }],
            "continue": self.keep,
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_headers_read_as_structured_fields() {
        assert_eq!(
            registration("/.keycard/dbsc/register", "17.AAAA.bbb-_"),
            r#"(ES256 RS256);path="/.keycard/dbsc/register";challenge="17.AAAA.bbb-_""#
        );
        assert_eq!(challenge("c1", "h-1"), r#""c1";id="h-1""#);
        assert_eq!(
            challenge("c\"1\\", "h\n"),
            r#""c1";id="h""#,
            "nothing breaks out of a string"
        );
    }

    #[test]
    fn a_session_id_is_read_bare_or_quoted() {
        assert_eq!(
            session_id("abc-_9"),
            Some("abc-_9"),
            "as Chromium 150 sends it"
        );
        assert_eq!(
            session_id(r#" "abc" "#),
            Some("abc"),
            "as the draft writes it"
        );
        for bad in ["", "\"\"", "a b", r#""a";x=1"#, r#""a\"b""#, "a,b", "\"abc"] {
            assert_eq!(session_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_configuration_is_the_shape_chromium_reads() {
        let c = Configuration {
            id: "h1",
            refresh_url: "/.keycard/dbsc/refresh",
            origin: "https://app.example:8443",
            include_site: false,
            exclude: &["/.keycard/assets/"],
            cookie_name: "__Host-keycard-bound",
            cookie_attributes: "Path=/; Secure; HttpOnly; SameSite=Lax",
            keep: true,
        };
        let v: Value = serde_json::from_str(&c.json()).unwrap();
        assert_eq!(
            v,
            json!({
                "session_identifier": "h1",
                "refresh_url": "/.keycard/dbsc/refresh",
                "scope": {
                    "origin": "https://app.example:8443",
                    "include_site": false,
                    "scope_specification": [
                        { "type": "exclude", "domain": "app.example", "path": "/.keycard/assets/" }
                    ],
                },
                "credentials": [{
                    "type": "cookie",
                    "name": "__Host-keycard-bound",
                    "attributes": "Path=/; Secure; HttpOnly; SameSite=Lax",
                }],
                "continue": true,
            })
        );
    }
}
