//! Configuration: every setting is a Worker environment binding.
//!
//! [`Config::from_lookup`] reads them through a lookup function, so the same code serves
//! the Worker `Env` and native tests. Everything is validated up front; an error names
//! the variable and what is wrong with it, never its value when that value is secret.

use crate::crypto::keys::{KeyRing, Secret, SecretError};
use crate::guard::Guards;
use crate::http::headers;
use crate::oidc::SignIn;
use crate::users::{RevocationCheck, UsersConfig};

mod cookie;
mod guards;
pub mod names;
mod oidc;
mod origin;
mod vars;

use cookie::valid_attr_value;
pub use cookie::{CookieConfig, SameSite};
use names::Unknown;
pub(crate) use origin::check_origin;
pub use origin::{HeaderFormat, OriginBase};
use vars::{err, Vars};
pub use vars::{parse_duration, ConfigError};

/// Where session data lives (`SESSION_STORE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// In the signed cookie only.
    Cookie,
    /// In KV; the cookie holds only a signed session id.
    Kv,
    /// In the cookie while it fits, spilling to KV past the size limit.
    Auto,
}

impl StoreMode {
    /// The name used in configuration and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreMode::Cookie => "cookie",
            StoreMode::Kv => "kv",
            StoreMode::Auto => "auto",
        }
    }
}

/// What to do when KV cannot be read (`SESSION_KV_FAILURE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvFailure {
    /// Answer 503 with `Retry-After`.
    Closed,
    /// Forward with `X-Session-Status: invalid`.
    Open,
}

/// Device-bound sessions (`KEYCARD_DEVICE_BOUND=on`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceBound {
    /// The short-lived cookie's lifetime in seconds (`KEYCARD_DEVICE_BOUND_TTL`).
    pub ttl: u64,
    /// The short-lived cookie's name ([`crate::dbsc::short_cookie::name`]).
    pub cookie: String,
    /// Where a binding is kept.
    pub kept: BindingKept,
}

/// Where a session's binding to a device is kept: somewhere every copy of its cookie
/// is checked against, so that a copy taken before binding is worth nothing after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingKept {
    /// In the session's KV record (`SESSION_STORE=kv`), which every request reads.
    Record,
    /// In the user's Durable Object (`SESSION_USERS_BINDING`), with the bound key's
    /// thumbprint in the session cookie: a signed-in cookie without it is checked with
    /// the object on every request. Only signed-in sessions are bound.
    Users,
}

impl Config {
    /// Whether device-bound sessions are on with their bindings in the users' objects
    /// ([`BindingKept::Users`]).
    pub fn bindings_in_users(&self) -> bool {
        self.device_bound
            .as_ref()
            .is_some_and(|d| d.kept == BindingKept::Users)
    }
}

impl DeviceBound {
    fn new(ttl: u64, store: StoreMode, cookie: &CookieConfig) -> DeviceBound {
        DeviceBound {
            ttl,
            cookie: crate::dbsc::short_cookie::name(&cookie.name, cookie.domain.is_some()),
            kept: match store {
                StoreMode::Kv => BindingKept::Record,
                StoreMode::Cookie | StoreMode::Auto => BindingKept::Users,
            },
        }
    }
}

