//! Signing a user in with their provider: OpenID Connect's Authorization Code flow with
//! PKCE, as [`crate::oidc`] rules it.
//!
//! `GET {prefix}login` sends the browser to the provider (or shows the chooser), with
//! the flow sealed in a cookie of its own. `GET {prefix}callback` checks that this
//! browser started the flow and that the provider is the one it went to (RFC 9207's
//! `iss`), and only then exchanges the code ([`Step::Fetch`]), fetches the provider's
//! keys when they are not cached, has the driver check the ID token's signature
//! ([`Step::Verify`]), asks the userinfo endpoint for what the token lacks, applies the
//! allow rules, and finally makes an ordinary session, as the origin's sign-in would.
//!
//! A provider that is down answers only the requests that need it: `503` with
//! `Retry-After`. Every other failure is a page that says what happened and how to
//! start again, and a log line with the reason, never a token, a code or a secret.

use std::mem;
use std::rc::Rc;

use serde_json::{json, Map, Value};

use super::endpoints::{param, Login};
use super::pages::{self, HTML};
use super::*;
use crate::config::Config;
use crate::crypto::keys::Entropy;
use crate::http::cookie_header;
use crate::http::outbound::{Inbound, Outbound};
use crate::oidc::discovery::{self, Metadata};
use crate::oidc::flow::{self, Flow};
use crate::oidc::id_token::{self, KeyError, Parsed};
use crate::oidc::identity::{self, Lacking};
use crate::oidc::token::{self, TokenError};
use crate::oidc::{Provider, SignIn, DEFAULT_TTL, DOWN_TTL, MAX_TTL, MIN_TTL};
use crate::session::{Changes, Loaded, SessionState};

/// What the provider sent the browser back with, once its flow checked out. Its
/// `Debug` leaves the code out.
pub(super) struct Returned {
    provider: usize,
    flow: Flow,
    /// The flow cookie's name, to clear it.
    flow_cookie: String,
    code: String,
    /// RFC 9207's `iss` parameter.
    iss: Option<String>,
    redirect_uri: String,
}

impl std::fmt::Debug for Returned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Returned")
            .field("provider", &self.provider)
            .field("flow", &self.flow)
            .field("iss", &self.iss)
            .finish_non_exhaustive()
    }
}

/// A callback under way: what came back, the session it arrived with, and the
/// provider's metadata.
#[derive(Debug)]
pub(super) struct Callback {
    r: Returned,
    loaded: Loaded,
    meta: Metadata,
}

/// The ID token, read and its claims checked, but its signature not yet. Its `Debug`
/// shows neither the claims nor the access token.
pub(super) struct Token {
    parsed: Parsed,
    access_token: Option<String>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("alg", &self.parsed.alg)
            .field("kid", &self.parsed.kid)
            .finish_non_exhaustive()
    }
}

/// What to do once the provider's metadata is in.
#[derive(Debug)]
pub(super) enum Then {
    /// Send the browser to the provider, to come back to `next`, clearing the flow
    /// cookies that are `stale`.
    Redirect {
        provider: usize,
        start: Login,
        redirect_uri: String,
        stale: Vec<String>,
    },
    /// Go on with the callback.
    Callback(Box<Returned>, Loaded),
}

/// What a sign-in waits for.
#[derive(Debug)]
pub(super) enum Waiting {
    /// [`Exchange::fetched`]: the provider's metadata.
    Metadata(Then),
    /// [`Exchange::fetched`]: the token endpoint's answer.
    Token(Box<Callback>),
    /// [`Exchange::fetched`]: the provider's keys.
    Keys(Box<Callback>, Box<Token>),
    /// [`Exchange::verified`]: the ID token's signature.
    Signature(Box<Callback>, Box<Token>),
    /// [`Exchange::fetched`]: the userinfo endpoint's claims, for what the ID token's
    /// claims lack.
    UserInfo(Box<Callback>, Map<String, Value>, Lacking),
}

