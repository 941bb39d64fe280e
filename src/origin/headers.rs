//! What the origin is told about the session: `X-Session` (base64url of the data, or a
//! signed JWT), `X-Session-Status`, `X-Session-Id` and `X-Session-Expires`.

use crate::config::{Config, HeaderFormat};
use crate::session::{Loaded, Status};

/// The lifetime of the `jwt`-format `X-Session` header.
pub const JWT_LIFETIME: u64 = 60;

/// The headers the origin receives about the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionHeaders {
    /// `X-Session`, with a valid session only.
    pub session: Option<String>,
    /// `X-Session-Status`, always.
    pub status: &'static str,
    /// `X-Session-Id`, the handle, with a valid session only.
    pub handle: Option<String>,
    /// `X-Session-Expires`, with a valid session only.
    pub expires: Option<u64>,
}

/// What the origin is told. `method` and `url` feed the `jwt` format's `htm` and
/// `htu` claims (the query and fragment are cut from `url`).
pub fn forward_headers(
    cfg: &Config,
    loaded: &Loaded,
    now: u64,
    method: &str,
    url: &str,
) -> SessionHeaders {
    let Some(s) = loaded.session() else {
        return SessionHeaders {
            session: None,
            status: loaded.status().as_str(),
            handle: None,
            expires: None,
        };
    };
    let expires = if s.refresh_due(cfg, now) {
        (now + cfg.idle_timeout).min(s.abs_exp)
    } else {
        s.expires(cfg)
    };
    let handle = cfg.keys.current().handle(&s.sid);
    let session = match &cfg.header_format {
        HeaderFormat::Base64 => s.data_b64.clone(),
        HeaderFormat::Jwt(key) => crate::crypto::jwt::session_jwt(
            key,
            &handle,
            now,
            now + JWT_LIFETIME,
            &s.data_json(),
            method,
            url,
        ),
    };
    SessionHeaders {
        session: Some(session),
        status: Status::Valid.as_str(),
        handle: Some(handle),
        expires: Some(expires),
    }
}
