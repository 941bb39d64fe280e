//! Whole sign-ins through the exchange, against a provider in memory: its metadata,
//! keys and token endpoint, and a stand-in for WebCrypto (a "signature" here is the
//! SHA-256 of what was signed, then the SHA-256 of the key's `x`). What a real provider
//! and real signatures do is the end-to-end suite's (`tests/e2e/sign-in.test.mjs`).

use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::*;
use crate::config::Config;
use crate::crypto::jws::Verification;
use crate::http::headers::HeaderList;
use crate::http::outbound::{Inbound, Outbound};
use crate::testing::{config, CountingEntropy, FakeKv, T0};
use crate::util::{b64, unb64};

const ISSUER: &str = "https://id.example";

/// The provider in memory.
struct Provider {
    /// The key ids in its key set.
    kids: Vec<&'static str>,
    /// The claims of the next ID token, over the defaults.
    claims: Map<String, Value>,
    /// The next ID token's header, over the defaults.
    header: Map<String, Value>,
    /// The key that signs, when not the one the header's `kid` names.
    signed_by: Option<&'static str>,
    /// Whether it sends `iss` on the callback.
    iss_parameter: bool,
    /// Refuses every request (down).
    down: bool,
    /// The token endpoint answers this instead.
    token_answer: Option<Inbound>,
    /// Its userinfo claims.
    userinfo: Option<Value>,
    /// The nonce and PKCE challenge of each authorization request, by state.
    authorized: BTreeMap<String, (String, String)>,
    /// Every request it got, by URL.
    requests: Vec<Outbound>,
}

fn key(kid: &str) -> Value {
    json!({ "kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
            "x": b64(Sha256::digest(kid.as_bytes())), "y": b64([2u8; 32]) })
}

fn signature(input: &str, x: &str) -> Vec<u8> {
    let mut sig = Sha256::digest(input.as_bytes()).to_vec();
    sig.extend(Sha256::digest(x.as_bytes()));
    sig
}