/// A provider's answer as a JSON object, when it is a `200` of JSON; otherwise what is
/// wrong with it, for the log line of a provider that is unavailable.
fn json_answer(result: Result<Inbound, String>) -> Result<(Map<String, Value>, Inbound), String> {
    let answer = result?;
    if answer.status != 200 {
        return Err(format!("answered {}", answer.status));
    }
    let doc = answer
        .json_object()
        .ok_or("answered something other than a JSON object")?;
    Ok((doc, answer))
}

/// The sign-in settings and provider `i` of `cfg`.
fn provider_of(cfg: &Config, i: usize) -> Option<(&SignIn, &Provider)> {
    let s = cfg.sign_in.as_ref()?;
    Some((s, s.providers.get(i)?))
}

impl<E: Entropy> Exchange<E> {
    /// `GET {prefix}login`: the chooser, or the redirect to the provider.
    pub(super) fn login(&mut self, cookie: Option<&str>, own_origin: &str, start: Login) -> Step {
        let cfg = Rc::clone(&self.cfg);
        let Some(s) = cfg.sign_in.as_ref() else {
            return Step::Reply(Reply::opaque(404, "keycard: not found"));
        };
        let prefix = &cfg.path_prefix;
        let next = &start.next;
        let Some(i) = s.provider(start.provider.as_deref()) else {
            return Step::Reply(match start.provider {
                None => Reply::new(200, HTML, pages::chooser(prefix, next, &s.providers)),
                Some(_) => Reply::new(
                    404,
                    HTML,
                    pages::failed(
                        "Sign in",
                        "There is no such provider here.",
                        &pages::login_url(prefix, next, None),
                    ),
                ),
            });
        };
        let redirect_uri = format!("{own_origin}{prefix}callback");
        let stale = flow::stale(&cfg.keys, cfg.cookie.secure, cookie, self.now);
        let cache = s.providers[i].cache.lock();
        let (cached, down) = (cache.metadata(self.now).cloned(), cache.down(self.now));
        drop(cache);
        match (cached, down) {
            (Some(meta), _) => self.redirect_to_provider(i, &meta, &start, &redirect_uri, &stale),
            (None, true) => self.provider_unavailable(i, "metadata", "it failed moments ago"),
            (None, false) => self.fetch_metadata(
                i,
                Then::Redirect {
                    provider: i,
                    start,
                    redirect_uri,
                    stale,
                },
            ),
        }
    }

    fn fetch_metadata(&mut self, i: usize, then: Then) -> Step {
        let Some((_, p)) = provider_of(&self.cfg, i) else {
            return self.out_of_order("fetch_metadata");
        };
        let url = discovery::metadata_url(&p.issuer);
        self.state = State::SigningIn(Waiting::Metadata(then));
        Step::Fetch(Outbound::get_json(&url))
    }

    /// The redirect to provider `i`'s authorization endpoint, with a new flow in its
    /// cookie.
    fn redirect_to_provider(
        &mut self,
        i: usize,
        meta: &Metadata,
        start: &Login,
        redirect_uri: &str,
        stale: &[String],
    ) -> Step {
        let cfg = Rc::clone(&self.cfg);
        let Some((s, p)) = provider_of(&cfg, i) else {
            return self.out_of_order("redirect_to_provider");
        };
        let flow = Flow::start(p, &start.next, self.now, &mut self.entropy);
        let Some(name) = flow::cookie_name(cfg.cookie.secure, &flow.state) else {
            return self.out_of_order("redirect_to_provider");
        };
        let value = flow.seal(&cfg.keys, &name, &mut self.entropy);
        let prompt = start.prompt.or(s.prompt.as_deref());
        let url = flow.authorization_url(p, meta, redirect_uri, prompt);
        let secure = cfg.cookie.secure;
        let mut reply = Reply::new(303, TEXT, "").with("location", url);
        for old in stale {
            reply = reply.with("set-cookie", flow::set_cookie(secure, old, None));
        }
        Step::Reply(reply.with("set-cookie", flow::set_cookie(secure, &name, Some(&value))))
    }

