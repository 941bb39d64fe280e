//! The names of keycard's variables, and what is said of a name keycard does not read.
//!
//! A misspelled variable (`SESSION_IDLE_TIMOUT`) would otherwise be ignored in silence,
//! and its default applied. So every `SESSION_*`, `KEYCARD_*` or `ORIGIN_*` name in the
//! environment that is not one of [`KNOWN`] is reported, with the known name closest
//! to it.

/// Every variable keycard reads. New names go at the end: the `config` fuzz target
/// picks a variable by its index here.
pub const KNOWN: [&str; 51] = [
    "SESSION_SECRET",
    "SESSION_SECRET_PREVIOUS",
    "SESSION_STORE",
    "SESSION_KV_BINDING",
    "SESSION_KV_PREFIX",
    "SESSION_IDLE_TIMEOUT",
    "SESSION_ABSOLUTE_TIMEOUT",
    "SESSION_REFRESH_AFTER",
    "SESSION_COOKIE_NAME",
    "SESSION_COOKIE_DOMAIN",
    "SESSION_COOKIE_PATH",
    "SESSION_COOKIE_SECURE",
    "SESSION_COOKIE_HTTP_ONLY",
    "SESSION_COOKIE_SAME_SITE",
    "SESSION_COOKIE_PERSISTENT",
    "SESSION_COOKIE_ENCRYPT",
    "SESSION_HEADER_FORMAT",
    "ORIGIN_SECRET",
    "ORIGIN_URL",
    "ORIGIN_SERVICE",
    "SESSION_KV_FAILURE",
    "KEYCARD_PATH_PREFIX",
    "KEYCARD_INSPECT",
    "SESSION_FORWARD_COOKIE",
    "ORIGIN_TIMEOUT",
    "KEYCARD_USER_FIELD",
    "KEYCARD_REQUIRE",
    "KEYCARD_PUBLIC",
    "KEYCARD_PATHS_IGNORE_CASE",
    "KEYCARD_LOGIN_URL",
    "KEYCARD_IDENTITY_HEADERS",
    "KEYCARD_CSRF",
    "KEYCARD_TRUSTED_ORIGINS",
    "KEYCARD_CSRF_EXEMPT",
    "SESSION_USERS_BINDING",
    "SESSION_REVOCATION_CHECK",
    "KEYCARD_PASS_CLIENT_HEADERS",
    "KEYCARD_STRICT",
    "KEYCARD_OIDC_ISSUER",
    "KEYCARD_OIDC_PROVIDERS",
    "KEYCARD_ALLOW_EMAIL_DOMAINS",
    "KEYCARD_ALLOW_GROUPS",
    "KEYCARD_OIDC_CLIENT_ID",
    "KEYCARD_OIDC_CLIENT_SECRET",
    "KEYCARD_OIDC_SCOPES",
    "KEYCARD_OIDC_USER_CLAIM",
    "KEYCARD_OIDC_CLAIMS",
    "KEYCARD_OIDC_GROUPS_CLAIM",
    "KEYCARD_OIDC_PROMPT",
    "KEYCARD_DEVICE_BOUND",
    "KEYCARD_DEVICE_BOUND_TTL",
];

/// Families of variables whose middle part the operator chooses, as `(prefix,
/// suffixes)`: a name is one of them when it is `prefix`, then a part of capitals,
/// digits and `_`, then one of `suffixes`: sign-in's per-provider settings
/// (`KEYCARD_OIDC_<NAME>_ISSUER`).
pub const PATTERNS: [(&str, &[&str]); 1] = [(
    "KEYCARD_OIDC_",
    &[
        "_ISSUER",
        "_CLIENT_ID",
        "_CLIENT_SECRET",
        "_SCOPES",
        "_USER_CLAIM",
    ],
)];

