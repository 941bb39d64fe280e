//! The provider's metadata (OpenID Connect Discovery 1.0): where it is, what keycard
//! reads of it, and the checks it must pass before it is used.

use serde_json::{Map, Value};

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with the form-urlencoded id and secret (RFC 6749 §2.3.1).
    Basic,
    /// The id and secret in the form body.
    Post,
}

/// What keycard keeps of a provider's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metadata {
    /// `authorization_endpoint`.
    pub authorization_endpoint: String,
    /// `token_endpoint`.
    pub token_endpoint: String,
    /// `jwks_uri`.
    pub jwks_uri: String,
    /// `userinfo_endpoint`, if it has one.
    pub userinfo_endpoint: Option<String>,
    /// From `token_endpoint_auth_methods_supported`: Basic when allowed.
    pub client_auth: ClientAuth,
    /// `authorization_response_iss_parameter_supported` (RFC 9207): the callback must
    /// then carry `iss`.
    pub iss_parameter: bool,
}

/// Where the metadata of `issuer` is: one trailing `/` of the issuer removed, then
/// `/.well-known/openid-configuration`.
pub fn metadata_url(issuer: &str) -> String {
    let base = issuer.strip_suffix('/').unwrap_or(issuer);
    format!("{base}/.well-known/openid-configuration")
}

/// Whether `url` is one keycard may send a browser or a request to for a provider
/// whose issuer is `issuer`: `https:`, or `http:` on a loopback host (local
/// development and tests), and nothing that could break out of a header or a URL.
pub fn acceptable_url(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let ok_chars = url.bytes().all(|b| b.is_ascii_graphic());
    let has_host = !host.is_empty() && !host.contains('@');
    ok_chars
        && has_host
        && match scheme {
            "https" => true,
            "http" => is_loopback(host),
            _ => false,
        }
}

/// Whether an authority (`host[:port]`) is a loopback host: `127.0.0.1`, `[::1]` or
/// `localhost`.
pub fn is_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host == "127.0.0.1" || host == "::1" || host.eq_ignore_ascii_case("localhost")
}

/// Reads the metadata document of `issuer`. Its `issuer` must be the configured one
/// byte for byte, and every endpoint must be an acceptable URL.
pub fn parse(issuer: &str, doc: &Map<String, Value>) -> Result<Metadata, String> {
    let text = |name: &str| doc.get(name).and_then(Value::as_str);
    match text("issuer") {
        Some(i) if i == issuer => {}
        Some(_) => return Err("its issuer is not the configured one".into()),
        None => return Err("it has no issuer".into()),
    }
    let endpoint = |name: &str| -> Result<String, String> {
        match text(name) {
            Some(u) if acceptable_url(u) => Ok(u.to_owned()),
            Some(_) => Err(format!("its {name} is not an https URL")),
            None => Err(format!("it has no {name}")),
        }
    };
    let names = |name: &str| -> Option<Vec<&str>> {
        doc.get(name)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
    };
    // Absent means client_secret_basic (Discovery §3).
    let methods = names("token_endpoint_auth_methods_supported");
    let allows = |m: &str| methods.as_ref().is_none_or(|ms| ms.contains(&m));
    let client_auth = if allows("client_secret_basic") {
        ClientAuth::Basic
    } else if methods
        .as_ref()
        .is_some_and(|ms| ms.contains(&"client_secret_post"))
    {
        ClientAuth::Post
    } else {
        return Err(
            "its token endpoint takes neither client_secret_basic nor client_secret_post".into(),
        );
    };
    if names("code_challenge_methods_supported").is_some_and(|ms| !ms.contains(&"S256")) {
        return Err("it does not support PKCE with S256".into());
    }
    Ok(Metadata {
        authorization_endpoint: endpoint("authorization_endpoint")?,
        token_endpoint: endpoint("token_endpoint")?,
        jwks_uri: endpoint("jwks_uri")?,
        userinfo_endpoint: text("userinfo_endpoint")
            .map(|_| endpoint("userinfo_endpoint"))
            .transpose()?,
        client_auth,
        iss_parameter: doc
            .get("authorization_response_iss_parameter_supported")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn good() -> Value {
        json!({
            "issuer": "https://id.example/",
            "authorization_endpoint": "https://id.example/auth",
            "token_endpoint": "https://id.example/token",
            "jwks_uri": "https://id.example/jwks",
            "userinfo_endpoint": "https://id.example/me",
            "authorization_response_iss_parameter_supported": true,
        })
    }

    #[test]
    fn one_trailing_slash_of_the_issuer_goes() {
        assert_eq!(
            metadata_url("https://tenant.auth0.com/"),
            "https://tenant.auth0.com/.well-known/openid-configuration"
        );
        assert_eq!(
            metadata_url("https://id.example/realms/corp"),
            "https://id.example/realms/corp/.well-known/openid-configuration"
        );
    }

    #[test]
    fn good_metadata_reads() {
        let m = parse("https://id.example/", &doc(good())).unwrap();
        assert_eq!(m.token_endpoint, "https://id.example/token");
        assert_eq!(m.client_auth, ClientAuth::Basic);
        assert!(m.iss_parameter);
    }

    #[test]
    fn the_issuer_must_match_byte_for_byte() {
        assert!(parse("https://id.example", &doc(good())).is_err());
        let mut v = good();
        v["issuer"] = json!("https://login.microsoftonline.com/{tenantid}/v2.0");
        assert!(parse("https://id.example/", &doc(v)).is_err());
    }

    #[test]
    fn endpoints_must_be_https_or_loopback() {
        for bad in [
            "http://id.example/token",
            "javascript:alert(1)",
            "https://user@id.example/token",
            "https://id.example/to ken",
            "https:///token",
        ] {
            let mut v = good();
            v["token_endpoint"] = json!(bad);
            assert!(parse("https://id.example/", &doc(v)).is_err(), "{bad}");
        }
        let mut v = good();
        v["issuer"] = json!("http://127.0.0.1:9000");
        v["token_endpoint"] = json!("http://127.0.0.1:9000/token");
        assert!(parse("http://127.0.0.1:9000", &doc(v)).is_ok());
        assert!(acceptable_url("http://[::1]:8080/x"));
        assert!(acceptable_url("http://localhost/x"));
        assert!(!acceptable_url("http://127.0.0.1.example/x"));
    }

    #[test]
    fn client_auth_follows_what_the_token_endpoint_takes() {
        let mut v = good();
        v["token_endpoint_auth_methods_supported"] = json!(["client_secret_post"]);
        let m = parse("https://id.example/", &doc(v.clone())).unwrap();
        assert_eq!(m.client_auth, ClientAuth::Post);
        v["token_endpoint_auth_methods_supported"] = json!(["private_key_jwt"]);
        assert!(parse("https://id.example/", &doc(v)).is_err());
    }

    #[test]
    fn pkce_without_s256_is_refused() {
        let mut v = good();
        v["code_challenge_methods_supported"] = json!(["plain"]);
        assert!(parse("https://id.example/", &doc(v)).is_err());
    }
}