fn object(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn json_answer(status: u16, body: Value) -> Inbound {
    Inbound {
        status,
        content_type: Some("application/json".into()),
        cache_control: None,
        body: body.to_string(),
    }
}

impl Provider {
    fn new() -> Provider {
        Provider {
            kids: vec!["k1"],
            claims: Map::new(),
            header: Map::new(),
            signed_by: None,
            iss_parameter: true,
            down: false,
            token_answer: None,
            userinfo: Some(json!({ "sub": "u-1" })),
            authorized: BTreeMap::new(),
            requests: Vec::new(),
        }
    }

    fn count(&self, path: &str) -> usize {
        let url = format!("{ISSUER}{path}");
        self.requests.iter().filter(|r| r.url == url).count()
    }

    /// The ID token for the authorization request with `nonce`, signed with `kid`.
    fn id_token(&self, nonce: &str) -> String {
        let mut header = object(json!({ "alg": "ES256", "kid": "k1" }));
        header.extend(self.header.clone());
        let mut claims = object(json!({
            "iss": ISSUER, "aud": "app", "sub": "u-1", "nonce": nonce,
            "iat": T0, "exp": T0 + 300,
            "email": "ada@corp.example", "email_verified": true, "name": "Ada",
        }));
        claims.extend(self.claims.clone());
        claims.retain(|_, v| !v.is_null());
        let input = format!(
            "{}.{}",
            b64(Value::Object(header.clone()).to_string()),
            b64(Value::Object(claims).to_string())
        );
        let named = header.get("kid").and_then(Value::as_str).unwrap_or("k1");
        let kid = self.signed_by.unwrap_or(named);
        let x = key(kid)["x"].as_str().unwrap().to_owned();
        format!("{input}.{}", b64(signature(&input, &x)))
    }

    fn answer(&mut self, req: Outbound) -> Result<Inbound, String> {
        self.requests.push(req.clone());
        if self.down {
            return Err("connection refused".into());
        }
        let path = req.url.strip_prefix(ISSUER).unwrap_or("");
        Ok(match path {
            "/.well-known/openid-configuration" => json_answer(
                200,
                json!({
                    "issuer": ISSUER,
                    "authorization_endpoint": format!("{ISSUER}/auth"),
                    "token_endpoint": format!("{ISSUER}/token"),
                    "jwks_uri": format!("{ISSUER}/jwks"),
                    "userinfo_endpoint": format!("{ISSUER}/me"),
                    "authorization_response_iss_parameter_supported": self.iss_parameter,
                }),
            ),
            "/jwks" => json_answer(
                200,
                json!({ "keys": self.kids.iter().map(|k| key(k)).collect::<Vec<_>>() }),
            ),
            "/token" => return Ok(self.token(&req)),
            "/me" => match &self.userinfo {
                Some(u)
                    if req
                        .headers
                        .iter()
                        .any(|(n, v)| *n == "authorization" && v == "Bearer at-1") =>
                {
                    json_answer(200, u.clone())
                }
                _ => json_answer(401, json!({ "error": "invalid_token" })),
            },
            _ => json_answer(404, json!({})),
        })
    }

    fn token(&mut self, req: &Outbound) -> Inbound {
        if let Some(a) = self.token_answer.clone() {
            return a;
        }
        let form: BTreeMap<String, String> =
            form_urlencoded::parse(req.body.as_deref().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        let code = form.get("code").cloned().unwrap_or_default();
        let Some((nonce, challenge)) = self.authorized.remove(&code) else {
            return json_answer(400, json!({ "error": "invalid_grant" }));
        };
        let verifier = form.get("code_verifier").cloned().unwrap_or_default();
        if b64(Sha256::digest(verifier.as_bytes())) != challenge {
            return json_answer(400, json!({ "error": "invalid_grant" }));
        }
        json_answer(
            200,
            json!({ "id_token": self.id_token(&nonce), "access_token": "at-1", "token_type": "Bearer" }),
        )
    }

    /// The browser at the authorization endpoint: the provider remembers the request,
    /// and sends it back to the callback with a code (the state, for simplicity).
    fn authorize(&mut self, location: &str) -> String {
        let query = location.split_once('?').unwrap().1;
        let q: BTreeMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let state = q["state"].clone();
        self.authorized.insert(
            state.clone(),
            (q["nonce"].clone(), q["code_challenge"].clone()),
        );
        let mut back = form_urlencoded::Serializer::new(String::new());
        back.append_pair("code", &state)
            .append_pair("state", &state);
        if self.iss_parameter {
            back.append_pair("iss", ISSUER);
        }
        format!("/.keycard/callback?{}", back.finish())
    }
}

/// WebCrypto's stand-in: the signature must be [`signature`] under the key given.
fn verify(v: &Verification) -> Result<bool, String> {
    let jwk: Value = serde_json::from_str(&v.jwk).map_err(|e| e.to_string())?;
    let x = jwk["x"].as_str().ok_or("no x")?;
    Ok(v.signature == signature(&v.signing_input, x))
}

/// A browser's cookies.
#[derive(Default, Clone, Debug)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn take(&mut self, reply_headers: &[(&'static str, String)]) {
        for (_, sc) in reply_headers.iter().filter(|(n, _)| *n == "set-cookie") {
            let pair = sc.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            match sc.contains("Max-Age=0") || value.is_empty() {
                true => self.0.remove(name),
                false => self.0.insert(name.to_owned(), value.to_owned()),
            };
        }
    }

    fn flows(&self) -> usize {
        self.0
            .keys()
            .filter(|n| n.starts_with("__Host-keycard-flow-"))
            .count()
    }
}

/// The Worker: one configuration for the isolate (so the provider's metadata and keys
/// stay cached between requests), KV, and the provider.
struct Edge {
    cfg: Rc<Config>,
    bindings: Bindings,
    kv: FakeKv,
    idp: Provider,
    now: u64,
    logs: Vec<Log>,
}

/// What a request came to: the forward, if the origin was asked, and the final step.
struct Seen {
    forward: Option<Box<Forward>>,
    last: Step,
}