    /// `GET {prefix}callback`: checks that this browser started the flow, then loads
    /// the session it has.
    pub(super) fn callback(&mut self, cookie: Option<&str>, own_origin: &str, query: &str) -> Step {
        let cfg = Rc::clone(&self.cfg);
        let secure = cfg.cookie.secure;
        let state = param(query, "state");
        let name = state.as_deref().and_then(|s| flow::cookie_name(secure, s));
        let sealed = name
            .as_deref()
            .and_then(|n| cookie.and_then(|c| cookie_header::values(c, n).next()));
        let opened = match (&name, sealed) {
            (Some(n), Some(v)) => Flow::open(&cfg.keys, n, v),
            _ => None,
        };
        let flow = opened.filter(|f| Some(&f.state) == state.as_ref());
        let (Some(flow), Some(name)) = (flow.filter(|f| f.fresh(self.now)), name.clone()) else {
            // Back onto a used callback, an expired sign-in, or one this browser did
            // not start.
            let reason = match sealed {
                Some(_) => "the sign-in's cookie does not match or has expired",
                None => "no sign-in was started in this browser with this state",
            };
            self.log(Level::Warn, "sign_in_failed", json!({ "reason": reason }));
            let clear = sealed.and(name.clone());
            self.purpose = Purpose::NoFlow { clear };
            return self.load(cookie, None);
        };
        let s = cfg.sign_in.as_ref();
        let Some(i) = s.and_then(|s| s.providers.iter().position(|p| p.idp() == flow.provider))
        else {
            return self.sign_in_failed(
                Some((&flow, &name)),
                400,
                "the sign-in's provider is no longer configured",
            );
        };
        if let Some(error) = param(query, "error") {
            return self.provider_said_no(&flow, &name, &error);
        }
        let Some(code) = param(query, "code") else {
            return self.sign_in_failed(Some((&flow, &name)), 400, "the provider sent no code");
        };
        self.purpose = Purpose::Callback(Box::new(Returned {
            provider: i,
            flow,
            flow_cookie: name,
            code,
            iss: param(query, "iss"),
            redirect_uri: format!("{own_origin}{}callback", cfg.path_prefix),
        }));
        self.load(cookie, None)
    }

    /// A callback without a flow, once its session is loaded: a browser that is
    /// signed in (Back onto a used callback) goes home; any other is told the sign-in
    /// expired.
    pub(super) fn no_flow(&mut self, loaded: &Loaded, clear: Option<String>) -> Step {
        let cfg = Rc::clone(&self.cfg);
        let signed_in = loaded
            .session()
            .map(SessionState::data)
            .is_some_and(|d| cfg.guards.signed_in(&d));
        let mut reply = match signed_in {
            true => Reply::new(303, TEXT, "").with("location", "/"),
            false => Reply::new(
                400,
                HTML,
                pages::failed(
                    "This sign-in has expired",
                    "This sign-in took too long, was already used, or was started in another browser.",
                    &pages::login_url(&cfg.path_prefix, "/", None),
                ),
            ),
        };
        if let Some(name) = clear {
            reply = reply.with(
                "set-cookie",
                flow::set_cookie(cfg.cookie.secure, &name, None),
            );
        }
        Step::Reply(reply)
    }

    /// A callback whose flow checked out, once its session is loaded: the provider's
    /// metadata, then the code exchange.
    pub(super) fn returned(&mut self, r: Box<Returned>, loaded: Loaded) -> Step {
        if matches!(loaded, Loaded::StoreUnavailable) {
            return self.fail(Failure::Store(StoreError {
                op: StoreOp::Get,
                detail: "the session could not be read to sign in".into(),
            }));
        }
        let cfg = Rc::clone(&self.cfg);
        let Some((_, p)) = provider_of(&cfg, r.provider) else {
            return self.out_of_order("returned");
        };
        let cache = p.cache.lock();
        let (cached, down) = (cache.metadata(self.now).cloned(), cache.down(self.now));
        drop(cache);
        match cached {
            Some(meta) => self.exchange_code(Box::new(Callback {
                r: *r,
                loaded,
                meta,
            })),
            None if down => {
                self.provider_unavailable(r.provider, "metadata", "it failed moments ago")
            }
            None => {
                let i = r.provider;
                self.fetch_metadata(i, Then::Callback(r, loaded))
            }
        }
    }

