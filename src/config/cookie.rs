//! The session cookie's settings: its name and attributes, and the rules of the
//! `__Host-` and `__Secure-` prefixes.

use super::vars::{err, ConfigError, Vars};
use super::*;

/// The `SameSite` cookie attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

impl SameSite {
    /// Its `Set-Cookie` attribute, with the separator before it: `; SameSite=Lax`.
    pub fn attribute(self) -> &'static str {
        match self {
            SameSite::Strict => "; SameSite=Strict",
            SameSite::Lax => "; SameSite=Lax",
            SameSite::None => "; SameSite=None",
        }
    }
}

/// The session cookie's name and attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieConfig {
    /// `SESSION_COOKIE_NAME`; default `__Host-keycard` when secure, else `keycard`.
    pub name: String,
    /// `SESSION_COOKIE_DOMAIN`; default none.
    pub domain: Option<String>,
    /// `SESSION_COOKIE_PATH`; default `/`.
    pub path: String,
    /// `SESSION_COOKIE_SECURE`; default true.
    pub secure: bool,
    /// `SESSION_COOKIE_HTTP_ONLY`; default true.
    pub http_only: bool,
    /// `SESSION_COOKIE_SAME_SITE`; default `Lax`.
    pub same_site: SameSite,
    /// `SESSION_COOKIE_PERSISTENT`; default true (sends `Max-Age`).
    pub persistent: bool,
    /// `SESSION_COOKIE_ENCRYPT`; default false (signed, not sealed).
    pub encrypt: bool,
}

/// Whether `v` can be a cookie attribute's value: printable ASCII without `;`.
pub(super) fn valid_attr_value(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b';')
}

/// The cookie prefixes' rules (RFC 6265bis): `__Host-` needs Secure, no Domain and
/// Path `/`; `__Secure-` needs Secure. And a name must be a token.
fn check_cookie_name(
    name: &str,
    secure: bool,
    domain: bool,
    path: &str,
) -> Result<(), ConfigError> {
    let problem = |p: &str| Err(err("SESSION_COOKIE_NAME", p));
    if !headers::is_token(name) || name.len() > 64 {
        return problem("must be a cookie token of at most 64 characters");
    }
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("__host-") {
        if !secure {
            return problem("has the __Host- prefix, which requires SESSION_COOKIE_SECURE=true");
        }
        if domain {
            return problem("has the __Host- prefix, which forbids SESSION_COOKIE_DOMAIN");
        }
        if path != "/" {
            return problem("has the __Host- prefix, which requires SESSION_COOKIE_PATH=/");
        }
    }
    if lower.starts_with("__secure-") && !secure {
        return problem("has the __Secure- prefix, which requires SESSION_COOKIE_SECURE=true");
    }
    Ok(())
}

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    /// The `SESSION_COOKIE_*` settings.
    pub(super) fn cookie(&self) -> Result<CookieConfig, ConfigError> {
        let secure = self.boolean("SESSION_COOKIE_SECURE", true)?;
        let same_site = self.choice(
            "SESSION_COOKIE_SAME_SITE",
            SameSite::Lax,
            &[
                ("Strict", SameSite::Strict),
                ("Lax", SameSite::Lax),
                ("None", SameSite::None),
            ],
        )?;
        if same_site == SameSite::None && !secure {
            return Err(err(
                "SESSION_COOKIE_SAME_SITE",
                "is None, which browsers accept only with Secure; set SESSION_COOKIE_SECURE=true",
            ));
        }
        let domain = self.get("SESSION_COOKIE_DOMAIN");
        if let Some(d) = &domain {
            // One leading dot is legacy and dropped; what is left needs non-empty labels,
            // or the browser ignores the attribute or rejects the cookie.
            let bare = d.strip_prefix('.').unwrap_or(d);
            if !valid_attr_value(d)
                || d.contains(['/', ':', ','])
                || bare.split('.').any(str::is_empty)
            {
                return Err(err("SESSION_COOKIE_DOMAIN", "is not a valid domain"));
            }
        }
        let path = self
            .get("SESSION_COOKIE_PATH")
            .unwrap_or_else(|| "/".into());
        if !path.starts_with('/') || !valid_attr_value(&path) {
            return Err(err(
                "SESSION_COOKIE_PATH",
                "must start with / and contain no spaces, controls or ';'",
            ));
        }
        let name = match self.get("SESSION_COOKIE_NAME") {
            Some(n) => n,
            None if secure && domain.is_none() && path == "/" => "__Host-keycard".into(),
            None => "keycard".into(),
        };
        check_cookie_name(&name, secure, domain.is_some(), &path)?;
        Ok(CookieConfig {
            name,
            domain,
            path,
            secure,
            http_only: self.boolean("SESSION_COOKIE_HTTP_ONLY", true)?,
            same_site,
            persistent: self.boolean("SESSION_COOKIE_PERSISTENT", true)?,
            encrypt: self.boolean("SESSION_COOKIE_ENCRYPT", false)?,
        })
    }
}
