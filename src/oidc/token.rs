//! The code exchanged at the token endpoint (OpenID Connect Core §3.1.3), and what its
//! answer must be.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::discovery::{ClientAuth, Metadata};
use super::Provider;
use crate::http::outbound::{Inbound, Outbound};

/// The token request for `code`, with the PKCE `verifier`, authenticated as the
/// metadata allows.
pub fn request(
    p: &Provider,
    meta: &Metadata,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Outbound {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("code_verifier", verifier);
    match meta.client_auth {
        ClientAuth::Basic => {
            // RFC 6749 §2.3.1: the id and the secret are form-urlencoded before they are
            // joined and encoded, which most clients forget.
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = format!("{}:{}", enc(&p.client_id), enc(&p.client_secret.0));
            Outbound::post_form(&meta.token_endpoint, form.finish())
                .with("authorization", format!("Basic {}", STANDARD.encode(pair)))
        }
        ClientAuth::Post => {
            form.append_pair("client_id", &p.client_id)
                .append_pair("client_secret", &p.client_secret.0);
            Outbound::post_form(&meta.token_endpoint, form.finish())
        }
    }
}

/// What the token endpoint gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// The ID token (a JWS).
    pub id_token: String,
    /// The access token, for the userinfo endpoint.
    pub access_token: Option<String>,
}

/// Why the token endpoint's answer is no use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The provider refused the code (`invalid_grant`: used, expired or not this
    /// client's): the user's doing, or an attacker's.
    #[error("the provider refused the code: {0}")]
    Refused(String),
    /// The provider answered something else than its protocol: HTML, a 5xx.
    #[error("the token endpoint answered {0}")]
    Broken(String),
}

/// Reads the token endpoint's answer.
pub fn read(answer: &Inbound) -> Result<Tokens, TokenError> {
    let Some(body) = answer.json_object() else {
        return Err(TokenError::Broken(format!(
            "{} without a JSON object",
            answer.status
        )));
    };
    if answer.status != 200 {
        let error = super::error_code(body.get("error").and_then(|e| e.as_str()).unwrap_or(""));
        return match answer.status {
            400 | 401 if !error.is_empty() => Err(TokenError::Refused(error)),
            s => Err(TokenError::Broken(format!("{s}"))),
        };
    }
    let text = |name: &str| body.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    match text("id_token") {
        Some(id_token) => Ok(Tokens {
            id_token,
            access_token: text("access_token"),
        }),
        None => Err(TokenError::Broken("200 without an id_token".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(auth: ClientAuth) -> Metadata {
        Metadata {
            authorization_endpoint: "https://id.example/auth".into(),
            token_endpoint: "https://id.example/token".into(),
            jwks_uri: "https://id.example/jwks".into(),
            userinfo_endpoint: None,
            client_auth: auth,
            iss_parameter: false,
        }
    }

    fn provider() -> Provider {
        let mut p = crate::testing::oidc_provider("https://id.example");
        p.client_id = "my app".into();
        p.client_secret.0 = "s3:cr+t%".into();
        p
    }

    #[test]
    fn basic_auth_form_encodes_the_id_and_the_secret_first() {
        let r = request(
            &provider(),
            &meta(ClientAuth::Basic),
            "c0de",
            "https://a/cb",
            "ver",
        );
        assert_eq!(r.method, "POST");
        let auth = r
            .headers
            .iter()
            .find(|(n, _)| *n == "authorization")
            .unwrap();
        let decoded = STANDARD
            .decode(auth.1.strip_prefix("Basic ").unwrap())
            .unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "my+app:s3%3Acr%2Bt%25");
        let body = r.body.unwrap();
        assert_eq!(
            body,
            "grant_type=authorization_code&code=c0de&redirect_uri=https%3A%2F%2Fa%2Fcb&code_verifier=ver"
        );
    }

    #[test]
    fn post_auth_puts_them_in_the_body() {
        let r = request(
            &provider(),
            &meta(ClientAuth::Post),
            "c",
            "https://a/cb",
            "v",
        );
        assert!(r.headers.iter().all(|(n, _)| *n != "authorization"));
        assert!(r
            .body
            .unwrap()
            .ends_with("&client_id=my+app&client_secret=s3%3Acr%2Bt%25"));
    }

    fn answer(status: u16, ct: &str, body: &str) -> Inbound {
        Inbound {
            status,
            content_type: Some(ct.into()),
            cache_control: None,
            body: body.into(),
        }
    }

    #[test]
    fn token_answers_read_or_say_why_not() {
        let ok = answer(
            200,
            "application/json",
            r#"{"id_token":"a.b.c","access_token":"t"}"#,
        );
        assert_eq!(read(&ok).unwrap().id_token, "a.b.c");
        let grant = answer(
            400,
            "application/json",
            r#"{"error":"invalid_grant","error_description":"secret <x>"}"#,
        );
        assert_eq!(
            read(&grant),
            Err(TokenError::Refused("invalid_grant".into()))
        );
        assert!(matches!(
            read(&answer(200, "text/html", "<html>")),
            Err(TokenError::Broken(_))
        ));
        assert!(matches!(
            read(&answer(502, "application/json", "{}")),
            Err(TokenError::Broken(_))
        ));
        assert!(matches!(
            read(&answer(200, "application/json", "{}")),
            Err(TokenError::Broken(_))
        ));
    }
}
