//! Signing users in with OpenID Connect: keycard is the relying party, and what it
//! checks follows OpenID Connect Core 1.0 §3.1, RFC 9700 (OAuth security BCP) and
//! RFC 9207 (the `iss` parameter).
//!
//! The rules live here as plain functions; the exchange (`exchange/sign_in.rs`) runs
//! the flow, and the driver carries out its fetches and signature checks:
//! - [`discovery`]: the provider's metadata, and what keycard keeps of it;
//! - [`flow`]: a sign-in in flight, sealed in a cookie of its own, and the redirect to
//!   the provider;
//! - [`token`]: the code exchanged at the token endpoint;
//! - [`id_token`]: the ID token's header, key and claims;
//! - [`identity`]: the user it names, the allow rules, and the session data.

use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::{Map, Value};

pub mod discovery;
pub mod flow;
pub mod id_token;
pub mod identity;
pub mod token;

/// An OAuth error code from a provider, as it may reach a log line or a page: only the
/// characters of the registered codes (RFC 6749 §4.1.2.1 and §5.2), at most 40.
pub fn error_code(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect()
}

/// Sign-in's settings: `KEYCARD_OIDC_*` and the allow rules.
#[derive(Debug, Clone)]
pub struct SignIn {
    /// The providers, in the order `KEYCARD_OIDC_PROVIDERS` lists them; one for
    /// `KEYCARD_OIDC_ISSUER`.
    pub providers: Vec<Provider>,
    /// `KEYCARD_OIDC_CLAIMS`: the claims copied into the session data.
    pub claims: Vec<String>,
    /// `KEYCARD_OIDC_GROUPS_CLAIM`; default `groups`.
    pub groups_claim: String,
    /// `KEYCARD_ALLOW_EMAIL_DOMAINS`, lower-case; a leading `.` also matches
    /// subdomains.
    pub allow_email_domains: Vec<String>,
    /// `KEYCARD_ALLOW_GROUPS`.
    pub allow_groups: Vec<String>,
    /// `KEYCARD_OIDC_PROMPT`, passed to the provider as `prompt`.
    pub prompt: Option<String>,
    /// `KEYCARD_USER_FIELD`: the session field the user claim fills.
    pub user_field: String,
}

impl SignIn {
    /// Several providers (`KEYCARD_OIDC_PROVIDERS`): a user's value other than a
    /// verified email is prefixed with the provider's name, since a `sub` is unique only
    /// within its issuer.
    pub fn several(&self) -> bool {
        self.providers.len() > 1 || self.providers.first().is_some_and(|p| p.name.is_some())
    }

    /// The provider named `name`: the only one when `name` is `None` and there is one.
    pub fn provider(&self, name: Option<&str>) -> Option<usize> {
        match name {
            None if self.providers.len() == 1 => Some(0),
            None => None,
            Some(n) => self
                .providers
                .iter()
                .position(|p| p.name.as_deref() == Some(n)),
        }
    }
}

/// One identity provider.
#[derive(Debug, Clone)]
pub struct Provider {
    /// Its name in `KEYCARD_OIDC_PROVIDERS`; `None` for `KEYCARD_OIDC_ISSUER`.
    pub name: Option<String>,
    /// Its issuer, as configured: the metadata must say the very same.
    pub issuer: String,
    /// The client keycard is at this provider.
    pub client_id: String,
    /// The client's secret.
    pub client_secret: ClientSecret,
    /// The scopes asked for; default `openid email profile`.
    pub scopes: String,
    /// The claim that names the user; default `email`.
    pub user_claim: String,
    /// What was fetched of it, for as long as the isolate lives.
    pub cache: SharedCache,
}

impl Provider {
    /// The session's `idp`, and its name in a log line: its name, or its issuer when it
    /// is the only one.
    pub fn idp(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.issuer)
    }
}

/// A client secret: never printed, not even in a debug dump.
#[derive(Clone)]
pub struct ClientSecret(pub String);

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(..)")
    }
}

/// A provider's [`Cache`], kept in the configuration, which lives as long as the
/// isolate. A `Mutex` only so that a `Config` stays `Sync` (the fuzz targets share
/// one): an isolate runs one thread, and the lock is never contended.
#[derive(Debug, Default)]
pub struct SharedCache(Mutex<Cache>);

impl SharedCache {
    /// The cache, to read or change.
    pub fn lock(&self) -> MutexGuard<'_, Cache> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Clone for SharedCache {
    fn clone(&self) -> SharedCache {
        SharedCache(Mutex::new(self.lock().clone()))
    }
}

/// A provider's metadata and keys, as this isolate last fetched them.
#[derive(Debug, Clone, Default)]
pub struct Cache {
    /// The metadata, and until when it may be used.
    pub metadata: Option<(discovery::Metadata, u64)>,
    /// The keys, and until when they may be used.
    pub keys: Option<(Vec<Map<String, Value>>, u64)>,
    /// When the keys were last fetched: an unknown `kid` refetches them at most once
    /// a minute.
    pub keys_fetched: Option<u64>,
    /// Until when the provider counts as down: its metadata failed moments ago.
    pub down_until: Option<u64>,
}

impl Cache {
    /// The metadata, while it is fresh at `now`.
    pub fn metadata(&self, now: u64) -> Option<&discovery::Metadata> {
        self.metadata
            .as_ref()
            .filter(|(_, until)| now < *until)
            .map(|(m, _)| m)
    }

    /// The keys, while they are fresh at `now`.
    pub fn keys(&self, now: u64) -> Option<&[Map<String, Value>]> {
        self.keys
            .as_ref()
            .filter(|(_, until)| now < *until)
            .map(|(k, _)| k.as_slice())
    }

    /// Whether the provider's metadata failed within [`DOWN_TTL`] of `now`.
    pub fn down(&self, now: u64) -> bool {
        self.down_until.is_some_and(|until| now < until)
    }

    /// Whether the keys may be fetched again for an unknown `kid`.
    pub fn may_refetch_keys(&self, now: u64) -> bool {
        self.keys_fetched.is_none_or(|at| now >= at + 60)
    }
}

/// How long fetched metadata and keys are kept: by their `Cache-Control`, within these
/// bounds (seconds), and `DEFAULT_TTL` when it says nothing.
pub const MIN_TTL: u64 = 5 * 60;
/// See [`MIN_TTL`].
pub const MAX_TTL: u64 = 24 * 3600;
/// See [`MIN_TTL`].
pub const DEFAULT_TTL: u64 = 3600;
/// How long a provider whose metadata failed is answered `503` at once, rather than
/// asked again.
pub const DOWN_TTL: u64 = 30;