    /// The code exchange, once the provider is known to be the flow's (RFC 9207): a
    /// callback whose `iss` is another's, or lacks it when the provider sends it, is
    /// refused before any exchange.
    fn exchange_code(&mut self, cb: Box<Callback>) -> Step {
        let cfg = Rc::clone(&self.cfg);
        let Some((_, p)) = provider_of(&cfg, cb.r.provider) else {
            return self.out_of_order("exchange_code");
        };
        let refused = match (&cb.r.iss, cb.meta.iss_parameter) {
            (Some(iss), _) if *iss != p.issuer => {
                Some("the callback's iss is not the provider's issuer")
            }
            (None, true) => Some("the callback has no iss, which the provider sends"),
            _ => None,
        };
        if let Some(why) = refused {
            return self.sign_in_failed(Some((&cb.r.flow, &cb.r.flow_cookie)), 400, why);
        }
        let r = &cb.r;
        let request = token::request(p, &cb.meta, &r.code, &r.redirect_uri, &r.flow.verifier);
        self.state = State::SigningIn(Waiting::Token(cb));
        Step::Fetch(request)
    }

    /// The answer to a [`Step::Fetch`]: the provider's answer, or the network error's
    /// message.
    pub fn fetched(&mut self, result: Result<Inbound, String>) -> Step {
        let State::SigningIn(waiting) = mem::replace(&mut self.state, State::Done) else {
            return self.out_of_order("fetched");
        };
        match waiting {
            Waiting::Metadata(then) => self.metadata_fetched(then, result),
            Waiting::Token(cb) => self.token_fetched(cb, result),
            Waiting::Keys(cb, token) => self.keys_fetched(cb, token, result),
            Waiting::UserInfo(cb, claims, lacking) => {
                self.userinfo_fetched(cb, claims, lacking, result)
            }
            Waiting::Signature(..) => self.out_of_order("fetched"),
        }
    }

    fn metadata_fetched(&mut self, then: Then, result: Result<Inbound, String>) -> Step {
        let i = match &then {
            Then::Redirect { provider, .. } => *provider,
            Then::Callback(r, _) => r.provider,
        };
        let cfg = Rc::clone(&self.cfg);
        let Some((_, p)) = provider_of(&cfg, i) else {
            return self.out_of_order("metadata_fetched");
        };
        let parsed = json_answer(result)
            .and_then(|(doc, answer)| discovery::parse(&p.issuer, &doc).map(|meta| (meta, answer)));
        let (meta, answer) = match parsed {
            Ok(ok) => ok,
            Err(problem) => {
                // Every sign-in gets the 503 at once for a while, rather than wait on
                // a provider that just failed.
                p.cache.lock().down_until = Some(self.now + DOWN_TTL);
                return self.provider_unavailable(i, "metadata", &problem);
            }
        };
        let until = self.now + answer.max_age(DEFAULT_TTL, MIN_TTL, MAX_TTL);
        p.cache.lock().metadata = Some((meta.clone(), until));
        match then {
            Then::Redirect {
                start,
                redirect_uri,
                stale,
                ..
            } => self.redirect_to_provider(i, &meta, &start, &redirect_uri, &stale),
            Then::Callback(r, loaded) => self.exchange_code(Box::new(Callback {
                r: *r,
                loaded,
                meta,
            })),
        }
    }

