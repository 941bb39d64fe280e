//! Sign-in's variables (`KEYCARD_OIDC_*` and the allow rules), read into
//! [`SignIn`]. What the sign-in then does is [`crate::oidc`]'s.

use super::vars::Vars;
use super::{err, names, ConfigError};
use crate::oidc::discovery::acceptable_url;
use crate::oidc::{ClientSecret, Provider, SignIn};

/// The variables of one provider, after `KEYCARD_OIDC_` (or `KEYCARD_OIDC_<NAME>_`).
const PER_PROVIDER: [&str; 5] = [
    "ISSUER",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "SCOPES",
    "USER_CLAIM",
];

/// The `prompt` values of OpenID Connect Core §3.1.2.1.
const PROMPTS: [&str; 4] = ["none", "login", "consent", "select_account"];

fn list(text: Option<String>) -> Vec<String> {
    text.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A claim's name: printable ASCII, no space or comma.
fn claim_name(c: &str) -> bool {
    !c.is_empty() && c.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    /// Sign-in's settings, `None` when no provider is configured (then no allow rule
    /// may be set either). `user_field` is `KEYCARD_USER_FIELD`.
    pub(super) fn sign_in(&self, user_field: &str) -> Result<Option<SignIn>, ConfigError> {
        let providers = match (self.get("KEYCARD_OIDC_ISSUER"), self.get("KEYCARD_OIDC_PROVIDERS")) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "KEYCARD_OIDC_PROVIDERS",
                    "is set beside KEYCARD_OIDC_ISSUER; set one: KEYCARD_OIDC_ISSUER for one provider, KEYCARD_OIDC_PROVIDERS with KEYCARD_OIDC_<NAME>_ISSUER for several",
                ))
            }
            (Some(_), None) => vec![self.provider(None)?],
            (None, Some(names)) => self.providers(&names)?,
            (None, None) => return self.no_sign_in(),
        };
        let claims = list(
            self.get("KEYCARD_OIDC_CLAIMS")
                .or(Some("email,name,groups".into())),
        );
        if let Some(bad) = claims
            .iter()
            .find(|c| *c == user_field || *c == "idp" || !claim_name(c))
        {
            return Err(err(
                "KEYCARD_OIDC_CLAIMS",
                format!(
                    "names {bad:?}: a provider's claim never overwrites KEYCARD_USER_FIELD or idp"
                ),
            ));
        }
        let allow_email_domains: Vec<String> = list(self.get("KEYCARD_ALLOW_EMAIL_DOMAINS"))
            .into_iter()
            .map(|d| d.to_ascii_lowercase())
            .collect();
        if let Some(bad) = allow_email_domains.iter().find(|d| {
            d.trim_start_matches('.').is_empty()
                || d.contains('@')
                || !d.bytes().all(|b| b.is_ascii_graphic())
        }) {
            return Err(err(
                "KEYCARD_ALLOW_EMAIL_DOMAINS",
                format!("has {bad:?}, which is not a domain"),
            ));
        }
        Ok(Some(SignIn {
            providers,
            claims,
            groups_claim: self
                .get("KEYCARD_OIDC_GROUPS_CLAIM")
                .unwrap_or_else(|| "groups".into()),
            allow_email_domains,
            allow_groups: list(self.get("KEYCARD_ALLOW_GROUPS")),
            prompt: self.prompt()?,
            user_field: user_field.to_owned(),
        }))
    }

    /// No provider: then a setting that only sign-in reads (any other
    /// `KEYCARD_OIDC_*` or `KEYCARD_ALLOW_*`) is a mistake.
    fn no_sign_in(&self) -> Result<Option<SignIn>, ConfigError> {
        let mut only_with_sign_in = names::KNOWN.into_iter().filter(|n| {
            (n.starts_with("KEYCARD_OIDC_") || n.starts_with("KEYCARD_ALLOW_"))
                && !["KEYCARD_OIDC_ISSUER", "KEYCARD_OIDC_PROVIDERS"].contains(n)
        });
        match only_with_sign_in.find(|v| self.secret(v).is_some()) {
            Some(var) => Err(err(
                var,
                "is set, but no provider is: set KEYCARD_OIDC_ISSUER (or KEYCARD_OIDC_PROVIDERS)",
            )),
            None => Ok(None),
        }
    }

    /// `KEYCARD_OIDC_PROVIDERS` and each named provider's variables.
    fn providers(&self, names: &str) -> Result<Vec<Provider>, ConfigError> {
        if let Some(var) = PER_PROVIDER[1..]
            .iter()
            .map(|s| format!("KEYCARD_OIDC_{s}"))
            .find(|v| self.secret(v).is_some())
        {
            return Err(err(
                "KEYCARD_OIDC_PROVIDERS",
                format!("is set, and so is {var}, which is for one provider; name it KEYCARD_OIDC_<NAME>_{}", &var[13..]),
            ));
        }
        let mut providers: Vec<Provider> = Vec::new();
        for name in list(Some(names.to_owned())) {
            let name = name.to_ascii_lowercase();
            if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(err(
                    "KEYCARD_OIDC_PROVIDERS",
                    format!("names {name:?}; a name is letters, digits and _"),
                ));
            }
            if providers.iter().any(|p| p.name.as_deref() == Some(&name)) {
                return Err(err(
                    "KEYCARD_OIDC_PROVIDERS",
                    format!("names {name:?} twice"),
                ));
            }
            providers.push(self.provider(Some(&name))?);
        }
        match providers.is_empty() {
            true => Err(err("KEYCARD_OIDC_PROVIDERS", "names no provider")),
            false => Ok(providers),
        }
    }

    /// One provider's variables: `KEYCARD_OIDC_*`, or `KEYCARD_OIDC_<NAME>_*`.
    fn provider(&self, name: Option<&str>) -> Result<Provider, ConfigError> {
        let var = |s: &str| match name {
            Some(n) => format!("KEYCARD_OIDC_{}_{s}", n.to_ascii_uppercase()),
            None => format!("KEYCARD_OIDC_{s}"),
        };
        // A provider's own variable is named in the problem, after the variable that
        // brought the provider in.
        let at = if name.is_some() {
            "KEYCARD_OIDC_PROVIDERS"
        } else {
            "KEYCARD_OIDC_ISSUER"
        };
        let fault = |s: &str, problem: &str| {
            let who = name.map_or(String::new(), |n| format!("names {n:?}, and "));
            err(at, format!("{who}{} {problem}", var(s)))
        };
        let issuer = self
            .get(&var("ISSUER"))
            .ok_or_else(|| fault("ISSUER", "is missing"))?;
        let no_extras = !issuer.contains(['?', '#']);
        if !acceptable_url(&issuer) || !no_extras {
            return Err(fault(
                "ISSUER",
                "must be an https URL without a query (http only on 127.0.0.1, [::1] or localhost)",
            ));
        }
        let client_id = self
            .get(&var("CLIENT_ID"))
            .ok_or_else(|| fault("CLIENT_ID", "is missing"))?;
        let client_secret = self.secret(&var("CLIENT_SECRET")).ok_or_else(|| {
            fault(
                "CLIENT_SECRET",
                "is missing; set it with `wrangler secret put`",
            )
        })?;
        let scopes = self
            .get(&var("SCOPES"))
            .unwrap_or_else(|| "openid email profile".into());
        if !scopes.split(' ').any(|s| s == "openid")
            || !scopes.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        {
            return Err(fault(
                "SCOPES",
                "must be space-separated scopes that include openid",
            ));
        }
        let user_claim = self
            .get(&var("USER_CLAIM"))
            .unwrap_or_else(|| "email".into());
        if !claim_name(&user_claim) {
            return Err(fault("USER_CLAIM", "must be a claim's name"));
        }
        Ok(Provider {
            name: name.map(str::to_owned),
            issuer,
            client_id,
            client_secret: ClientSecret(client_secret),
            scopes,
            user_claim,
            cache: Default::default(),
        })
    }

    /// `KEYCARD_OIDC_PROMPT`: space-separated values of OpenID Connect's `prompt`.
    fn prompt(&self) -> Result<Option<String>, ConfigError> {
        let Some(p) = self.get("KEYCARD_OIDC_PROMPT") else {
            return Ok(None);
        };
        match p.split(' ').all(|v| PROMPTS.contains(&v)) {
            true => Ok(Some(p)),
            false => Err(err(
                "KEYCARD_OIDC_PROMPT",
                "must be none, login, consent or select_account (or several, space-separated)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError, SameSite};
    use crate::testing::SECRET;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_pairs(&[&[("SESSION_SECRET", SECRET)], pairs].concat())
    }

    const ONE: [(&str, &str); 3] = [
        ("KEYCARD_OIDC_ISSUER", "https://id.example"),
        ("KEYCARD_OIDC_CLIENT_ID", "app"),
        ("KEYCARD_OIDC_CLIENT_SECRET", "s"),
    ];

    fn with_one(more: &[(&str, &str)]) -> Result<Config, ConfigError> {
        cfg(&[&ONE[..], more].concat())
    }

    #[test]
    fn one_provider_has_defaults_and_is_the_login_page() {
        let c = with_one(&[]).unwrap();
        let s = c.sign_in.as_ref().unwrap();
        let p = &s.providers[0];
        assert_eq!(
            (p.scopes.as_str(), p.user_claim.as_str()),
            ("openid email profile", "email")
        );
        assert_eq!(s.claims, ["email", "name", "groups"]);
        assert_eq!(s.groups_claim, "groups");
        assert!(!s.several());
        assert_eq!(p.idp(), "https://id.example");
        assert_eq!(c.guards.login_url.as_deref(), Some("/.keycard/login"));
        let own = with_one(&[("KEYCARD_LOGIN_URL", "/signin")]).unwrap();
        assert_eq!(
            own.guards.login_url.as_deref(),
            Some("/signin"),
            "an explicit one wins"
        );
        assert!(cfg(&[]).unwrap().sign_in.is_none());
        assert!(
            !format!("{c:?}").contains("\"s\""),
            "the secret is not in a debug dump"
        );
    }

    #[test]
    fn several_providers_each_with_their_own_variables() {
        let c = cfg(&[
            ("KEYCARD_OIDC_PROVIDERS", "corp, Google"),
            ("KEYCARD_OIDC_CORP_ISSUER", "https://corp.example/"),
            ("KEYCARD_OIDC_CORP_CLIENT_ID", "a"),
            ("KEYCARD_OIDC_CORP_CLIENT_SECRET", "b"),
            ("KEYCARD_OIDC_CORP_SCOPES", "openid email groups"),
            ("KEYCARD_OIDC_GOOGLE_ISSUER", "https://accounts.google.com"),
            ("KEYCARD_OIDC_GOOGLE_CLIENT_ID", "c"),
            ("KEYCARD_OIDC_GOOGLE_CLIENT_SECRET", "d"),
        ])
        .unwrap();
        let s = c.sign_in.unwrap();
        assert!(s.several());
        assert_eq!(s.providers[1].name.as_deref(), Some("google"));
        assert_eq!(s.providers[0].scopes, "openid email groups");
        assert_eq!(s.provider(Some("google")), Some(1));
        assert_eq!(s.provider(None), None);
    }

    /// Each mistake names the variable at fault, and never a secret.
    #[test]
    fn each_mistake_is_named() {
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case] = &[
            (
                &[("KEYCARD_OIDC_ISSUER", "http://id.example")],
                "KEYCARD_OIDC_ISSUER",
                "KEYCARD_OIDC_ISSUER must be an https URL",
            ),
            (
                &[("KEYCARD_OIDC_ISSUER", "https://id.example?x=1")],
                "KEYCARD_OIDC_ISSUER",
                "without a query",
            ),
            (
                &[("KEYCARD_OIDC_CLIENT_SECRET", " ")],
                "KEYCARD_OIDC_ISSUER",
                "KEYCARD_OIDC_CLIENT_SECRET is missing",
            ),
            (
                &[("KEYCARD_OIDC_SCOPES", "email profile")],
                "KEYCARD_OIDC_ISSUER",
                "KEYCARD_OIDC_SCOPES must be",
            ),
            (
                &[("KEYCARD_OIDC_CLAIMS", "email,user")],
                "KEYCARD_OIDC_CLAIMS",
                "\"user\"",
            ),
            (
                &[("KEYCARD_OIDC_CLAIMS", "idp")],
                "KEYCARD_OIDC_CLAIMS",
                "\"idp\"",
            ),
            (
                &[("KEYCARD_OIDC_PROMPT", "always")],
                "KEYCARD_OIDC_PROMPT",
                "select_account",
            ),
            (
                &[("KEYCARD_ALLOW_EMAIL_DOMAINS", "@corp.example")],
                "KEYCARD_ALLOW_EMAIL_DOMAINS",
                "not a domain",
            ),
            (
                &[("SESSION_COOKIE_SAME_SITE", "Strict")],
                "SESSION_COOKIE_SAME_SITE",
                "Lax",
            ),
            (
                &[("KEYCARD_OIDC_PROVIDERS", "corp")],
                "KEYCARD_OIDC_PROVIDERS",
                "beside KEYCARD_OIDC_ISSUER",
            ),
        ];
        for (more, var, says) in cases {
            let e = with_one(more).unwrap_err();
            assert_eq!(e.var, *var, "{more:?}: {e}");
            assert!(e.to_string().contains(says), "{more:?}: {e}");
        }
        let e = cfg(&[("KEYCARD_ALLOW_GROUPS", "admins")]).unwrap_err();
        assert_eq!(e.var, "KEYCARD_ALLOW_GROUPS");
        let e = cfg(&[
            ("KEYCARD_OIDC_PROVIDERS", "corp"),
            ("KEYCARD_OIDC_CORP_ISSUER", "https://c.example"),
            ("KEYCARD_OIDC_CORP_CLIENT_ID", "a"),
        ])
        .unwrap_err();
        assert_eq!(e.to_string(), "KEYCARD_OIDC_PROVIDERS names \"corp\", and KEYCARD_OIDC_CORP_CLIENT_SECRET is missing; set it with `wrangler secret put`");
        let e = cfg(&[
            ("KEYCARD_OIDC_PROVIDERS", "corp"),
            ("KEYCARD_OIDC_CLIENT_ID", "a"),
        ])
        .unwrap_err();
        assert!(
            e.to_string().contains("KEYCARD_OIDC_<NAME>_CLIENT_ID"),
            "{e}"
        );
        let e = cfg(&[("KEYCARD_OIDC_PROVIDERS", "a-b")]).unwrap_err();
        assert_eq!(e.var, "KEYCARD_OIDC_PROVIDERS");
        let e = cfg(&[("KEYCARD_OIDC_PROVIDERS", " , ")]).unwrap_err();
        assert_eq!(e.var, "KEYCARD_OIDC_PROVIDERS");
    }

    #[test]
    fn a_loopback_issuer_may_be_http() {
        for issuer in [
            "http://127.0.0.1:9000",
            "http://localhost:9000/",
            "http://[::1]:9000",
        ] {
            assert!(
                cfg(&[("KEYCARD_OIDC_ISSUER", issuer), ONE[1], ONE[2]]).is_ok(),
                "{issuer}"
            );
        }
        let lax = with_one(&[("SESSION_COOKIE_SAME_SITE", "None")]).unwrap();
        assert_eq!(lax.cookie.same_site, SameSite::None);
    }
}