/// The validated configuration of one isolate.
#[derive(Debug, Clone)]
pub struct Config {
    /// `SESSION_SECRET` and `SESSION_SECRET_PREVIOUS`.
    pub keys: KeyRing,
    /// `SESSION_STORE`; default `auto`.
    pub store: StoreMode,
    /// `SESSION_KV_BINDING`; default `SESSIONS`.
    pub kv_binding: String,
    /// `SESSION_KV_PREFIX`; default `keycard:`.
    pub kv_prefix: String,
    /// `SESSION_IDLE_TIMEOUT` in seconds; default 24 h.
    pub idle_timeout: u64,
    /// `SESSION_ABSOLUTE_TIMEOUT` in seconds; default 7 d.
    pub absolute_timeout: u64,
    /// `SESSION_REFRESH_AFTER` in seconds; default a quarter of the idle timeout.
    pub refresh_after: u64,
    /// The cookie's name and attributes.
    pub cookie: CookieConfig,
    /// `SESSION_HEADER_FORMAT`, with `ORIGIN_SECRET` for `jwt`; default `base64`.
    pub header_format: HeaderFormat,
    /// `ORIGIN_URL`; `None` means route mode (the request's own URL).
    pub origin_url: Option<OriginBase>,
    /// `ORIGIN_SERVICE`: a service binding to forward to instead of the network.
    pub origin_service: Option<String>,
    /// `ORIGIN_TIMEOUT` in seconds: how long to wait for the origin's answer before
    /// giving up with a 504; default none (the platform's own limit).
    pub origin_timeout: Option<u64>,
    /// `SESSION_KV_FAILURE`; default `closed`.
    pub kv_failure: KvFailure,
    /// `KEYCARD_PATH_PREFIX`; default `/.keycard/`.
    pub path_prefix: String,
    /// `KEYCARD_INSPECT`; default false.
    pub inspect: bool,
    /// `SESSION_FORWARD_COOKIE`; default false (the session cookie is removed).
    pub forward_cookie: bool,
    /// The edge guards: `KEYCARD_USER_FIELD`, `KEYCARD_REQUIRE`, `KEYCARD_PUBLIC`,
    /// `KEYCARD_PATHS_IGNORE_CASE`, `KEYCARD_LOGIN_URL`, `KEYCARD_IDENTITY_HEADERS`,
    /// `KEYCARD_PASS_CLIENT_HEADERS`, `KEYCARD_CSRF`, `KEYCARD_TRUSTED_ORIGINS`,
    /// `KEYCARD_CSRF_EXEMPT`.
    pub guards: Guards,
    /// Sign-out everywhere: `SESSION_USERS_BINDING`, `SESSION_REVOCATION_CHECK`.
    pub users: UsersConfig,
    /// Signing users in with OpenID Connect (`KEYCARD_OIDC_*`, the allow rules);
    /// `None` when no provider is configured.
    pub sign_in: Option<SignIn>,
    /// `KEYCARD_DEVICE_BOUND=on` and `KEYCARD_DEVICE_BOUND_TTL`; `None` when off (the
    /// default).
    pub device_bound: Option<DeviceBound>,
    /// `KEYCARD_STRICT`; default false: a name keycard does not read is a warning.
    pub strict: bool,
    /// The names with keycard's prefixes in the environment that it does not read
    /// ([`Config::from_env`]): each is logged once, and `health` lists them.
    pub unknown: Vec<Unknown>,
}

