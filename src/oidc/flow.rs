//! A sign-in in flight: what this browser must bring back to finish it, sealed in a
//! cookie of its own, and the redirect that sends it to the provider.
//!
//! Each sign-in has its own cookie, named after its `state`, so that sign-ins started
//! in several tabs all finish (oauth2-proxy's one CSRF cookie makes them loop). The
//! cookie is `SameSite=Lax`, so the provider's top-level redirect back brings it, and
//! lives ten minutes.

use sha2::{Digest, Sha256};

use super::discovery::Metadata;
use super::Provider;
use crate::crypto::keys::{Entropy, KeyRing};
use crate::crypto::sealed_box::{open_box, seal_box};
use crate::http::cookie_header;
use crate::util::{b64, unb64};

/// How long a sign-in may take, from the redirect to the callback.
pub const FLOW_TTL: u64 = 600;

/// How many sign-ins one browser may have in flight: a new one beyond this clears the
/// oldest, so that a page cannot fill the browser's cookies by opening sign-ins.
pub const MAX_FLOWS: usize = 4;

/// How many characters of `state` name its cookie.
const TAG_LEN: usize = 16;

/// What the callback needs of the sign-in it finishes. Its `Debug` shows neither the
/// verifier, nor the nonce, nor the state.
#[derive(Clone, PartialEq, Eq)]
pub struct Flow {
    /// `state`: 32 random bytes, base64url.
    pub state: String,
    /// The PKCE verifier: 32 random bytes, base64url (43 characters, RFC 7636 §4.1).
    pub verifier: String,
    /// `nonce`: 32 random bytes, base64url.
    pub nonce: String,
    /// The provider's [`Provider::idp`].
    pub provider: String,
    /// Where to go once signed in: a path on this site.
    pub next: String,
    /// When it started (unix seconds).
    pub started: u64,
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("provider", &self.provider)
            .field("next", &self.next)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

fn random(entropy: &mut dyn Entropy) -> String {
    let mut bytes = [0u8; 32];
    entropy.fill(&mut bytes);
    b64(bytes)
}

impl Flow {
    /// A new sign-in with `provider`, to end at `next`.
    pub fn start(provider: &Provider, next: &str, now: u64, entropy: &mut dyn Entropy) -> Flow {
        Flow {
            state: random(entropy),
            verifier: random(entropy),
            nonce: random(entropy),
            provider: provider.idp().to_owned(),
            next: next.to_owned(),
            started: now,
        }
    }

    /// The PKCE challenge: base64url of the verifier's SHA-256 (`S256`).
    pub fn challenge(&self) -> String {
        b64(Sha256::digest(self.verifier.as_bytes()))
    }

    /// Whether it is still within [`FLOW_TTL`] of its start.
    pub fn fresh(&self, now: u64) -> bool {
        now >= self.started && now < self.started + FLOW_TTL
    }

    /// The URL that sends the browser to the provider's authorization endpoint.
    pub fn authorization_url(
        &self,
        provider: &Provider,
        meta: &Metadata,
        redirect_uri: &str,
        prompt: Option<&str>,
    ) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("response_type", "code")
            .append_pair("client_id", &provider.client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &provider.scopes)
            .append_pair("state", &self.state)
            .append_pair("nonce", &self.nonce)
            .append_pair("code_challenge", &self.challenge())
            .append_pair("code_challenge_method", "S256")
            .append_pair("response_mode", "query");
        if let Some(p) = prompt {
            q.append_pair("prompt", p);
        }
        let endpoint = &meta.authorization_endpoint;
        let sep = if endpoint.contains('?') { '&' } else { '?' };
        format!("{endpoint}{sep}{}", q.finish())
    }

    /// Its cookie's value: the flow sealed with the current cookie key, bound to the
    /// cookie's name.
    pub fn seal(&self, keys: &KeyRing, name: &str, entropy: &mut dyn Entropy) -> String {
        let mut nonce = [0u8; 24];
        entropy.fill(&mut nonce);
        let plain = self.to_text();
        b64(seal_box(
            keys.current().cookie_enc(),
            &nonce,
            name.as_bytes(),
            &plain,
        ))
    }

    /// The flow sealed in `value` of the cookie `name`, under any key of the ring.
    pub fn open(keys: &KeyRing, name: &str, value: &str) -> Option<Flow> {
        let sealed = unb64(value)?;
        keys.all()
            .find_map(|k| open_box(k.cookie_enc(), name.as_bytes(), &sealed).ok())
            .and_then(|plain| Flow::from_text(&String::from_utf8(plain).ok()?))
    }

