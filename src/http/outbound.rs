//! A request keycard sends on its own behalf (to an identity provider), and the answer
//! it gets: the driver carries the one out and hands the other back, as it does for the
//! origin.

/// A request to send. Its answer is read whole ([`Inbound`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The absolute URL.
    pub url: String,
    /// Its headers, by lower-case name.
    pub headers: Vec<(&'static str, String)>,
    /// The body, for a `POST`.
    pub body: Option<String>,
}

/// The most of an answer's body keycard reads: a provider's metadata, keys and tokens
/// are a few kilobytes, and a larger answer is a provider gone wrong.
pub const MAX_BODY: usize = 256 * 1024;

impl Outbound {
    /// A `GET` of JSON.
    pub fn get_json(url: &str) -> Outbound {
        Outbound {
            method: "GET",
            url: url.to_owned(),
            headers: vec![("accept", "application/json".into())],
            body: None,
        }
    }

    /// A `POST` of an `application/x-www-form-urlencoded` body, for JSON.
    pub fn post_form(url: &str, body: String) -> Outbound {
        Outbound {
            method: "POST",
            url: url.to_owned(),
            headers: vec![
                ("accept", "application/json".into()),
                ("content-type", "application/x-www-form-urlencoded".into()),
            ],
            body: Some(body),
        }
    }

    /// The same request with one more header.
    pub fn with(mut self, name: &'static str, value: String) -> Outbound {
        self.headers.push((name, value));
        self
    }
}

/// The answer to an [`Outbound`] request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inbound {
    /// The status code.
    pub status: u16,
    /// Its `Content-Type`.
    pub content_type: Option<String>,
    /// Its `Cache-Control`.
    pub cache_control: Option<String>,
    /// The body, as text.
    pub body: String,
}

impl Inbound {
    /// The body as a JSON object, when the answer says it is JSON and it is an object.
    pub fn json_object(&self) -> Option<serde_json::Map<String, serde_json::Value>> {
        let json = self.content_type.as_deref().is_some_and(|t| {
            let essence = t.split(';').next().unwrap_or("").trim();
            essence.eq_ignore_ascii_case("application/json")
                || essence.to_ascii_lowercase().ends_with("+json")
        });
        if !json || self.body.len() > MAX_BODY {
            return None;
        }
        match serde_json::from_str(&self.body) {
            Ok(serde_json::Value::Object(m)) => Some(m),
            _ => None,
        }
    }

    /// How long it may be kept, by its `Cache-Control`, within `[min, max]` seconds;
    /// `default` when it says nothing. `no-store` and `no-cache` count as `min`.
    pub fn max_age(&self, default: u64, min: u64, max: u64) -> u64 {
        let Some(cc) = self.cache_control.as_deref() else {
            return default;
        };
        let mut age = None;
        for d in cc.split(',').map(str::trim) {
            let (name, value) = d.split_once('=').unwrap_or((d, ""));
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return min;
            }
            if name.eq_ignore_ascii_case("max-age") {
                age = value.trim_matches('"').parse::<u64>().ok();
            }
        }
        age.unwrap_or(default).clamp(min, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(content_type: &str, body: &str) -> Inbound {
        Inbound {
            status: 200,
            content_type: Some(content_type.into()),
            cache_control: None,
            body: body.into(),
        }
    }

    #[test]
    fn only_a_json_object_reads_as_one() {
        assert!(answer("application/json; charset=utf-8", "{}")
            .json_object()
            .is_some());
        assert!(answer("application/jwk-set+json", "{}")
            .json_object()
            .is_some());
        assert!(answer("text/html", "{}").json_object().is_none());
        assert!(answer("application/json", "<html>").json_object().is_none());
        assert!(answer("application/json", "[1]").json_object().is_none());
        let huge = format!("{{\"a\":\"{}\"}}", "x".repeat(MAX_BODY));
        assert!(answer("application/json", &huge).json_object().is_none());
    }

    #[test]
    fn max_age_is_bounded() {
        let mut a = answer("application/json", "{}");
        assert_eq!(a.max_age(3600, 300, 86_400), 3600);
        a.cache_control = Some("public, max-age=60".into());
        assert_eq!(a.max_age(3600, 300, 86_400), 300);
        a.cache_control = Some("max-age=99999999".into());
        assert_eq!(a.max_age(3600, 300, 86_400), 86_400);
        a.cache_control = Some("max-age=7200, must-revalidate".into());
        assert_eq!(a.max_age(3600, 300, 86_400), 7200);
        a.cache_control = Some("no-store".into());
        assert_eq!(a.max_age(3600, 300, 86_400), 300);
    }
}