impl Seen {
    fn reply(&self) -> &Reply {
        match &self.last {
            Step::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    fn status(&self) -> u16 {
        self.reply().status
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.reply()
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    fn location(&self) -> &str {
        self.header("location").expect("a location")
    }

    /// The session data the origin was told.
    fn data(&self) -> Value {
        let s = self
            .forward
            .as_ref()
            .and_then(|f| f.session.session.as_ref())
            .expect("a session");
        serde_json::from_slice(&unb64(s).unwrap()).unwrap()
    }
}

impl Edge {
    fn new(pairs: &[(&str, &str)]) -> Edge {
        let mut all = vec![
            ("KEYCARD_OIDC_ISSUER", ISSUER),
            ("KEYCARD_OIDC_CLIENT_ID", "app"),
            ("KEYCARD_OIDC_CLIENT_SECRET", "app-secret"),
        ];
        all.extend_from_slice(pairs);
        Edge {
            cfg: Rc::new(config(&all)),
            bindings: Bindings {
                kv: Binding::Present,
                ..Default::default()
            },
            kv: FakeKv::default(),
            idp: Provider::new(),
            now: T0,
            logs: Vec::new(),
        }
    }

    fn get(&mut self, jar: &mut Jar, path: &str) -> Seen {
        self.request(jar, path, "text/html")
    }

    fn request(&mut self, jar: &mut Jar, path: &str, accept: &str) -> Seen {
        self.kv.now = self.now;
        let mut headers = format!("accept:{accept}\nsec-fetch-mode:navigate\n");
        if !jar.0.is_empty() {
            headers.push_str(&format!("cookie:{}\n", jar.header()));
        }
        let url = format!("https://app.example{path}");
        let req = Incoming {
            method: "GET",
            url: &url,
            headers: HeaderList::new(&headers),
        };
        let (mut ex, mut step) = Exchange::start(
            Rc::clone(&self.cfg),
            self.bindings,
            &req,
            self.now,
            CountingEntropy(self.now as u8),
        );
        let mut forward = None;
        loop {
            step = match self.kv.drive(&mut ex, step) {
                Step::Fetch(out) => ex.fetched(self.idp.answer(out)),
                Step::Verify(v) => ex.verified(verify(&v)),
                Step::Forward(f) => {
                    forward = Some(f);
                    ex.answered(&Answer {
                        status: 200,
                        headers: HeaderList::new(""),
                    })
                }
                last => {
                    self.logs.extend(ex.take_logs());
                    let headers = match (&last, &forward) {
                        (Step::Reply(r), _) => r.headers.clone(),
                        (Step::Rewrap(r), _) => r
                            .set_cookie
                            .iter()
                            .map(|c| ("set-cookie", c.clone()))
                            .collect(),
                        _ => Vec::new(),
                    };
                    jar.take(&headers);
                    return Seen { forward, last };
                }
            };
        }
    }

    /// A whole sign-in from `jar`, starting at the login URL `login`: returns the
    /// callback's answer.
    fn sign_in(&mut self, jar: &mut Jar, login: &str) -> Seen {
        let to_provider = self.get(jar, login);
        assert_eq!(to_provider.status(), 303, "{:?}", to_provider.reply());
        let back = self.idp.authorize(to_provider.location());
        self.get(jar, &back)
    }

    fn logged(&self, event: &str) -> Option<&Log> {
        self.logs.iter().find(|l| l.event == event)
    }
}

#[test]
fn a_sign_in_makes_a_session_and_goes_to_next() {
    let mut e = Edge::new(&[]);
    let mut jar = Jar::default();
    let start = e.get(&mut jar, "/.keycard/login?next=%2Fwiki%2Fpage%3Fa%3D1");
    assert_eq!(start.status(), 303);
    let to = start.location();
    assert!(to.starts_with("https://id.example/auth?response_type=code&client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2F.keycard%2Fcallback&scope=openid+email+profile&state="), "{to}");
    assert!(to.contains("&code_challenge_method=S256&response_mode=query"));
    assert_eq!(jar.flows(), 1);
    let back = e.idp.authorize(to);
    let done = e.get(&mut jar, &back);
    assert_eq!(done.status(), 303, "{:?}", e.logs);
    assert_eq!(done.location(), "/wiki/page?a=1");
    assert_eq!(jar.flows(), 0, "the flow's cookie is cleared");
    assert!(jar.0.contains_key("__Host-keycard"));
    let page = e.get(&mut jar, "/wiki/page");
    assert_eq!(
        page.data(),
        json!({ "user": "ada@corp.example", "email": "ada@corp.example", "name": "Ada", "idp": ISSUER })
    );
    // The token request was authenticated, and carried the verifier the provider
    // checked against the challenge.
    let token = e
        .idp
        .requests
        .iter()
        .find(|r| r.url.ends_with("/token"))
        .unwrap();
    assert!(token
        .headers
        .iter()
        .any(|(n, v)| *n == "authorization" && v.starts_with("Basic ")));
    assert_eq!(e.idp.count("/.well-known/openid-configuration"), 1);
    assert_eq!(e.idp.count("/jwks"), 1);
    // Cached for the isolate: a second sign-in fetches neither again.
    let mut other = Jar::default();
    assert_eq!(e.sign_in(&mut other, "/.keycard/login").status(), 303);
    assert_eq!(e.idp.count("/.well-known/openid-configuration"), 1);
    assert_eq!(e.idp.count("/jwks"), 1);
}

#[test]
fn sign_ins_in_several_tabs_all_finish() {
    let mut e = Edge::new(&[]);
    let mut jar = Jar::default();
    let tabs: Vec<String> = ["/a", "/b", "/c"]
        .iter()
        .map(|next| {
            let s = e.get(&mut jar, &format!("/.keycard/login?next={next}"));
            e.now += 1; // the tests' entropy counts from the clock
            e.idp.authorize(s.location())
        })
        .collect();
    assert_eq!(jar.flows(), 3);
    for (back, next) in tabs.iter().rev().zip(["/c", "/b", "/a"]) {
        let done = e.get(&mut jar, back);
        assert_eq!((done.status(), done.location()), (303, next));
    }
    assert_eq!(jar.flows(), 0);
}

#[test]
fn a_callback_this_browser_did_not_start_gets_no_code_exchange() {
    let mut e = Edge::new(&[]);
    let mut victim = Jar::default();
    let s = e.get(&mut victim, "/.keycard/login");
    let back = e.idp.authorize(s.location());
    // Login CSRF: the attacker's callback, in a browser that started no sign-in.
    let mut attacker = Jar::default();
    let refused = e.get(&mut attacker, &back);
    assert_eq!(refused.status(), 400);
    assert!(refused.reply().body.contains("expired"));
    assert_eq!(e.idp.count("/token"), 0);
    // A state of another flow, with this browser's cookie: no match either.
    let mut jar = Jar::default();
    let s = e.get(&mut jar, "/.keycard/login");
    let _ = e.idp.authorize(s.location());
    let forged = back.replace("state=", "state=X");
    assert_eq!(e.get(&mut jar, &forged).status(), 400);
    assert_eq!(e.idp.count("/token"), 0);
}

#[test]
fn back_onto_a_used_callback_goes_home_when_signed_in() {
    let mut e = Edge::new(&[]);
    let mut jar = Jar::default();
    let s = e.get(&mut jar, "/.keycard/login?next=/x");
    let back = e.idp.authorize(s.location());
    assert_eq!(e.get(&mut jar, &back).status(), 303);
    let again = e.get(&mut jar, &back);
    assert_eq!((again.status(), again.location()), (303, "/"));
    assert_eq!(e.idp.count("/token"), 1, "the code is not exchanged twice");
}

#[test]
fn an_expired_flow_is_refused() {
    let mut e = Edge::new(&[]);
    let mut jar = Jar::default();
    let s = e.get(&mut jar, "/.keycard/login");
    let back = e.idp.authorize(s.location());
    e.now += 600;
    let late = e.get(&mut jar, &back);
    assert_eq!(late.status(), 400);
    assert_eq!(jar.flows(), 0, "the stale cookie is cleared");
    assert_eq!(e.idp.count("/token"), 0);
}

#[test]
fn rfc_9207_iss_is_checked_before_any_exchange() {
    let mut e = Edge::new(&[]);
    let mut jar = Jar::default();
    let s = e.get(&mut jar, "/.keycard/login");
    let back = e.idp.authorize(s.location());
    let mixed_up = back.replace(
        "iss=https%3A%2F%2Fid.example",
        "iss=https%3A%2F%2Fevil.example",
    );
    assert_eq!(e.get(&mut jar.clone(), &mixed_up).status(), 400);
    let missing = back.replace("&iss=https%3A%2F%2Fid.example", "");
    assert_eq!(e.get(&mut jar.clone(), &missing).status(), 400);
    assert_eq!(e.idp.count("/token"), 0);
    assert_eq!(e.get(&mut jar, &back).status(), 303);
}

/// Signs in with the provider's next ID token changed by `change`; returns the
/// callback's status.
fn with_token(change: impl FnOnce(&mut Provider)) -> (u16, Edge) {
    let mut e = Edge::new(&[]);
    change(&mut e.idp);
    let mut jar = Jar::default();
    let status = e.sign_in(&mut jar, "/.keycard/login").status();
    assert!(status != 303 || jar.0.contains_key("__Host-keycard"));
    (status, e)
}

#[test]
fn a_token_keycard_does_not_trust_makes_no_session() {
    let set = |k: &str, v: Value| {
        let k = k.to_owned();
        move |p: &mut Provider| {
            p.claims.insert(k, v);
        }
    };
    type Change = Box<dyn FnOnce(&mut Provider)>;
    let cases: Vec<(&str, Change)> = vec![
        ("aud", Box::new(set("aud", json!("other-app")))),
        ("iss", Box::new(set("iss", json!("https://evil.example")))),
        ("nonce", Box::new(set("nonce", json!("replayed")))),
        ("expired", Box::new(set("exp", json!(T0 - 61)))),
        ("future", Box::new(set("iat", json!(T0 + 61)))),
        ("no sub", Box::new(set("sub", Value::Null))),
        (
            "alg none",
            Box::new(|p: &mut Provider| {
                p.header.insert("alg".into(), json!("none"));
            }),
        ),
        (
            "HS256",
            Box::new(|p: &mut Provider| {
                p.header.insert("alg".into(), json!("HS256"));
            }),
        ),
        (
            "RS256 on an EC key",
            Box::new(|p: &mut Provider| {
                p.header.insert("alg".into(), json!("RS256"));
            }),
        ),
        (
            "signed by a key the set lacks",
            Box::new(|p: &mut Provider| {
                p.header.insert("kid".into(), json!("k9"));
            }),
        ),
        (
            "unverified email",
            Box::new(set("email_verified", json!(false))),
        ),
    ];
    for (name, change) in cases {
        let (status, e) = with_token(change);
        assert!(matches!(status, 400 | 403), "{name}: {status}");
        let log = e.logged("sign_in_failed").or(e.logged("sign_in_refused"));
        assert!(log.is_some(), "{name}: a log line says why");
        assert!(!log.unwrap().line().contains("at-1"), "never a token");
    }
}

#[test]
fn a_token_signed_with_another_key_under_the_right_kid_is_refused() {
    let mut e = Edge::new(&[]);
    e.idp.signed_by = Some("k2");
    let mut jar = Jar::default();
    let refused = e.sign_in(&mut jar, "/.keycard/login");
    assert_eq!(refused.status(), 400);
    assert!(refused.reply().body.contains("signature"));
    assert!(!jar.0.contains_key("__Host-keycard"));
    // The control: the same sign-in with the key the kid names.
    e.idp.signed_by = None;
    let mut jar = Jar::default();
    assert_eq!(e.sign_in(&mut jar, "/.keycard/login").status(), 303);
}

#[test]
fn the_verifier_saying_no_is_a_refusal() {
    let mut e = Edge::new(&[]);
    let mut jar = Jar::default();
    let s = e.get(&mut jar, "/.keycard/login");
    let back = e.idp.authorize(s.location());
    let url = format!("https://app.example{back}");
    let headers = format!("cookie:{}\n", jar.header());
    let req = Incoming {
        method: "GET",
        url: &url,
        headers: HeaderList::new(&headers),
    };
    let (mut ex, mut step) = Exchange::start(
        Rc::clone(&e.cfg),
        Bindings::default(),
        &req,
        e.now,
        CountingEntropy(1),
    );
    loop {
        step = match step {
            Step::Fetch(out) => ex.fetched(e.idp.answer(out)),
            Step::Verify(_) => break,
            other => panic!("{other:?}"),
        };
    }
    let refused = ex.verified(Ok(false));
    let Step::Reply(r) = refused else { panic!() };
    assert_eq!(r.status, 400);
    assert!(
        !r.headers
            .iter()
            .any(|(_, v)| v.starts_with("__Host-keycard=")),
        "no session"
    );
}

#[test]
fn rotated_keys_are_fetched_again_once() {
    let mut e = Edge::new(&[]);
    let mut jar = Jar::default();
    assert_eq!(e.sign_in(&mut jar, "/.keycard/login").status(), 303);
    assert_eq!(e.idp.count("/jwks"), 1);
    // The provider rotates to k2: the next token's kid is unknown, so the keys are
    // fetched again, and it verifies.
    e.idp.kids = vec!["k2"];
    e.idp.header.insert("kid".into(), json!("k2"));
    e.now += 61;
    let mut jar = Jar::default();
    assert_eq!(e.sign_in(&mut jar, "/.keycard/login").status(), 303);
    assert_eq!(e.idp.count("/jwks"), 2);
    // An unknown kid within the minute: no refetch, refused.
    e.idp.header.insert("kid".into(), json!("k3"));
    let mut jar = Jar::default();
    assert_eq!(e.sign_in(&mut jar, "/.keycard/login").status(), 400);
    assert_eq!(e.idp.count("/jwks"), 2);
}

#[test]
fn a_provider_that_is_down_gets_a_503_and_nothing_else_breaks() {
    let mut e = Edge::new(&[("KEYCARD_REQUIRE", "/admin")]);
    e.idp.down = true;
    let mut jar = Jar::default();
    let s = e.get(&mut jar, "/.keycard/login");
    assert_eq!(s.status(), 503);
    assert_eq!(s.header("retry-after"), Some("30"));
    assert!(e.logged("provider_unavailable").is_some());
    let public = e.get(&mut jar, "/");
    assert!(public.forward.is_some(), "public pages are served");
    let guarded = e.get(&mut jar, "/admin");
    assert_eq!(guarded.location(), "/.keycard/login?next=%2Fadmin");
}

#[test]
fn a_token_endpoint_that_answers_html_or_fails_is_a_503() {
    for answer in [
        Inbound {
            status: 200,
            content_type: Some("text/html".into()),
            cache_control: None,
            body: "<html>".into(),
        },
        json_answer(500, json!({ "error": "server_error" })),
        json_answer(200, json!({ "access_token": "at-1" })),
    ] {
        let mut e = Edge::new(&[]);
        e.idp.token_answer = Some(answer);
        let mut jar = Jar::default();
        assert_eq!(e.sign_in(&mut jar, "/.keycard/login").status(), 503);
    }
}

#[test]
fn the_providers_refusal_is_a_clear_page() {
    let mut e = Edge::new(&[]);
    let mut jar = Jar::default();
    let s = e.get(&mut jar, "/.keycard/login");
    let state = s
        .location()
        .split("state=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let denied = e.get(
        &mut jar,
        &format!(
            "/.keycard/callback?error=access_denied&state={state}&iss=https%3A%2F%2Fid.example"
        ),
    );
    assert_eq!(denied.status(), 403);
    assert!(denied.reply().body.contains("access_denied"));
    assert_eq!(jar.flows(), 0);
    assert_eq!(e.idp.count("/token"), 0);
}

#[test]
fn allow_rules_refuse_before_any_session_and_name_the_user() {
    let mut e = Edge::new(&[("KEYCARD_ALLOW_EMAIL_DOMAINS", "other.example")]);
    e.idp
        .claims
        .insert("email".into(), json!("<b>ada</b>@corp.example"));
    let mut jar = Jar::default();
    let refused = e.sign_in(&mut jar, "/.keycard/login?next=/x");
    assert_eq!(refused.status(), 403);
    let body = &refused.reply().body;
    assert!(body.contains("KEYCARD_ALLOW_EMAIL_DOMAINS"));
    assert!(body.contains("&lt;b&gt;ada&lt;/b&gt;@corp.example"));
    assert!(!jar.0.contains_key("__Host-keycard"));
    assert_eq!(e.kv.puts, 0);
}

#[test]
fn claims_the_token_lacks_come_from_userinfo_for_the_same_sub() {
    let mut e = Edge::new(&[]);
    for k in ["email", "email_verified", "name"] {
        e.idp.claims.insert(k.into(), Value::Null);
    }
    e.idp.userinfo = Some(
        json!({ "sub": "u-1", "email": "ada@corp.example", "email_verified": true, "name": "Ada L." }),
    );
    let mut jar = Jar::default();
    assert_eq!(e.sign_in(&mut jar, "/.keycard/login").status(), 303);
    assert_eq!(e.get(&mut jar, "/").data()["name"], "Ada L.");
    e.idp.userinfo =
        Some(json!({ "sub": "someone-else", "email": "eve@corp.example", "email_verified": true }));
    let mut jar = Jar::default();
    assert_eq!(e.sign_in(&mut jar, "/.keycard/login").status(), 400);
}

#[test]
fn a_session_too_large_for_the_cookie_store_is_a_clear_page() {
    let mut e = Edge::new(&[("SESSION_STORE", "cookie")]);
    let groups: Vec<String> = (0..400)
        .map(|i| format!("group-with-a-long-name-{i}"))
        .collect();
    e.idp.claims.insert("groups".into(), json!(groups));
    let mut jar = Jar::default();
    let page = e.sign_in(&mut jar, "/.keycard/login");
    assert_eq!(page.status(), 400);
    assert!(page.reply().body.contains("KEYCARD_OIDC_CLAIMS"));
    // In auto, the same session spills to KV.
    let mut e = Edge::new(&[]);
    e.idp.claims.insert("groups".into(), json!(groups));
    let mut jar = Jar::default();
    assert_eq!(e.sign_in(&mut jar, "/.keycard/login").status(), 303);
    assert_eq!(
        e.get(&mut jar, "/").data()["groups"][399],
        "group-with-a-long-name-399"
    );
}

#[test]
fn the_flow_cookies_never_reach_the_origin() {
    let mut e = Edge::new(&[]);
    let mut jar = Jar::default();
    jar.0.insert("theme".into(), "dark".into());
    let _ = e.get(&mut jar, "/.keycard/login");
    assert_eq!(jar.flows(), 1);
    let page = e.get(&mut jar, "/");
    assert_eq!(
        page.forward.unwrap().cookie,
        CookieEdit::Set("theme=dark".into())
    );
}

#[test]
fn required_paths_send_a_page_load_to_sign_in_and_an_api_call_gets_the_login_url() {
    let mut e = Edge::new(&[("KEYCARD_REQUIRE", "/admin")]);
    let mut jar = Jar::default();
    let page = e.get(&mut jar, "/admin/users?x=1");
    assert_eq!(
        page.location(),
        "/.keycard/login?next=%2Fadmin%2Fusers%3Fx%3D1"
    );
    let done = e.sign_in(&mut jar, page.location().to_owned().as_str());
    assert_eq!(done.location(), "/admin/users?x=1");
    let mut anon = Jar::default();
    let api = e.request(&mut anon, "/admin/api", "application/json");
    let body: Value = serde_json::from_str(&api.reply().body).unwrap_or_default();
    let _ = body;
}

#[test]
fn several_providers_get_a_chooser_and_their_own_user_names() {
    let mut e = Edge::new(&[]);
    e.cfg = Rc::new(config(&[
        ("KEYCARD_OIDC_PROVIDERS", "corp,other"),
        ("KEYCARD_OIDC_CORP_ISSUER", ISSUER),
        ("KEYCARD_OIDC_CORP_CLIENT_ID", "app"),
        ("KEYCARD_OIDC_CORP_CLIENT_SECRET", "s"),
        ("KEYCARD_OIDC_CORP_USER_CLAIM", "sub"),
        ("KEYCARD_OIDC_OTHER_ISSUER", "https://other.example"),
        ("KEYCARD_OIDC_OTHER_CLIENT_ID", "x"),
        ("KEYCARD_OIDC_OTHER_CLIENT_SECRET", "y"),
    ]));
    let mut jar = Jar::default();
    let chooser = e.get(&mut jar, "/.keycard/login?next=/x");
    assert_eq!(chooser.status(), 200);
    assert!(
        chooser.reply().body.contains("value=\"corp\"")
            && chooser.reply().body.contains("value=\"other\"")
    );
    assert_eq!(
        e.get(&mut jar, "/.keycard/login?provider=nope").status(),
        404
    );
    let done = e.sign_in(&mut jar, "/.keycard/login?next=/x&provider=corp");
    assert_eq!(done.location(), "/x");
    let data = e.get(&mut jar, "/").data();
    assert_eq!(
        (data["user"].as_str(), data["idp"].as_str()),
        (Some("corp:u-1"), Some("corp"))
    );
}

#[test]
fn without_sign_in_its_endpoints_do_not_exist() {
    let cfg = Rc::new(config(&[]));
    let req = Incoming {
        method: "GET",
        url: "https://app.example/.keycard/login",
        headers: HeaderList::new(""),
    };
    let (_, step) = Exchange::start(cfg, Bindings::default(), &req, T0, CountingEntropy(0));
    assert!(matches!(step, Step::Reply(Reply { status: 404, .. })));
}

#[test]
fn a_session_signed_in_with_a_provider_is_registered_with_its_users_object() {
    let mut e = Edge::new(&[]);
    e.bindings.users = Binding::Present;
    let mut jar = Jar::default();
    assert_eq!(e.sign_in(&mut jar, "/.keycard/login").status(), 303);
    assert_eq!(e.kv.users.take_ops(), ["see"], "one call registers it");
    let page = e.get(&mut jar, "/");
    assert_eq!(page.data()["user"], "ada@corp.example");
}

/// From the attack review: the guard sends an encoded path and query, and the sign-in
/// came back to `/` (the space was refused after decoding) or to a path encoded twice.
#[test]
fn next_comes_back_exactly_as_the_browser_asked_for_it() {
    let mut e = Edge::new(&[("KEYCARD_REQUIRE", "/")]);
    let mut jar = Jar::default();
    let login = e.get(&mut jar, "/search?q=a%20b").location().to_owned();
    assert_eq!(e.sign_in(&mut jar, &login).location(), "/search?q=a%20b");
    let mut jar = Jar::default();
    let done = e.sign_in(&mut jar, "/.keycard/login?next=%2Fcaf%25C3%25A9");
    assert_eq!(done.location(), "/caf%C3%A9");
}

/// From the attack review: each login set a flow cookie of up to 3 KB for ten minutes,
/// so a page that opened many filled the browser's cookies past the request-header
/// limit, and every request to the site failed.
#[test]
fn a_browser_never_holds_more_than_a_few_sign_ins() {
    let mut e = Edge::new(&[]);
    let mut jar = Jar::default();
    let long = format!("/{}", "a".repeat(2047));
    for _ in 0..20 {
        e.now += 1;
        let s = e.get(&mut jar, &format!("/.keycard/login?next={long}"));
        assert_eq!(s.status(), 303);
    }
    assert!(
        jar.flows() <= crate::oidc::flow::MAX_FLOWS,
        "{}",
        jar.flows()
    );
    assert!(jar.header().len() < 4096, "{}", jar.header().len());
}

/// From the attack review: userinfo's `email_verified` was attached to the ID token's
/// address even when userinfo vouched for another one.
#[test]
fn userinfo_cannot_verify_an_address_it_does_not_name() {
    let mut e = Edge::new(&[]);
    e.idp
        .claims
        .insert("email".into(), json!("ceo@corp.example"));
    e.idp.claims.insert("email_verified".into(), Value::Null);
    e.idp.userinfo =
        Some(json!({ "sub": "u-1", "email": "eve@else.example", "email_verified": true }));
    let mut jar = Jar::default();
    let refused = e.sign_in(&mut jar, "/.keycard/login");
    assert_eq!(refused.status(), 403);
    assert!(!jar.0.contains_key("__Host-keycard"));
}

#[test]
fn flow_cookies_never_reach_the_origin_even_when_the_session_cookie_does() {
    let mut e = Edge::new(&[("SESSION_FORWARD_COOKIE", "true")]);
    let mut jar = Jar::default();
    assert_eq!(e.sign_in(&mut jar, "/.keycard/login").status(), 303);
    let _ = e.get(&mut jar, "/.keycard/login");
    assert_eq!(jar.flows(), 1);
    let page = e.get(&mut jar, "/");
    let CookieEdit::Set(sent) = page.forward.unwrap().cookie else {
        panic!("the flow cookie is taken out")
    };
    assert!(sent.starts_with("__Host-keycard="), "{sent}");
    assert!(!sent.contains("flow"), "{sent}");
}

#[test]
fn a_provider_whose_metadata_just_failed_is_not_asked_again_at_once() {
    let mut e = Edge::new(&[]);
    e.idp.down = true;
    let mut jar = Jar::default();
    assert_eq!(e.get(&mut jar, "/.keycard/login").status(), 503);
    e.idp.down = false;
    e.now += 10;
    assert_eq!(e.get(&mut jar, "/.keycard/login").status(), 503);
    assert_eq!(e.idp.count("/.well-known/openid-configuration"), 1);
    e.now += 30;
    assert_eq!(e.get(&mut jar, "/.keycard/login").status(), 303);
    assert_eq!(e.idp.count("/.well-known/openid-configuration"), 2);
}

/// From the browser test: the refusal's "Sign in as someone else" went back to the
/// provider, which still knew the refused user and sent them straight back.
#[test]
fn signing_in_as_someone_else_makes_the_provider_ask_who() {
    let mut e = Edge::new(&[("KEYCARD_ALLOW_GROUPS", "admins")]);
    let mut jar = Jar::default();
    let refused = e.sign_in(&mut jar, "/.keycard/login?next=%2Fx");
    assert_eq!(refused.status(), 403);
    let body = &refused.reply().body;
    let link = body
        .split("href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    assert_eq!(link, "/.keycard/login?next=%2Fx&prompt=login");
    let again = e.get(&mut jar, &link);
    assert!(
        again.location().contains("&prompt=login"),
        "{}",
        again.location()
    );
    let plain = e.get(&mut jar, "/.keycard/login?prompt=consent%0d");
    assert!(
        !plain.location().contains("prompt="),
        "only login or select_account"
    );
}
