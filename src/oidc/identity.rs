//! Who signed in: the user the provider vouches for, the allow rules, and the session
//! data that results.

use serde_json::{Map, Value};

use super::{Provider, SignIn};

/// Why a user the provider vouched for may not sign in: the rule (its variable's name,
/// or the claim that is missing), and their email, to name them on the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `KEYCARD_ALLOW_EMAIL_DOMAINS`, `KEYCARD_ALLOW_GROUPS`, `email_verified`, or
    /// `KEYCARD_OIDC_USER_CLAIM` when the provider did not send the user claim.
    pub rule: &'static str,
    /// The user's email, when the provider sent one.
    pub email: Option<String>,
}

/// The email, when the provider says it verified it (`email_verified` is the JSON
/// boolean `true`).
fn verified_email(claims: &Map<String, Value>) -> Option<&str> {
    let verified = claims.get("email_verified") == Some(&Value::Bool(true));
    claims
        .get("email")
        .and_then(Value::as_str)
        .filter(|_| verified)
}

/// What the ID token lacks that the userinfo endpoint may have (providers that follow
/// OpenID Connect's default put profile claims only there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lacking {
    /// Nothing: no need to ask.
    Nothing,
    /// Only claims to copy: if the endpoint fails, the user signs in without them.
    Copied,
    /// The user claim, or a claim an allow rule reads: no sign-in without it.
    Needed,
}

/// What `claims` lack of what keycard reads.
pub fn lacking(s: &SignIn, p: &Provider, claims: &Map<String, Value>) -> Lacking {
    let missing = |c: &str| !claims.contains_key(c);
    let needed = missing(&p.user_claim)
        || (p.user_claim == "email" && missing("email_verified"))
        || (!s.allow_groups.is_empty() && missing(&s.groups_claim))
        || (!s.allow_email_domains.is_empty() && (missing("email") || missing("email_verified")));
    if needed {
        Lacking::Needed
    } else if s.claims.iter().any(|c| missing(c)) {
        Lacking::Copied
    } else {
        Lacking::Nothing
    }
}

/// Adds the userinfo endpoint's claims that the ID token lacks. Its `sub` must be the
/// ID token's (Core §5.3.2): otherwise it is about someone else. `email` and
/// `email_verified` go together: userinfo's verdict counts only for the address it
/// names, so it fills in `email_verified` only when its `email` is the token's.
pub fn merge_userinfo(
    claims: &mut Map<String, Value>,
    mut userinfo: Map<String, Value>,
) -> Result<(), &'static str> {
    if userinfo.get("sub").is_none() || userinfo.get("sub") != claims.get("sub") {
        return Err("the userinfo's sub is not the ID token's");
    }
    let token_email = claims.contains_key("email") || claims.contains_key("email_verified");
    if token_email && userinfo.get("email") != claims.get("email") {
        userinfo.remove("email");
        userinfo.remove("email_verified");
    }
    for (k, v) in userinfo {
        claims.entry(k).or_insert(v);
    }
    Ok(())
}