/// Whether `name` is a variable keycard reads: one of [`KNOWN`], or of a family of
/// `patterns` (keycard's are [`PATTERNS`]).
pub fn is_known(name: &str, patterns: &[(&str, &[&str])]) -> bool {
    KNOWN.contains(&name)
        || patterns.iter().any(|(prefix, suffixes)| {
            name.strip_prefix(prefix).is_some_and(|rest| {
                suffixes.iter().any(|suffix| {
                    rest.strip_suffix(suffix).is_some_and(|middle| {
                        !middle.is_empty()
                            && middle
                                .bytes()
                                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                    })
                })
            })
        })
}

/// The prefixes of keycard's names: another name in the environment is some other
/// code's, and none of keycard's business.
const PREFIXES: [&str; 3] = ["SESSION_", "KEYCARD_", "ORIGIN_"];

/// A name with one of keycard's prefixes that keycard does not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    /// The name as the environment has it.
    pub name: String,
    /// The known name it is likely a misspelling of.
    pub closest: Option<&'static str>,
}

impl Unknown {
    /// What is wrong, for a log line or an error: never the value.
    pub fn problem(&self) -> String {
        match self.closest {
            Some(k) => format!("is not a variable keycard reads; did you mean {k}?"),
            None => "is not a variable keycard reads".into(),
        }
    }
}

/// The known name closest to `name`, if it is close enough to be a misspelling: at most
/// three edits away, a swap of two neighbours counting as one (`ORIGIN_ULR`).
fn closest(name: &str) -> Option<&'static str> {
    KNOWN
        .iter()
        .map(|k| (strsim::osa_distance(name, k), *k))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// The names among `names` that have one of keycard's prefixes and that keycard does
/// not read, in their order.
pub fn unknown<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<Unknown> {
    names
        .into_iter()
        .filter(|n| PREFIXES.iter().any(|p| n.starts_with(p)) && !is_known(n, &PATTERNS))
        .map(|n| Unknown {
            name: n.to_owned(),
            closest: closest(n),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelled_name_is_named_with_the_one_it_means() {
        let found = unknown([
            "SESSION_IDLE_TIMOUT",
            "ORIGIN_ULR",
            "SESSION_SECRET",
            "KEYCARD_WHATEVER_ELSE",
            "DATABASE_URL",
            "session_secret",
        ]);
        assert_eq!(
            found,
            [
                Unknown {
                    name: "SESSION_IDLE_TIMOUT".into(),
                    closest: Some("SESSION_IDLE_TIMEOUT")
                },
                Unknown {
                    name: "ORIGIN_ULR".into(),
                    closest: Some("ORIGIN_URL")
                },
                Unknown {
                    name: "KEYCARD_WHATEVER_ELSE".into(),
                    closest: None
                },
            ]
        );
        assert_eq!(
            found[0].problem(),
            "is not a variable keycard reads; did you mean SESSION_IDLE_TIMEOUT?"
        );
        assert!(unknown(KNOWN).is_empty());
    }

    #[test]
    fn a_name_of_a_family_is_known_with_any_middle_part() {
        let providers: [(&str, &[&str]); 1] = [("KEYCARD_FAMILY_", &["_ISSUER", "_CLIENT_ID"])];
        for name in [
            "KEYCARD_FAMILY_OKTA_ISSUER",
            "KEYCARD_FAMILY_AZURE_AD_2_CLIENT_ID",
        ] {
            assert!(is_known(name, &providers), "{name}");
        }
        for name in [
            "KEYCARD_FAMILY__ISSUER",
            "KEYCARD_FAMILY_okta_ISSUER",
            "KEYCARD_FAMILY_OKTA_ISSUR",
            "KEYCARD_FAMILY_OKTA",
            "KEYCARD_FAMILY_ISSUER",
        ] {
            assert!(!is_known(name, &providers), "{name}");
        }
        assert!(is_known("SESSION_SECRET", &[]));
        assert!(is_known("KEYCARD_OIDC_OKTA_ISSUER", &PATTERNS));
        assert!(!is_known("KEYCARD_OIDC_OKTA_ISSUR", &PATTERNS));
    }
}