    /// Its fields, one a line: none can hold a line break (`state`, the verifier and
    /// the nonce are base64url, `next` and the provider printable ASCII or a name, the
    /// start a number). Written by hand: serde's derives cost the wasm kilobytes.
    fn to_text(&self) -> Vec<u8> {
        let started = self.started.to_string();
        let fields = [
            &self.state,
            &self.verifier,
            &self.nonce,
            &started,
            &self.provider,
            &self.next,
        ];
        fields.map(String::as_str).join("\n").into_bytes()
    }

    fn from_text(text: &str) -> Option<Flow> {
        let mut f = text.split('\n').map(str::to_owned);
        let mut next = || f.next();
        let flow = Flow {
            state: next()?,
            verifier: next()?,
            nonce: next()?,
            started: crate::util::parse_u64(&next()?)?,
            provider: next()?,
            next: next()?,
        };
        next().is_none().then_some(flow)
    }
}

/// The prefix of every flow cookie's name: `__Host-keycard-flow-`, without `__Host-`
/// when cookies are not `Secure` (local development over http).
pub fn cookie_prefix(secure: bool) -> &'static str {
    match secure {
        true => "__Host-keycard-flow-",
        false => "keycard-flow-",
    }
}

/// The name of the cookie of the flow whose `state` this is; `None` for a `state`
/// keycard cannot have made.
pub fn cookie_name(secure: bool, state: &str) -> Option<String> {
    let tag = state.get(..TAG_LEN)?;
    tag.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        .then(|| format!("{}{tag}", cookie_prefix(secure)))
}

/// The flow cookies in `cookie` (a `Cookie` header) to clear before one more sign-in
/// starts: any that does not open or has expired, and the oldest beyond
/// [`MAX_FLOWS`] less one.
pub fn stale(keys: &KeyRing, secure: bool, cookie: Option<&str>, now: u64) -> Vec<String> {
    let prefix = cookie_prefix(secure);
    let mut live = Vec::new();
    let mut stale = Vec::new();
    for (name, value) in cookie.map(cookie_header::pairs).into_iter().flatten() {
        if !name.starts_with(prefix) {
            continue;
        }
        match Flow::open(keys, name, value).filter(|f| f.fresh(now)) {
            Some(f) => live.push((f.started, name.to_owned())),
            None => stale.push(name.to_owned()),
        }
    }
    live.sort();
    let excess = (live.len() + 1).saturating_sub(MAX_FLOWS);
    stale.extend(live.into_iter().take(excess).map(|(_, n)| n));
    stale.dedup();
    stale
}