fn user_value(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn domain_allowed(allowed: &[String], email: &str) -> bool {
    let domain = email.rsplit('@').next().unwrap_or("").to_ascii_lowercase();
    allowed.iter().any(|a| match a.strip_prefix('.') {
        Some(parent) => domain == parent || domain.ends_with(a.as_str()),
        None => domain == *a,
    })
}

fn in_groups(allowed: &[String], groups: Option<&Value>) -> bool {
    let member = |g: &str| allowed.iter().any(|a| a == g);
    match groups {
        Some(Value::Array(gs)) => gs.iter().filter_map(Value::as_str).any(member),
        Some(Value::String(g)) => member(g),
        _ => false,
    }
}

/// The session data for the user `claims` name, signed in with `p`, or why they are
/// refused: `KEYCARD_USER_FIELD` is the user claim (`<provider>:<value>` with several
/// providers, unless it is a verified email, which is a global name), the configured
/// claims are copied under their own names, and `idp` names the provider.
pub fn session_data(
    s: &SignIn,
    p: &Provider,
    claims: &Map<String, Value>,
) -> Result<Map<String, Value>, Refusal> {
    let email = verified_email(claims);
    let refuse = |rule| Refusal {
        rule,
        email: claims
            .get("email")
            .and_then(Value::as_str)
            .map(str::to_owned),
    };
    let user = if p.user_claim == "email" {
        email
            .map(str::to_owned)
            .ok_or_else(|| refuse("email_verified"))?
    } else {
        let value = claims
            .get(&p.user_claim)
            .and_then(user_value)
            .ok_or_else(|| refuse("KEYCARD_OIDC_USER_CLAIM"))?;
        match s.several() {
            true => format!("{}:{value}", p.idp()),
            false => value,
        }
    };
    if !s.allow_email_domains.is_empty()
        && !email.is_some_and(|e| domain_allowed(&s.allow_email_domains, e))
    {
        return Err(refuse("KEYCARD_ALLOW_EMAIL_DOMAINS"));
    }
    if !s.allow_groups.is_empty() && !in_groups(&s.allow_groups, claims.get(&s.groups_claim)) {
        return Err(refuse("KEYCARD_ALLOW_GROUPS"));
    }
    let mut data = Map::new();
    for c in &s.claims {
        if let Some(v) = claims.get(c) {
            data.insert(c.clone(), v.clone());
        }
    }
    data.insert(s.user_field.clone(), Value::String(user));
    data.insert("idp".into(), Value::String(p.idp().to_owned()));
    Ok(data)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sign_in(pairs: &[(&str, &str)]) -> SignIn {
        let mut all = vec![("KEYCARD_OIDC_ISSUER", "https://id.example")];
        all.extend_from_slice(pairs);
        crate::testing::sign_in(&all)
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn ada() -> Map<String, Value> {
        claims(json!({
            "sub": "123", "email": "Ada@Corp.Example", "email_verified": true,
            "name": "Ada", "groups": ["eng", "ops"], "secret_stuff": "x",
        }))
    }

    #[test]
    fn a_verified_email_names_the_user_and_the_configured_claims_are_copied() {
        let s = sign_in(&[]);
        let data = session_data(&s, &s.providers[0], &ada()).unwrap();
        assert_eq!(
            Value::Object(data),
            json!({
                "user": "Ada@Corp.Example", "email": "Ada@Corp.Example", "name": "Ada",
                "groups": ["eng", "ops"], "idp": "https://id.example",
            })
        );
    }

    #[test]
    fn an_unverified_email_is_no_user() {
        let s = sign_in(&[]);
        for verified in [json!(false), json!("true"), Value::Null] {
            let mut c = ada();
            c.insert("email_verified".into(), verified);
            let r = session_data(&s, &s.providers[0], &c).unwrap_err();
            assert_eq!(r.rule, "email_verified");
            assert_eq!(r.email.as_deref(), Some("Ada@Corp.Example"));
        }
    }

    #[test]
    fn with_several_providers_a_sub_is_prefixed_and_a_verified_email_is_not() {
        let s = crate::testing::sign_in(&[
            ("KEYCARD_OIDC_PROVIDERS", "corp,google"),
            ("KEYCARD_OIDC_CORP_ISSUER", "https://corp.example"),
            ("KEYCARD_OIDC_CORP_CLIENT_ID", "a"),
            ("KEYCARD_OIDC_CORP_CLIENT_SECRET", "b"),
            ("KEYCARD_OIDC_CORP_USER_CLAIM", "sub"),
            ("KEYCARD_OIDC_GOOGLE_ISSUER", "https://accounts.google.com"),
            ("KEYCARD_OIDC_GOOGLE_CLIENT_ID", "c"),
            ("KEYCARD_OIDC_GOOGLE_CLIENT_SECRET", "d"),
        ]);
        let corp = session_data(&s, &s.providers[0], &ada()).unwrap();
        assert_eq!(corp["user"], "corp:123");
        assert_eq!(corp["idp"], "corp");
        let google = session_data(&s, &s.providers[1], &ada()).unwrap();
        assert_eq!(google["user"], "Ada@Corp.Example");
        assert_eq!(google["idp"], "google");
    }

    #[test]
    fn email_domains_match_exactly_or_as_subdomains_of_a_dotted_entry() {
        let s = sign_in(&[(
            "KEYCARD_ALLOW_EMAIL_DOMAINS",
            "corp.example, .partner.example",
        )]);
        let p = &s.providers[0];
        let with = |email: &str| {
            let mut c = ada();
            c.insert("email".into(), json!(email));
            session_data(&s, p, &c).map(|_| ()).map_err(|r| r.rule)
        };
        assert_eq!(with("ada@corp.example"), Ok(()));
        assert_eq!(with("ada@CORP.example"), Ok(()));
        assert_eq!(with("a@x.partner.example"), Ok(()));
        assert_eq!(with("a@partner.example"), Ok(()));
        assert_eq!(
            with("a@sub.corp.example"),
            Err("KEYCARD_ALLOW_EMAIL_DOMAINS")
        );
        assert_eq!(
            with("a@evilcorp.example"),
            Err("KEYCARD_ALLOW_EMAIL_DOMAINS")
        );
        assert_eq!(
            with("a@corp.example@evil.example"),
            Err("KEYCARD_ALLOW_EMAIL_DOMAINS")
        );
        assert_eq!(
            with("a@xpartner.example"),
            Err("KEYCARD_ALLOW_EMAIL_DOMAINS")
        );
    }

    #[test]
    fn groups_must_overlap_and_both_rules_must_pass() {
        let s = sign_in(&[
            ("KEYCARD_ALLOW_GROUPS", "admins,ops"),
            ("KEYCARD_ALLOW_EMAIL_DOMAINS", "corp.example"),
        ]);
        let p = &s.providers[0];
        assert!(session_data(&s, p, &ada()).is_ok());
        let mut c = ada();
        c.insert("groups".into(), json!(["eng"]));
        assert_eq!(
            session_data(&s, p, &c).unwrap_err().rule,
            "KEYCARD_ALLOW_GROUPS"
        );
        c.insert("groups".into(), json!("ops"));
        assert!(session_data(&s, p, &c).is_ok());
        c.remove("groups");
        assert_eq!(
            session_data(&s, p, &c).unwrap_err().rule,
            "KEYCARD_ALLOW_GROUPS"
        );
        let mut c = ada();
        c.insert("email".into(), json!("ada@else.example"));
        assert_eq!(
            session_data(&s, p, &c).unwrap_err().rule,
            "KEYCARD_ALLOW_EMAIL_DOMAINS"
        );
    }

    #[test]
    fn userinfo_fills_what_is_missing_only_for_the_same_sub() {
        let s = sign_in(&[]);
        let p = &s.providers[0];
        let mut c = claims(json!({ "sub": "123" }));
        assert_eq!(lacking(&s, p, &c), Lacking::Needed);
        let info = claims(json!({ "sub": "123", "email": "a@b", "email_verified": true }));
        merge_userinfo(&mut c, info).unwrap();
        assert_eq!(
            lacking(&s, p, &c),
            Lacking::Copied,
            "name and groups are only copied"
        );
        merge_userinfo(
            &mut c,
            claims(json!({ "sub": "123", "name": "A", "groups": [] })),
        )
        .unwrap();
        assert_eq!(lacking(&s, p, &c), Lacking::Nothing);
        let mut c = claims(json!({ "sub": "123", "email": "keep@b" }));
        merge_userinfo(&mut c, claims(json!({ "sub": "123", "email": "other@b" }))).unwrap();
        assert_eq!(c["email"], "keep@b", "the ID token's claims win");
        // Userinfo's verdict on another address does not verify the token's.
        let mut c = claims(json!({ "sub": "123", "email": "ceo@corp.example" }));
        let other = json!({ "sub": "123", "email": "eve@else.example", "email_verified": true });
        merge_userinfo(&mut c, claims(other)).unwrap();
        assert_eq!(c.get("email_verified"), None);
        let mut c = claims(json!({ "sub": "123", "email": "ada@corp.example" }));
        let same = json!({ "sub": "123", "email": "ada@corp.example", "email_verified": true });
        merge_userinfo(&mut c, claims(same)).unwrap();
        assert_eq!(c["email_verified"], true);
        let mut c = claims(json!({ "sub": "123" }));
        assert!(merge_userinfo(&mut c, claims(json!({ "sub": "456", "email": "x" }))).is_err());
        assert!(merge_userinfo(&mut c, claims(json!({ "email": "x" }))).is_err());
    }
}