/// The default idle timeout: 24 hours.
pub const DEFAULT_IDLE: u64 = 24 * 3600;
/// The default absolute timeout: 7 days.
pub const DEFAULT_ABSOLUTE: u64 = 7 * 24 * 3600;

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    /// `SESSION_SECRET` and `SESSION_SECRET_PREVIOUS`, and the secrets' trimmed texts
    /// (to tell `ORIGIN_SECRET` apart from them).
    pub(super) fn keys(&self) -> Result<(KeyRing, Vec<String>), ConfigError> {
        let secret_text = self.secret("SESSION_SECRET").ok_or_else(|| {
            err(
                "SESSION_SECRET",
                "is missing; set it (at least 32 bytes) with `wrangler secret put SESSION_SECRET` when deployed, or in .dev.vars under `wrangler dev`",
            )
        })?;
        let secret = Secret::try_from(secret_text.as_str()).map_err(|e| match e {
            SecretError::TooShort(_) => err("SESSION_SECRET", e.to_string()),
        })?;
        let mut previous = Vec::new();
        let mut texts = vec![secret_text.trim().to_owned()];
        let list = self.get("SESSION_SECRET_PREVIOUS").unwrap_or_default();
        for (i, part) in list.split(',').map(str::trim).enumerate() {
            if part.is_empty() {
                continue;
            }
            previous.push(
                Secret::try_from(part)
                    .map_err(|e| err("SESSION_SECRET_PREVIOUS", format!("entry {} {e}", i + 1)))?,
            );
            texts.push(part.to_owned());
        }
        Ok((KeyRing::new(&secret, &previous), texts))
    }

    /// `SESSION_IDLE_TIMEOUT`, `SESSION_ABSOLUTE_TIMEOUT`, `SESSION_REFRESH_AFTER`.
    pub(super) fn timeouts(&self) -> Result<(u64, u64, u64), ConfigError> {
        let idle = self.duration("SESSION_IDLE_TIMEOUT", DEFAULT_IDLE)?;
        let absolute = self.duration("SESSION_ABSOLUTE_TIMEOUT", DEFAULT_ABSOLUTE)?;
        let refresh = self.duration("SESSION_REFRESH_AFTER", (idle / 4).max(1))?;
        if refresh >= idle {
            return Err(err(
                "SESSION_REFRESH_AFTER",
                "must be shorter than SESSION_IDLE_TIMEOUT, or sessions expire before they are refreshed",
            ));
        }
        Ok((idle, absolute, refresh))
    }

    /// `KEYCARD_PATH_PREFIX`.
    pub(super) fn users(&self) -> Result<UsersConfig, ConfigError> {
        let named = self.get("SESSION_USERS_BINDING");
        Ok(UsersConfig {
            explicit: named.is_some(),
            binding: named.unwrap_or_else(|| "KEYCARD_USERS".into()),
            check: self.choice(
                "SESSION_REVOCATION_CHECK",
                RevocationCheck::Writes,
                &[
                    ("writes", RevocationCheck::Writes),
                    ("always", RevocationCheck::Always),
                ],
            )?,
        })
    }

    pub(super) fn path_prefix(&self) -> Result<String, ConfigError> {
        let prefix = self
            .get("KEYCARD_PATH_PREFIX")
            .unwrap_or_else(|| "/.keycard/".into());
        if !prefix.starts_with('/')
            || !prefix.ends_with('/')
            || prefix.len() < 3
            || !valid_attr_value(&prefix)
        {
            return Err(err(
                "KEYCARD_PATH_PREFIX",
                "must start and end with / and name a directory, such as /.keycard/",
            ));
        }
        Ok(prefix)
    }
}

/// The guards once sign-in is configured: its login page, `{prefix}login`, is the
/// guards' unless `KEYCARD_LOGIN_URL` names another. A `SameSite=Strict` session cookie
/// is refused with sign-in: the browser arrives from the provider's site, and would not
/// send it on the page that follows.
fn with_sign_in(
    mut guards: Guards,
    sign_in: Option<&SignIn>,
    cookie: &CookieConfig,
    path_prefix: &str,
) -> Result<Guards, ConfigError> {
    if sign_in.is_none() {
        return Ok(guards);
    }
    if cookie.same_site == SameSite::Strict {
        return Err(err(
            "SESSION_COOKIE_SAME_SITE",
            "is Strict, which signing in with a provider cannot use: the browser comes back from the provider's site, and a Strict cookie is not sent on the page it lands on; use Lax (the default)",
        ));
    }
    if guards.login_url.is_none() {
        guards.login_url = Some(format!("{path_prefix}login"));
    }
    Ok(guards)
}