/// The `Set-Cookie` of a flow cookie (`Max-Age` [`FLOW_TTL`]), or of its removal.
pub fn set_cookie(secure: bool, name: &str, value: Option<&str>) -> String {
    let (value, max_age) = match value {
        Some(v) => (v, FLOW_TTL),
        None => ("", 0),
    };
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; HttpOnly; SameSite=Lax{secure}; Path=/; Max-Age={max_age}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::tests::{secret, CountingEntropy};
    use crate::oidc::discovery::ClientAuth;

    fn provider() -> Provider {
        crate::testing::oidc_provider("https://id.example")
    }

    fn meta() -> Metadata {
        Metadata {
            authorization_endpoint: "https://id.example/auth?tenant=a".into(),
            token_endpoint: "https://id.example/token".into(),
            jwks_uri: "https://id.example/jwks".into(),
            userinfo_endpoint: None,
            client_auth: ClientAuth::Basic,
            iss_parameter: true,
        }
    }

    fn ring() -> KeyRing {
        KeyRing::new(&secret("0123456789abcdef0123456789abcdef-flow"), &[])
    }

    #[test]
    fn the_pkce_challenge_is_rfc_7636s() {
        // RFC 7636 Appendix B.
        let f = Flow {
            verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
            ..Flow::start(&provider(), "/", 0, &mut CountingEntropy(0))
        };
        assert_eq!(f.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn the_authorization_url_asks_for_code_with_pkce_state_and_nonce() {
        let f = Flow::start(&provider(), "/a", 0, &mut CountingEntropy(1));
        let url = f.authorization_url(
            &provider(),
            &meta(),
            "https://app.example/.keycard/callback",
            Some("login"),
        );
        let (base, query) = url.split_once("?tenant=a&").unwrap();
        assert_eq!(base, "https://id.example/auth");
        let q: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("response_type"), Some("code"));
        assert_eq!(
            get("redirect_uri"),
            Some("https://app.example/.keycard/callback")
        );
        assert_eq!(get("code_challenge_method"), Some("S256"));
        assert_eq!(get("code_challenge"), Some(f.challenge().as_str()));
        assert_eq!(get("state"), Some(f.state.as_str()));
        assert_eq!(get("nonce"), Some(f.nonce.as_str()));
        assert_eq!(get("response_mode"), Some("query"));
        assert_eq!(get("prompt"), Some("login"));
        assert_ne!(f.state, f.nonce);
        assert_ne!(f.state, f.verifier);
    }

    #[test]
    fn a_sealed_flow_opens_only_under_its_own_name_and_keys() {
        let f = Flow::start(&provider(), "/next", 100, &mut CountingEntropy(2));
        let name = cookie_name(true, &f.state).unwrap();
        let value = f.seal(&ring(), &name, &mut CountingEntropy(9));
        assert!(!value.contains(&f.verifier), "the verifier is sealed");
        assert_eq!(Flow::open(&ring(), &name, &value), Some(f.clone()));
        assert_eq!(
            Flow::open(&ring(), "__Host-keycard-flow-other", &value),
            None
        );
        let other = KeyRing::new(&secret("another-secret-0123456789abcdef0123456789"), &[]);
        assert_eq!(Flow::open(&other, &name, &value), None);
        let rotated = KeyRing::new(
            &secret("another-secret-0123456789abcdef0123456789"),
            &[secret("0123456789abcdef0123456789abcdef-flow")],
        );
        assert_eq!(Flow::open(&rotated, &name, &value), Some(f));
        assert_eq!(Flow::open(&ring(), &name, "not base64!"), None);
    }

    #[test]
    fn its_debug_keeps_the_secrets_out() {
        let f = Flow::start(&provider(), "/next", 100, &mut CountingEntropy(4));
        let shown = format!("{f:?}");
        assert!(shown.contains("/next"));
        for secret in [&f.verifier, &f.nonce, &f.state] {
            assert!(!shown.contains(secret.as_str()), "{shown}");
        }
    }

    #[test]
    fn a_flow_is_fresh_for_ten_minutes() {
        let f = Flow::start(&provider(), "/", 1000, &mut CountingEntropy(3));
        assert!(f.fresh(1000) && f.fresh(1599));
        assert!(!f.fresh(1600) && !f.fresh(999));
    }

    #[test]
    fn a_browser_keeps_a_few_flows_and_the_oldest_go() {
        let r = ring();
        let mut header = String::from("theme=dark; __Host-keycard-flow-junkjunkjunkjunk=x");
        for t in 0..5u64 {
            let f = Flow::start(
                &provider(),
                "/",
                1000 + t,
                &mut CountingEntropy(t as u8 * 7),
            );
            let name = cookie_name(true, &f.state).unwrap();
            header.push_str(&format!(
                "; {name}={}",
                f.seal(&r, &name, &mut CountingEntropy(1))
            ));
        }
        let gone = stale(&r, true, Some(&header), 1010);
        assert_eq!(gone.len(), 1 + 2, "the junk, and the two oldest of five");
        assert!(gone[0].ends_with("junkjunkjunkjunk"));
        assert!(
            stale(&r, true, Some(&header), 1000 + FLOW_TTL + 10).len() == 6,
            "all expired"
        );
        assert!(stale(&r, true, Some("theme=dark"), 1010).is_empty());
    }

    #[test]
    fn cookie_names_come_from_the_state() {
        assert_eq!(
            cookie_name(true, "abcdefghijklmnop-rest").as_deref(),
            Some("__Host-keycard-flow-abcdefghijklmnop")
        );
        assert_eq!(
            cookie_name(false, "abcdefghijklmnopq").as_deref(),
            Some("keycard-flow-abcdefghijklmnop")
        );
        assert_eq!(cookie_name(true, "short"), None);
        assert_eq!(cookie_name(true, "abcdefgh;jklmnop"), None);
        assert_eq!(
            set_cookie(true, "__Host-keycard-flow-x", Some("v")),
            "__Host-keycard-flow-x=v; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=600"
        );
        assert!(
            set_cookie(false, "keycard-flow-x", None).ends_with("SameSite=Lax; Path=/; Max-Age=0")
        );
    }
}
