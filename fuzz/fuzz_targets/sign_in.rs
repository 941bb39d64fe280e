//! A sign-in's callback through `exchange::Exchange`, against a provider that answers
//! anything: any callback query beside this browser's real `state`, any token endpoint
//! answer (its status, its content type, and an ID token whose header, claims and
//! signature come from the input), any key set, any userinfo, and any verdict of the
//! signature check.
//!
//! Input: a `script` byte (bit 0: the signature check says yes; bit 1: the metadata
//! fetch fails; bit 2: the token fetch fails; bit 3: the callback carries the right
//! `iss`; bit 4: the key set is the input's, else one P-256 key `k1`), then
//! `query \0 token status \0 token content type \0 header \0 claims \0 signature \0
//! key set \0 userinfo`. `$state` and `$nonce` in the query and the claims stand for the
//! sign-in's own.
//!
//! Properties: nothing panics; every exchange ends within a bounded number of steps;
//! nothing is a 500; a session cookie is issued only when the signature check was asked
//! and said yes, for an ID token whose `iss`, `aud` and `nonce` are the sign-in's.

#![no_main]

use std::rc::Rc;

use keycard::config::Config;
use keycard::exchange::{Bindings, Exchange, Incoming, Step};
use keycard::http::headers::HeaderList;
use keycard::http::outbound::Inbound;
use keycard::util::b64;
use keycard_fuzz::{config_from, Counter, T0};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const ISSUER: &str = "https://id.example";

thread_local! {
    /// One isolate's configuration: the provider's cache lives across inputs, as it
    /// lives across requests.
    static CFG: Rc<Config> = Rc::new(
        config_from(&[
            ("KEYCARD_OIDC_ISSUER", ISSUER),
            ("KEYCARD_OIDC_CLIENT_ID", "app"),
            ("KEYCARD_OIDC_CLIENT_SECRET", "secret"),
            ("SESSION_STORE", "cookie"),
            ("KEYCARD_ALLOW_GROUPS", "eng"),
        ])
        .expect("a valid configuration"),
    );
}

fn json_answer(status: u16, body: String) -> Inbound {
    Inbound {
        status,
        content_type: Some("application/json".into()),
        cache_control: Some("max-age=0".into()),
        body,
    }
}

fn metadata() -> Inbound {
    let doc = json!({
        "issuer": ISSUER,
        "authorization_endpoint": format!("{ISSUER}/auth"),
        "token_endpoint": format!("{ISSUER}/token"),
        "jwks_uri": format!("{ISSUER}/jwks"),
        "userinfo_endpoint": format!("{ISSUER}/me"),
        "authorization_response_iss_parameter_supported": true,
    });
    json_answer(200, doc.to_string())
}

fn default_keys() -> String {
    json!({ "keys": [{ "kty": "EC", "crv": "P-256", "kid": "k1", "x": b64([1u8; 32]), "y": b64([2u8; 32]) }] })
        .to_string()
}

/// Drives `ex` from `step` with `answer` for each fetch and `verdict` for a signature
/// check; returns the final step and whether a check was asked.
fn drive(
    ex: &mut Exchange<Counter>,
    mut step: Step,
    answer: &mut dyn FnMut(&str) -> Result<Inbound, String>,
    verdict: bool,
) -> (Step, bool) {
    let mut asked = false;
    for _ in 0..32 {
        step = match step {
            Step::Fetch(out) => ex.fetched(answer(&out.url)),
            Step::Verify(_) => {
                asked = true;
                ex.verified(Ok(verdict))
            }
            last => return (last, asked),
        };
    }
    panic!("the exchange did not end within 32 steps");
}