    fn token_fetched(&mut self, cb: Box<Callback>, result: Result<Inbound, String>) -> Step {
        let cfg = Rc::clone(&self.cfg);
        let Some((_, p)) = provider_of(&cfg, cb.r.provider) else {
            return self.out_of_order("token_fetched");
        };
        let answer = match result {
            Ok(a) => a,
            Err(e) => return self.provider_unavailable(cb.r.provider, "token endpoint", &e),
        };
        let tokens = match token::read(&answer) {
            Ok(t) => t,
            Err(TokenError::Refused(code)) => {
                let why = format!("the provider refused the code: {code}");
                return self.sign_in_failed(Some((&cb.r.flow, &cb.r.flow_cookie)), 400, &why);
            }
            Err(e @ TokenError::Broken(_)) => {
                return self.provider_unavailable(cb.r.provider, "token endpoint", &e.to_string())
            }
        };
        let checked = id_token::parse(&tokens.id_token).and_then(|parsed| {
            id_token::check_claims(
                &parsed.claims,
                &p.issuer,
                &p.client_id,
                &cb.r.flow.nonce,
                self.now,
            )
            .map(|()| parsed)
        });
        match checked {
            Ok(parsed) => {
                let token = Box::new(Token {
                    parsed,
                    access_token: tokens.access_token,
                });
                self.check_signature(cb, token, false)
            }
            Err(why) => self.untrusted(&cb, why),
        }
    }

    /// Has the driver check the ID token's signature with the provider's key; fetches
    /// the keys first when they are not cached, or once more when none has the
    /// token's `kid` (the provider rotated them), at most once a minute.
    fn check_signature(
        &mut self,
        cb: Box<Callback>,
        token: Box<Token>,
        just_fetched: bool,
    ) -> Step {
        let cfg = Rc::clone(&self.cfg);
        let Some((_, p)) = provider_of(&cfg, cb.r.provider) else {
            return self.out_of_order("check_signature");
        };
        let cache = p.cache.lock();
        let Some(keys) = cache.keys(self.now) else {
            drop(cache);
            return self.fetch_keys(cb, token);
        };
        match id_token::verification(&token.parsed, keys) {
            Ok(v) => {
                drop(cache);
                self.state = State::SigningIn(Waiting::Signature(cb, token));
                Step::Verify(v)
            }
            Err(KeyError::UnknownKid) if !just_fetched && cache.may_refetch_keys(self.now) => {
                drop(cache);
                self.fetch_keys(cb, token)
            }
            Err(KeyError::UnknownKid) => {
                drop(cache);
                self.untrusted(&cb, "no key of the provider has the ID token's kid")
            }
            Err(KeyError::Unfit(why)) => {
                drop(cache);
                self.untrusted(&cb, why)
            }
        }
    }

    fn fetch_keys(&mut self, cb: Box<Callback>, token: Box<Token>) -> Step {
        let request = Outbound::get_json(&cb.meta.jwks_uri);
        self.state = State::SigningIn(Waiting::Keys(cb, token));
        Step::Fetch(request)
    }

    fn keys_fetched(
        &mut self,
        cb: Box<Callback>,
        token: Box<Token>,
        result: Result<Inbound, String>,
    ) -> Step {
        let (doc, answer) = match json_answer(result) {
            Ok(ok) => ok,
            Err(problem) => return self.provider_unavailable(cb.r.provider, "keys", &problem),
        };
        let Some(Value::Array(list)) = doc.get("keys") else {
            return self.provider_unavailable(cb.r.provider, "keys", "the key set has no keys");
        };
        let keys: Vec<Map<String, Value>> =
            list.iter().filter_map(|k| k.as_object().cloned()).collect();
        let until = self.now + answer.max_age(DEFAULT_TTL, MIN_TTL, MAX_TTL);
        if let Some((_, p)) = provider_of(&self.cfg, cb.r.provider) {
            let mut cache = p.cache.lock();
            cache.keys = Some((keys, until));
            cache.keys_fetched = Some(self.now);
        }
        self.check_signature(cb, token, true)
    }

