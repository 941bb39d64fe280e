//! The guards' variables (`KEYCARD_REQUIRE`, `KEYCARD_LOGIN_URL`, the identity headers
//! and cross-origin protection), read into [`Guards`]. What the guards then do with a
//! request is [`crate::guard`]'s.

use super::{err, ConfigError};
use crate::guard::{Csrf, Guards, Identity};
use crate::http::headers;
use crate::http::path_guard::{self, Exemptions, Rules};

/// Reads the `KEYCARD_*` guard settings through `get` (trimmed values, `None` when
/// unset). `path_prefix` is `KEYCARD_PATH_PREFIX`, always public.
pub(super) fn read(
    get: impl Fn(&str) -> Option<String>,
    path_prefix: &str,
    ignore_case: bool,
    csrf_on: bool,
) -> Result<Guards, ConfigError> {
    let prefixes = |var: &'static str| {
        path_guard::parse_prefixes(&get(var).unwrap_or_default()).map_err(|p| err(var, p))
    };
    let login_url = get("KEYCARD_LOGIN_URL");
    if let Some(u) = &login_url {
        check_login_url(u).map_err(|p| err("KEYCARD_LOGIN_URL", p))?;
    }
    let mut public = prefixes("KEYCARD_PUBLIC")?;
    public.push(path_prefix.to_owned());
    if let Some(path) = login_url.as_deref().filter(|u| u.starts_with('/')) {
        public.push(path.split('?').next().unwrap_or(path).to_owned());
    }
    let require = prefixes("KEYCARD_REQUIRE")?;
    let identity = parse_identity(&get("KEYCARD_IDENTITY_HEADERS").unwrap_or_default())
        .map_err(|p| err("KEYCARD_IDENTITY_HEADERS", p))?;
    let pass_client = parse_pass_client(
        &get("KEYCARD_PASS_CLIENT_HEADERS").unwrap_or_default(),
        &identity,
    )
    .map_err(|p| err("KEYCARD_PASS_CLIENT_HEADERS", p))?;
    let csrf = match csrf_on {
        false => None,
        true => Some(Csrf {
            trusted: parse_origins(&get("KEYCARD_TRUSTED_ORIGINS").unwrap_or_default())
                .map_err(|p| err("KEYCARD_TRUSTED_ORIGINS", p))?,
            exempt: Exemptions::new(prefixes("KEYCARD_CSRF_EXEMPT")?, ignore_case),
        }),
    };
    Ok(Guards {
        user_field: get("KEYCARD_USER_FIELD").unwrap_or_else(|| "user".into()),
        paths: Rules::new(require, public, ignore_case),
        login_url,
        identity,
        pass_client,
        csrf,
    })
}

/// Names an identity header may not take: keycard's own, and those that carry the
/// request itself.
const NOT_IDENTITY: [&str; 9] = [
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "forwarded",
    "cookie",
    "host",
    "content-length",
    "transfer-encoding",
];

/// A path, or an absolute `https://` URL.
fn check_login_url(url: &str) -> Result<(), String> {
    let bad = |s: &str| s.chars().any(|c| c.is_control() || c.is_whitespace());
    if let Some(rest) = url.strip_prefix("https://") {
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        super::check_origin(&format!("https://{authority}"))?;
        if bad(path) || path.contains(['\\', '#']) {
            return Err("has a path with spaces, controls, \\ or #".into());
        }
        return Ok(());
    }
    let path = url.split('?').next().unwrap_or("");
    if !url.starts_with('/') || url.starts_with("//") || bad(url) || url.contains(['\\', '#']) {
        return Err("must be a path such as /login, or an absolute https:// URL".into());
    }
    if path == "/" {
        return Err("is /, which would make every path public".into());
    }
    // Its path becomes a public prefix: it must be a plain one.
    path_guard::parse_prefixes(path)?;
    Ok(())
}