impl Config {
    /// Reads and validates every setting through `lookup` (which returns a binding's
    /// string value, or `None` when unset). Values are trimmed (secrets are not: their
    /// bytes are key material), and an empty one counts as unset, except
    /// `SESSION_KV_PREFIX`, where empty means no prefix.
    ///
    /// Returns the first problem found, naming its variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let v = Vars { lookup };
        let (keys, secret_texts) = v.keys()?;
        let store = v.choice(
            "SESSION_STORE",
            StoreMode::Auto,
            &[
                ("cookie", StoreMode::Cookie),
                ("kv", StoreMode::Kv),
                ("auto", StoreMode::Auto),
            ],
        )?;
        // Empty is a real choice here (keys without a prefix in a namespace of their
        // own), so it is not "unset".
        let kv_prefix = (v.lookup)("SESSION_KV_PREFIX").unwrap_or_else(|| "keycard:".into());
        if kv_prefix.len() > 128 {
            return Err(err("SESSION_KV_PREFIX", "is longer than 128 bytes"));
        }
        let (idle_timeout, absolute_timeout, refresh_after) = v.timeouts()?;
        let path_prefix = v.path_prefix()?;
        let guards = guards::read(
            |name| v.get(name),
            &path_prefix,
            v.boolean("KEYCARD_PATHS_IGNORE_CASE", false)?,
            v.choice("KEYCARD_CSRF", true, &[("origin", true), ("off", false)])?,
        )?;
        let cookie = v.cookie()?;
        let header_format = v.header_format(&secret_texts)?;
        let sign_in = v.sign_in(&guards.user_field)?;
        let guards = with_sign_in(guards, sign_in.as_ref(), &cookie, &path_prefix)?;
        let device_bound = v
            .device_bound()?
            .map(|ttl| DeviceBound::new(ttl, store, &cookie));
        Ok(Config {
            keys,
            store,
            kv_binding: v
                .get("SESSION_KV_BINDING")
                .unwrap_or_else(|| "SESSIONS".into()),
            kv_prefix,
            idle_timeout,
            absolute_timeout,
            refresh_after,
            cookie,
            header_format,
            origin_url: v.origin_url()?,
            origin_service: v.get("ORIGIN_SERVICE"),
            origin_timeout: v.optional_duration("ORIGIN_TIMEOUT")?,
            kv_failure: v.choice(
                "SESSION_KV_FAILURE",
                KvFailure::Closed,
                &[("closed", KvFailure::Closed), ("open", KvFailure::Open)],
            )?,
            path_prefix,
            inspect: v.boolean("KEYCARD_INSPECT", false)?,
            forward_cookie: v.boolean("SESSION_FORWARD_COOKIE", false)?,
            guards,
            users: v.users()?,
            sign_in,
            device_bound,
            strict: v.boolean("KEYCARD_STRICT", false)?,
            unknown: Vec::new(),
        })
    }

    /// [`Config::from_lookup`], then the check of every name the environment has
    /// (`names`: its variables and secrets, not its bindings): those with keycard's
    /// prefixes that it does not read are kept in [`Config::unknown`], or, under
    /// `KEYCARD_STRICT=true`, are a misconfiguration.
    pub fn from_env<'a>(
        names: impl IntoIterator<Item = &'a str>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut cfg = Config::from_lookup(lookup)?;
        cfg.unknown = names::unknown(names);
        match (cfg.strict, cfg.unknown.first()) {
            (true, Some(u)) => Err(err(
                "KEYCARD_STRICT",
                format!("is on, and {} {}", u.name, u.problem()),
            )),
            _ => Ok(cfg),
        }
    }

    /// [`Config::from_lookup`] over `(name, value)` pairs; a later pair wins.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            pairs
                .iter()
                .rev()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        })
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    /// Device-bound sessions are kept with the session's KV record, and Chrome's
    /// signing quota needs a lifetime of at least 5 minutes: anything else fails
    /// closed, naming the variable. With `SESSION_STORE=kv` a binding is kept in the
    /// session's record, otherwise in the users' objects (whose binding the exchange
    /// checks: `exchange::tests`). The short-lived cookie is named after the session
    /// cookie.
    #[test]
    fn device_bound_needs_a_lifetime_of_five_minutes_to_an_hour() {
        let with = |extra: &[(&str, &str)]| {
            let mut pairs = vec![("SESSION_SECRET", SECRET)];
            pairs.extend_from_slice(extra);
            Config::from_pairs(&pairs)
        };
        let on = ("KEYCARD_DEVICE_BOUND", "on");
        let kv = ("SESSION_STORE", "kv");
        assert_eq!(with(&[]).unwrap().device_bound, None);
        let d = with(&[on, kv]).unwrap().device_bound.unwrap();
        assert_eq!((d.ttl, d.kept), (600, BindingKept::Record));
        assert_eq!(d.cookie, "__Host-keycard-bound");
        let d = with(&[
            on,
            ("KEYCARD_DEVICE_BOUND_TTL", "5m"),
            ("SESSION_COOKIE_NAME", "__Host-shop"),
        ])
        .unwrap()
        .device_bound
        .unwrap();
        assert_eq!((d.ttl, d.kept), (300, BindingKept::Users));
        assert_eq!(d.cookie, "__Host-shop-bound");
        for (pairs, var) in [
            (
                vec![("KEYCARD_DEVICE_BOUND", "yes"), kv],
                "KEYCARD_DEVICE_BOUND",
            ),
            (
                vec![on, kv, ("KEYCARD_DEVICE_BOUND_TTL", "4m")],
                "KEYCARD_DEVICE_BOUND_TTL",
            ),
            (
                vec![kv, ("KEYCARD_DEVICE_BOUND_TTL", "10m")],
                "KEYCARD_DEVICE_BOUND_TTL",
            ),
            (
                vec![on, kv, ("KEYCARD_DEVICE_BOUND_TTL", "2h")],
                "KEYCARD_DEVICE_BOUND_TTL",
            ),
        ] {
            assert_eq!(with(&pairs).unwrap_err().var, var, "{pairs:?}");
        }
    }

    /// Issue 23: `SESSION_IDLE_TIMOUT="30m"` was ignored in silence, and the default
    /// applied.
    #[test]
    fn regression_a_name_keycard_does_not_read_is_reported_or_refused_when_strict() {
        let pairs = [("SESSION_SECRET", SECRET), ("SESSION_IDLE_TIMOUT", "30m")];
        let lookup = |n: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        };
        let names = pairs.map(|(k, _)| k);
        let cfg = Config::from_env(names, lookup).unwrap();
        assert_eq!(cfg.unknown.len(), 1);
        assert_eq!(cfg.unknown[0].closest, Some("SESSION_IDLE_TIMEOUT"));
        let strict = [
            ("SESSION_SECRET", SECRET),
            ("SESSION_IDLE_TIMOUT", "30m"),
            ("KEYCARD_STRICT", "true"),
        ];
        let lookup = |n: &str| {
            strict
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        };
        let e = Config::from_env(strict.map(|(k, _)| k), lookup).unwrap_err();
        assert_eq!(e.var, "KEYCARD_STRICT");
        assert_eq!(
            e.problem,
            "is on, and SESSION_IDLE_TIMOUT is not a variable keycard reads; did you mean SESSION_IDLE_TIMEOUT?"
        );
        assert!(!e.problem.contains("30m"), "never the value");
    }

    /// Every name the configuration asks for is one of [`names::KNOWN`], so that it is
    /// never reported as unknown.
    #[test]
    fn every_name_read_is_known() {
        let asked = std::cell::RefCell::new(Vec::new());
        let everything = [
            ("SESSION_SECRET", SECRET),
            ("SESSION_HEADER_FORMAT", "jwt"),
            (
                "ORIGIN_SECRET",
                "origin-secret-0123456789abcdef0123456789abcdef",
            ),
            (
                "SESSION_SECRET_PREVIOUS",
                "previous-secret-0123456789abcdef0123456789ab",
            ),
            ("ORIGIN_URL", "https://app.example"),
            ("KEYCARD_LOGIN_URL", "/login"),
        ];
        Config::from_lookup(|n: &str| {
            asked.borrow_mut().push(n.to_owned());
            everything
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        })
        .unwrap();
        let asked = asked.into_inner();
        assert!(asked.len() > 30, "{asked:?}");
        for n in &asked {
            assert!(
                names::KNOWN.contains(&n.as_str()),
                "{n} is read but not in KNOWN"
            );
        }
        for k in names::KNOWN {
            assert!(
                asked.iter().any(|n| n == k),
                "{k} is in KNOWN but never read"
            );
        }
    }

    pub const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

    /// `pairs` over the defaults, with [`SECRET`].
    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_pairs(&[&[("SESSION_SECRET", SECRET)], pairs].concat())
    }

    /// Every empty value counts as unset, but for the KV prefix: there, empty means
    /// no prefix (keys in a namespace of their own), which is a real choice.
    #[test]
    fn an_empty_kv_prefix_means_no_prefix() {
        assert_eq!(cfg(&[]).unwrap().kv_prefix, "keycard:");
        assert_eq!(cfg(&[("SESSION_KV_PREFIX", "")]).unwrap().kv_prefix, "");
        assert_eq!(
            cfg(&[("SESSION_STORE", "")]).unwrap().store,
            StoreMode::Auto
        );
    }

    #[test]
    fn defaults_are_secure() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.store, StoreMode::Auto);
        assert_eq!(c.kv_binding, "SESSIONS");
        assert_eq!(c.kv_prefix, "keycard:");
        assert_eq!(c.idle_timeout, 86_400);
        assert_eq!(c.absolute_timeout, 604_800);
        assert_eq!(c.refresh_after, 21_600);
        assert_eq!(c.cookie.name, "__Host-keycard");
        assert_eq!(c.cookie.path, "/");
        assert_eq!(c.cookie.domain, None);
        assert!(c.cookie.secure && c.cookie.http_only && c.cookie.persistent);
        assert!(!c.cookie.encrypt);
        assert_eq!(c.cookie.same_site, SameSite::Lax);
        assert!(matches!(c.header_format, HeaderFormat::Base64));
        assert_eq!(c.kv_failure, KvFailure::Closed);
        assert_eq!(c.path_prefix, "/.keycard/");
        assert!(!c.inspect);
        assert!(!c.forward_cookie);
        assert!(c.origin_url.is_none());
    }

    #[test]
    fn insecure_default_name_has_no_prefix() {
        assert_eq!(
            cfg(&[("SESSION_COOKIE_SECURE", "false")])
                .unwrap()
                .cookie
                .name,
            "keycard"
        );
        assert_eq!(
            cfg(&[("SESSION_COOKIE_DOMAIN", "example.com")])
                .unwrap()
                .cookie
                .name,
            "keycard"
        );
        assert_eq!(
            cfg(&[("SESSION_COOKIE_PATH", "/app")]).unwrap().cookie.name,
            "keycard"
        );
    }

    #[test]
    fn durations_accept_seconds_and_humane_strings() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert_eq!(parse_duration("1h 30m"), Ok(5400));
        for bad in [
            "",
            "0",
            "abc",
            "-5",
            "5x",
            "1 fortnight",
            "99999999999999999999999",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refresh_defaults_to_a_quarter_of_idle() {
        let c = cfg(&[("SESSION_IDLE_TIMEOUT", "2h")]).unwrap();
        assert_eq!(c.refresh_after, 1800);
    }

    #[test]
    fn origin_url_keeps_scheme_host_port() {
        let c = cfg(&[("ORIGIN_URL", "https://legacy.internal:8443/")]).unwrap();
        assert_eq!(c.origin_url.unwrap().0, "https://legacy.internal:8443");
        let c = cfg(&[("ORIGIN_URL", "http://127.0.0.1:9000")]).unwrap();
        assert_eq!(c.origin_url.unwrap().0, "http://127.0.0.1:9000");
    }

    #[test]
    fn booleans_from_toml_literals_work() {
        let c = cfg(&[
            ("SESSION_COOKIE_SECURE", "false"),
            ("KEYCARD_INSPECT", "TRUE"),
        ])
        .unwrap();
        assert!(!c.cookie.secure);
        assert!(c.inspect);
    }

    /// One case per bad variable; the error must name it and must not echo a secret.
    #[test]
    fn each_bad_variable_is_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("SESSION_SECRET", "")], "SESSION_SECRET"),
            (&[("SESSION_SECRET", "short-secret")], "SESSION_SECRET"),
            (
                &[("SESSION_SECRET_PREVIOUS", "also-short")],
                "SESSION_SECRET_PREVIOUS",
            ),
            (&[("SESSION_STORE", "redis")], "SESSION_STORE"),
            (
                &[("SESSION_KV_PREFIX", &"p".repeat(200))],
                "SESSION_KV_PREFIX",
            ),
            (
                &[("SESSION_IDLE_TIMEOUT", "forever")],
                "SESSION_IDLE_TIMEOUT",
            ),
            (
                &[("SESSION_ABSOLUTE_TIMEOUT", "0")],
                "SESSION_ABSOLUTE_TIMEOUT",
            ),
            (&[("SESSION_REFRESH_AFTER", "2d")], "SESSION_REFRESH_AFTER"),
            (
                &[("SESSION_COOKIE_NAME", "bad name")],
                "SESSION_COOKIE_NAME",
            ),
            (
                &[
                    ("SESSION_COOKIE_NAME", "__Host-x"),
                    ("SESSION_COOKIE_DOMAIN", "example.com"),
                ],
                "SESSION_COOKIE_NAME",
            ),
            (
                &[
                    ("SESSION_COOKIE_NAME", "__Host-x"),
                    ("SESSION_COOKIE_PATH", "/app"),
                ],
                "SESSION_COOKIE_NAME",
            ),
            (
                &[
                    ("SESSION_COOKIE_NAME", "__Host-x"),
                    ("SESSION_COOKIE_SECURE", "false"),
                ],
                "SESSION_COOKIE_NAME",
            ),
            (
                &[
                    ("SESSION_COOKIE_NAME", "__Secure-x"),
                    ("SESSION_COOKIE_SECURE", "false"),
                ],
                "SESSION_COOKIE_NAME",
            ),
            (
                &[("SESSION_COOKIE_DOMAIN", "exa mple.com")],
                "SESSION_COOKIE_DOMAIN",
            ),
            (&[("SESSION_COOKIE_PATH", "app")], "SESSION_COOKIE_PATH"),
            (
                &[("SESSION_COOKIE_SECURE", "maybe")],
                "SESSION_COOKIE_SECURE",
            ),
            (
                &[("SESSION_COOKIE_HTTP_ONLY", "sometimes")],
                "SESSION_COOKIE_HTTP_ONLY",
            ),
            (
                &[("SESSION_COOKIE_SAME_SITE", "loose")],
                "SESSION_COOKIE_SAME_SITE",
            ),
            (
                &[
                    ("SESSION_COOKIE_SAME_SITE", "None"),
                    ("SESSION_COOKIE_SECURE", "false"),
                ],
                "SESSION_COOKIE_SAME_SITE",
            ),
            (
                &[("SESSION_COOKIE_PERSISTENT", "2")],
                "SESSION_COOKIE_PERSISTENT",
            ),
            (
                &[("SESSION_COOKIE_ENCRYPT", "yes please")],
                "SESSION_COOKIE_ENCRYPT",
            ),
            (&[("SESSION_HEADER_FORMAT", "xml")], "SESSION_HEADER_FORMAT"),
            (&[("SESSION_HEADER_FORMAT", "jwt")], "ORIGIN_SECRET"),
            (&[("ORIGIN_SECRET", "short")], "ORIGIN_SECRET"),
            (&[("ORIGIN_SECRET", SECRET)], "ORIGIN_SECRET"),
            // Regression: only an exact, untrimmed match with the current secret was
            // refused, so the origin could hold a key that signs session cookies.
            (&[("ORIGIN_SECRET", &format!(" {SECRET}\n"))], "ORIGIN_SECRET"),
            (
                &[
                    ("SESSION_SECRET_PREVIOUS", "other-secret-0123456789abcdef012345678, old-secret-0123456789abcdef0123456789"),
                    ("ORIGIN_SECRET", "old-secret-0123456789abcdef0123456789"),
                ],
                "ORIGIN_SECRET",
            ),
            (&[("ORIGIN_URL", "ftp://x")], "ORIGIN_URL"),
            (&[("ORIGIN_URL", "https://x/path")], "ORIGIN_URL"),
            (&[("ORIGIN_URL", "legacy.internal")], "ORIGIN_URL"),
            (&[("SESSION_KV_FAILURE", "sideways")], "SESSION_KV_FAILURE"),
            (
                &[("SESSION_REVOCATION_CHECK", "sometimes")],
                "SESSION_REVOCATION_CHECK",
            ),
            (&[("KEYCARD_PATH_PREFIX", "keycard")], "KEYCARD_PATH_PREFIX"),
            (&[("KEYCARD_INSPECT", "on-ish")], "KEYCARD_INSPECT"),
            (
                &[("SESSION_FORWARD_COOKIE", "nah")],
                "SESSION_FORWARD_COOKIE",
            ),
        ];
        for (pairs, var) in cases {
            let e = cfg(pairs).expect_err(&format!("{pairs:?} should be refused"));
            assert_eq!(e.var, *var, "{pairs:?}: {e}");
            assert!(e.to_string().starts_with(var), "{e}");
            assert!(!e.to_string().contains(SECRET), "{e}");
            assert!(!e.to_string().contains("short-secret"), "{e}");
        }
    }

    /// Found by fuzzing (`fuzz/regressions/config/`): `SESSION_COOKIE_DOMAIN=.` was
    /// accepted and sent as an empty `Domain=`, which browsers ignore; a trailing dot or
    /// an empty label makes browsers reject the cookie outright.
    #[test]
    fn cookie_domain_with_empty_labels_is_refused() {
        for bad in [
            ".",
            "..",
            "..example.com",
            "example.com.",
            "example..com",
            ".x.org.",
        ] {
            let e = cfg(&[("SESSION_COOKIE_DOMAIN", bad)]).expect_err(bad);
            assert_eq!(e.var, "SESSION_COOKIE_DOMAIN", "{bad}");
        }
        for good in ["example.com", ".example.com", "localhost"] {
            let c = cfg(&[("SESSION_COOKIE_DOMAIN", good)]).unwrap();
            assert_eq!(c.cookie.domain.as_deref(), Some(good));
        }
    }

    /// Found by fuzzing (`fuzz/regressions/config/`): an `ORIGIN_URL` whose host no URL
    /// parser accepts passed validation, and then every request failed at fetch time
    /// instead of the config error naming the variable.
    #[test]
    fn origin_url_with_an_invalid_host_is_refused() {
        for bad in [
            "https://legacy[",
            "http://[::1",
            "http://[::1]:x",
            "http://a<b",
            "http://exa%mple",
        ] {
            let e = cfg(&[("ORIGIN_URL", bad)]).expect_err(bad);
            assert_eq!(e.var, "ORIGIN_URL", "{bad}");
        }
        for good in [
            "http://[::1]:8080",
            "https://legacy.internal:8443",
            "http://under_score",
        ] {
            let c = cfg(&[("ORIGIN_URL", good)]).unwrap();
            assert_eq!(c.origin_url.unwrap().0, good);
        }
    }

    /// Found by the fuzz smoke (`fuzz/regressions/config/origin-url-numeric-last-label`):
    /// a host whose last label is a number is read as IPv4 by the runtime's URL parser,
    /// so `legacy.internal.example.34567` passed validation and failed every request.
    #[test]
    fn origin_url_with_a_numeric_last_label_must_be_ipv4() {
        for bad in [
            "https://legacy.internal.example.34567",
            "http://a.0x10",
            "http://256.1.1.1",
            "http://127.1",
            "http://01.2.3.4",
            "http://xn--a.com",
        ] {
            let e = cfg(&[("ORIGIN_URL", bad)]).expect_err(bad);
            assert_eq!(e.var, "ORIGIN_URL", "{bad}");
        }
        for good in [
            "http://127.0.0.1:9000",
            "http://10.0.0.255",
            "http://host-1.internal",
            "http://a1.b2",
        ] {
            assert_eq!(
                cfg(&[("ORIGIN_URL", good)]).unwrap().origin_url.unwrap().0,
                good
            );
        }
    }

    #[test]
    fn missing_secret_is_named() {
        let e = Config::from_lookup(|_| None).unwrap_err();
        assert_eq!(e.var, "SESSION_SECRET");
        // Deployed, the fix is a secret; locally, a line in .dev.vars.
        assert!(e.problem.contains("wrangler secret put SESSION_SECRET"));
        assert!(e.problem.contains(".dev.vars"));
    }
}