    /// The answer to a [`Step::Verify`]: whether the signature verified, or why the
    /// runtime could not check it.
    pub fn verified(&mut self, result: Result<bool, String>) -> Step {
        let (cb, token) = match mem::replace(&mut self.state, State::Done) {
            State::SigningIn(Waiting::Signature(cb, token)) => (cb, token),
            State::Proving(p) => return self.proved(*p, result),
            _ => return self.out_of_order("verified"),
        };
        match result {
            Ok(true) => self.vouched(cb, *token),
            Ok(false) => self.untrusted(&cb, "the ID token's signature does not verify"),
            Err(e) => {
                self.log(Level::Error, "verify_failed", json!({ "error": e }));
                self.untrusted(&cb, "the runtime could not check the ID token's signature")
            }
        }
    }

    /// The ID token is the provider's: asks the userinfo endpoint for the claims it
    /// lacks, if any, then signs the user in.
    fn vouched(&mut self, cb: Box<Callback>, token: Token) -> Step {
        let Token {
            parsed,
            access_token,
        } = token;
        let claims = parsed.claims;
        let lacking = provider_of(&self.cfg, cb.r.provider)
            .map_or(Lacking::Nothing, |(s, p)| identity::lacking(s, p, &claims));
        // A token for a header: printable ASCII only, or no userinfo at all.
        let access_token =
            access_token.filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()));
        let asking = lacking != Lacking::Nothing;
        if let (true, Some(url), Some(access)) =
            (asking, cb.meta.userinfo_endpoint.clone(), access_token)
        {
            self.state = State::SigningIn(Waiting::UserInfo(cb, claims, lacking));
            return Step::Fetch(
                Outbound::get_json(&url).with("authorization", format!("Bearer {access}")),
            );
        }
        self.sign_in_as(cb, claims)
    }

    /// The userinfo endpoint's claims. When they were asked for only claims to copy,
    /// a failure signs the user in without them.
    fn userinfo_fetched(
        &mut self,
        cb: Box<Callback>,
        mut claims: Map<String, Value>,
        lacking: Lacking,
        result: Result<Inbound, String>,
    ) -> Step {
        let info = match json_answer(result) {
            Ok((info, _)) => info,
            Err(problem) if lacking == Lacking::Copied => {
                self.log(
                    Level::Warn,
                    "userinfo_skipped",
                    json!({ "reason": "the userinfo endpoint failed; signed in without the claims only it has", "error": problem }),
                );
                return self.sign_in_as(cb, claims);
            }
            Err(problem) => return self.provider_unavailable(cb.r.provider, "userinfo", &problem),
        };
        match identity::merge_userinfo(&mut claims, info) {
            Ok(()) => self.sign_in_as(cb, claims),
            Err(why) => self.untrusted(&cb, why),
        }
    }

    /// The allow rules, then a new session for the user, as an origin's sign-in makes
    /// one: a new session id, the data replaced.
    fn sign_in_as(&mut self, cb: Box<Callback>, claims: Map<String, Value>) -> Step {
        let cfg = Rc::clone(&self.cfg);
        let Some((s, p)) = provider_of(&cfg, cb.r.provider) else {
            return self.out_of_order("sign_in_as");
        };
        let Callback { r, loaded, .. } = *cb;
        match identity::session_data(s, p, &claims) {
            Ok(data) => {
                self.purpose = Purpose::SignedIn {
                    next: r.flow.next,
                    flow_cookie: r.flow_cookie,
                };
                let changes = Changes {
                    clear: true,
                    set: Some(data),
                    regenerate: true,
                    ..Default::default()
                };
                self.decide(loaded, changes, OriginResponse::default())
            }
            Err(refusal) => {
                self.log(
                    Level::Warn,
                    "sign_in_refused",
                    json!({ "rule": refusal.rule, "provider": p.idp() }),
                );
                let retry = pages::switch_url(&cfg.path_prefix, &r.flow.next, p.name.as_deref());
                let page = pages::refused(refusal.rule, refusal.email.as_deref(), &retry);
                Step::Reply(Reply::new(403, HTML, page).with(
                    "set-cookie",
                    flow::set_cookie(cfg.cookie.secure, &r.flow_cookie, None),
                ))
            }
        }
    }

    /// A sign-in whose session would not fit in a cookie (the `cookie` store): the
    /// provider's claims are too large, and `KEYCARD_OIDC_CLAIMS` can say fewer.
    pub(super) fn sign_in_too_large(&mut self, size: usize) -> Step {
        self.log(
            Level::Error,
            "session_too_large",
            json!({ "cookie_bytes": size, "limit": crate::session::MAX_COOKIE_LEN,
                    "hint": "copy fewer claims with KEYCARD_OIDC_CLAIMS, or use SESSION_STORE=auto or kv" }),
        );
        let cfg = Rc::clone(&self.cfg);
        let page = pages::failed(
            "Your sign-in is too large",
            "The provider sent more about you than fits in this site's session cookie. The site's operator can copy fewer claims with KEYCARD_OIDC_CLAIMS, or keep sessions in KV.",
            &pages::login_url(&cfg.path_prefix, "/", None),
        );
        let mut reply = Reply::new(400, HTML, page);
        if let Purpose::SignedIn { flow_cookie, .. } = &self.purpose {
            reply = reply.with(
                "set-cookie",
                flow::set_cookie(cfg.cookie.secure, flow_cookie, None),
            );
        }
        self.state = State::Done;
        Step::Reply(reply)
    }

    /// The provider's own refusal (`error=access_denied`, say).
    fn provider_said_no(&mut self, flow: &Flow, name: &str, error: &str) -> Step {
        let error = crate::oidc::error_code(error);
        let status = if error == "access_denied" { 403 } else { 400 };
        let why = format!("the provider did not sign the user in: {error}");
        self.sign_in_failed(Some((flow, name)), status, &why)
    }

    /// An ID token, or a userinfo answer, that keycard does not trust.
    fn untrusted(&mut self, cb: &Callback, why: &str) -> Step {
        let why = format!("the provider's answer was not trusted: {why}");
        self.sign_in_failed(Some((&cb.r.flow, &cb.r.flow_cookie)), 400, &why)
    }

    /// A sign-in that ends here: the page says `why`, with a way to start again, and
    /// the flow's cookie is cleared.
    fn sign_in_failed(&mut self, flow: Option<(&Flow, &str)>, status: u16, why: &str) -> Step {
        self.log(
            Level::Warn,
            "sign_in_failed",
            json!({ "reason": why, "status": status }),
        );
        let cfg = Rc::clone(&self.cfg);
        let next = flow.map_or("/", |(f, _)| f.next.as_str());
        let retry = pages::login_url(&cfg.path_prefix, next, None);
        let page = pages::failed(
            "Sign-in failed",
            &format!("Signing in did not work: {why}."),
            &retry,
        );
        let mut reply = Reply::new(status, HTML, page);
        if let Some((_, name)) = flow {
            reply = reply.with(
                "set-cookie",
                flow::set_cookie(cfg.cookie.secure, name, None),
            );
        }
        self.state = State::Done;
        Step::Reply(reply)
    }

    /// The provider could not be reached, or answered outside its protocol: `503`
    /// with `Retry-After`. The flow's cookie stays, so that trying again may finish.
    fn provider_unavailable(&mut self, i: usize, what: &'static str, problem: &str) -> Step {
        let cfg = Rc::clone(&self.cfg);
        let label = provider_of(&cfg, i).map_or("", |(_, p)| p.idp());
        self.log(
            Level::Error,
            "provider_unavailable",
            json!({ "provider": label, "what": what, "error": problem }),
        );
        let page = pages::failed(
            "Signing in is unavailable",
            "The identity provider cannot be reached just now. Please try again in a minute.",
            &pages::login_url(&cfg.path_prefix, "/", None),
        );
        self.state = State::Done;
        Step::Reply(Reply::new(503, HTML, page).with("retry-after", "30"))
    }
}