fn parse_identity(text: &str) -> Result<Vec<Identity>, String> {
    let mut out: Vec<Identity> = Vec::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((header, field)) = pair.split_once('=') else {
            return Err(format!("has {pair:?}; expected Header=field"));
        };
        let (header, field) = (header.trim().to_ascii_lowercase(), field.trim());
        if !headers::is_token(&header) || field.is_empty() {
            return Err(format!("has {pair:?}; expected Header=field"));
        }
        let normal = headers::normal_form(&header);
        if headers::is_session_alias(&header) || NOT_IDENTITY.contains(&normal.as_str()) {
            return Err(format!(
                "names {header:?}, which keycard sets itself or the request needs"
            ));
        }
        if out.iter().any(|i| i.normal == normal) {
            return Err(format!("names {header:?} twice"));
        }
        out.push(Identity {
            header,
            normal,
            field: field.to_owned(),
        });
    }
    Ok(out)
}

fn parse_pass_client(text: &str, identity: &[Identity]) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let name = name.to_ascii_lowercase();
        if !headers::is_token(&name) {
            return Err(format!("has {name:?}, which is not a header name"));
        }
        if !headers::is_proxy_identity(&name) {
            return Err(format!(
                "names {name:?}; only the identity headers of other proxies (Remote-User, X-Remote-User, X-Auth-Request-*, X-WEBAUTH-*, ...) are dropped and can be let through"
            ));
        }
        let normal = headers::normal_form(&name);
        if identity.iter().any(|i| i.normal == normal) {
            return Err(format!(
                "names {name:?}, which KEYCARD_IDENTITY_HEADERS sets from the session"
            ));
        }
        out.push(name);
    }
    Ok(out)
}

fn parse_origins(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for o in text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        super::check_origin(o).map_err(|p| format!("has {o:?}, which {p}"))?;
        out.push(o.trim_end_matches('/').to_ascii_lowercase());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};

    fn guards(pairs: &[(&str, &str)]) -> Result<(), ConfigError> {
        let mut all = vec![("SESSION_SECRET", crate::testing::SECRET)];
        all.extend_from_slice(pairs);
        Config::from_pairs(&all).map(drop)
    }

    #[test]
    fn bad_settings_name_their_variable() {
        for (pairs, var) in [
            (&[("KEYCARD_LOGIN_URL", "login")][..], "KEYCARD_LOGIN_URL"),
            (
                &[("KEYCARD_LOGIN_URL", "//evil.example")],
                "KEYCARD_LOGIN_URL",
            ),
            (
                &[("KEYCARD_LOGIN_URL", "http://auth.example/")],
                "KEYCARD_LOGIN_URL",
            ),
            (&[("KEYCARD_LOGIN_URL", "/")], "KEYCARD_LOGIN_URL"),
            (&[("KEYCARD_LOGIN_URL", "/a/../login")], "KEYCARD_LOGIN_URL"),
            (
                &[("KEYCARD_IDENTITY_HEADERS", "X-User")],
                "KEYCARD_IDENTITY_HEADERS",
            ),
            (
                &[("KEYCARD_IDENTITY_HEADERS", "X-Session=user")],
                "KEYCARD_IDENTITY_HEADERS",
            ),
            (
                &[("KEYCARD_IDENTITY_HEADERS", "X_Forwarded_For=user")],
                "KEYCARD_IDENTITY_HEADERS",
            ),
            (
                &[("KEYCARD_IDENTITY_HEADERS", "Cookie=user")],
                "KEYCARD_IDENTITY_HEADERS",
            ),
            (
                &[("KEYCARD_IDENTITY_HEADERS", "X-A=a, x_a=b")],
                "KEYCARD_IDENTITY_HEADERS",
            ),
            (
                &[("KEYCARD_IDENTITY_HEADERS", "X A=a")],
                "KEYCARD_IDENTITY_HEADERS",
            ),
            (
                &[("KEYCARD_TRUSTED_ORIGINS", "https://a.example/path")],
                "KEYCARD_TRUSTED_ORIGINS",
            ),
            (&[("KEYCARD_REQUIRE", "admin")], "KEYCARD_REQUIRE"),
            (&[("KEYCARD_PUBLIC", "static")], "KEYCARD_PUBLIC"),
            (&[("KEYCARD_CSRF_EXEMPT", "hooks")], "KEYCARD_CSRF_EXEMPT"),
        ] {
            assert_eq!(guards(pairs).unwrap_err().var, var, "{pairs:?}");
        }
    }
}