fn reply_headers(step: &Step) -> &[(&'static str, String)] {
    match step {
        Step::Reply(r) => {
            assert_ne!(r.status, 500, "a sign-in is never a 500: {r:?}");
            &r.headers
        }
        other => panic!("a sign-in ends in a reply, not {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let [script, rest @ ..] = data else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut f = text.split('\0');
    let mut field = || f.next().unwrap_or("");
    let (query, token_status, token_type) = (field(), field(), field());
    let (header, claims, signature, key_set, userinfo) = (field(), field(), field(), field(), field());
    let cfg = CFG.with(Rc::clone);
    let bit = |n: u8| script & (1 << n) != 0;

    // The sign-in starts: the redirect, with the flow's cookie.
    let url = "https://app.example/.keycard/login?next=%2Fx";
    let req = Incoming { method: "GET", url, headers: HeaderList::new("") };
    let (mut ex, step) = Exchange::start(Rc::clone(&cfg), Bindings::default(), &req, T0, Counter(*script));
    let meta_fails = bit(1);
    let mut metadata_only = |_: &str| match meta_fails {
        true => Err("down".to_owned()),
        false => Ok(metadata()),
    };
    let (last, _) = drive(&mut ex, step, &mut metadata_only, false);
    let headers = reply_headers(&last);
    let Some(location) = headers.iter().find(|(n, _)| *n == "location").map(|(_, v)| v.clone()) else {
        return;
    };
    let flow_cookie = headers.iter().find(|(n, _)| *n == "set-cookie").map(|(_, v)| v.split(';').next().unwrap_or("").to_owned());
    let Some(flow_cookie) = flow_cookie else {
        return;
    };
    let q: Vec<(String, String)> = form_urlencoded::parse(location.split_once('?').map_or("", |p| p.1).as_bytes()).into_owned().collect();
    let get = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let (state, nonce) = (get("state"), get("nonce"));

    // The callback, with the provider's answers from the input.
    let fill = |s: &str| s.replace("$state", &state).replace("$nonce", &nonce);
    let iss = if bit(3) { "&iss=https%3A%2F%2Fid.example" } else { "" };
    let url = format!("https://app.example/.keycard/callback?code=c&state={state}{iss}&{}", fill(query));
    if url.bytes().any(|b| b <= b' ' || b >= 0x7f) {
        return;
    }
    let cookie = format!("cookie:{flow_cookie}\n");
    let req = Incoming { method: "GET", url: &url, headers: HeaderList::new(&cookie) };
    let (mut ex, step) = Exchange::start(Rc::clone(&cfg), Bindings::default(), &req, T0 + 5, Counter(*script ^ 1));
    let id_token = format!("{}.{}.{signature}", b64(header), b64(fill(claims)));
    let token_body = json!({ "id_token": id_token, "access_token": "at" }).to_string();
    let token_status: u16 = token_status.parse().unwrap_or(200);
    let (token_fails, own_keys) = (bit(2), bit(4));
    let mut provider = |u: &str| -> Result<Inbound, String> {
        match u.strip_prefix(ISSUER).unwrap_or("") {
            "/token" if token_fails => Err("reset".into()),
            "/token" => Ok(Inbound {
                status: token_status,
                content_type: Some(token_type.to_owned()),
                cache_control: None,
                body: token_body.clone(),
            }),
            "/jwks" if own_keys => Ok(json_answer(200, key_set.to_owned())),
            "/jwks" => Ok(json_answer(200, default_keys())),
            "/me" => Ok(json_answer(200, userinfo.to_owned())),
            _ => Ok(metadata()),
        }
    };
    let (last, asked) = drive(&mut ex, step, &mut provider, bit(0));
    let session = reply_headers(&last)
        .iter()
        .any(|(n, v)| *n == "set-cookie" && v.starts_with("__Host-keycard=") && !v.starts_with("__Host-keycard=;"));
    if session {
        assert!(asked && bit(0), "a session without a signature that verified");
        let claims: Value = serde_json::from_str(&fill(claims)).expect("signed-in claims are JSON");
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["nonce"], nonce.as_str());
        let aud = &claims["aud"];
        assert!(aud == "app" || aud.as_array().is_some_and(|a| a.iter().any(|x| x == "app")));
    }
});
