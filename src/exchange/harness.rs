//! The one driver of whole exchanges in the core's tests: browsers with a cookie jar,
//! and a [`World`] that runs each request against [`FakeKv`] and the users' objects
//! (their real logic), the way quinn's `Pair::drive` runs a connection pair. The KV
//! scenarios and the sign-out-everywhere scenarios both go through it.

use std::rc::Rc;

use serde_json::Value;

use super::*;
use crate::config::Config;
use crate::http::headers::HeaderList;
use crate::origin::headers::SessionHeaders;
use crate::testing::{config, CountingEntropy, FakeKv, T0};
use crate::util::unb64;

/// One browser: a cookie jar of the session cookie, any other cookies it sends
/// (`name=value; ...`) as they are, and any other request headers (`name:value` lines).
#[derive(Default, Clone)]
pub(super) struct Browser {
    pub(super) jar: Option<String>,
    pub(super) others: String,
    pub(super) headers: String,
}

/// What came of one request.
#[derive(Debug)]
pub(super) struct Seen {
    /// What the origin was told, when it was asked at all.
    pub(super) origin: Option<SessionHeaders>,
    /// The final step.
    pub(super) last: Step,
}

impl Seen {
    /// The status the origin was told.
    pub(super) fn status(&self) -> &'static str {
        self.origin.as_ref().map_or("not forwarded", |o| o.status)
    }

    /// The user the origin was told about.
    pub(super) fn user(&self) -> Option<String> {
        let data = self.origin.as_ref()?.session.as_ref()?;
        let v: Value = serde_json::from_slice(&unb64(data)?).ok()?;
        v["user"].as_str().map(str::to_owned)
    }

    /// The session data the origin was told.
    pub(super) fn data(&self) -> Value {
        let data = self.origin.as_ref().and_then(|o| o.session.as_ref());
        serde_json::from_slice(&unb64(data.expect("a session")).unwrap()).unwrap()
    }

    pub(super) fn handle(&self) -> String {
        self.origin
            .as_ref()
            .and_then(|o| o.handle.clone())
            .expect("a handle")
    }

    pub(super) fn reply(&self) -> &Reply {
        match &self.last {
            Step::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }
}

pub(super) fn users() -> Bindings {
    Bindings {
        kv: Binding::Present,
        users: Binding::Present,
        ..Default::default()
    }
}

/// The platform: KV and the users' objects, and the clock.
pub(super) struct World {
    pub(super) cfg: Config,
    pub(super) bindings: Bindings,
    /// KV and the users' objects.
    pub(super) p: FakeKv,
    /// The clock of the next request.
    pub(super) now: u64,
    pub(super) logs: Vec<Log>,
}

impl World {
    /// A Worker with KV and the users' objects, configured with `pairs`.
    pub(super) fn new(pairs: &[(&str, &str)]) -> World {
        World::with(pairs, users())
    }

    /// A Worker with these bindings, configured with `pairs`.
    pub(super) fn with(pairs: &[(&str, &str)], bindings: Bindings) -> World {
        let mut p = FakeKv::default();
        p.users.country = Some("de");
        World {
            cfg: config(pairs),
            bindings,
            p,
            now: T0,
            logs: Vec::new(),
        }
    }

    /// What the origin would be told about `b`'s session on its next request (KV read
    /// included), or the step that comes instead of the forward; nothing is answered.
    pub(super) fn peek(&mut self, b: &Browser) -> Result<SessionHeaders, Step> {
        match self.begin(b, "GET", "/").1 {
            Step::Forward(f) => Ok(f.session),
            other => Err(other),
        }
    }

    /// Starts a request from `b` and carries it out until it is forwarded or answered.
    pub(super) fn begin(
        &mut self,
        b: &Browser,
        method: &str,
        path: &str,
    ) -> (Exchange<CountingEntropy>, Step) {
        self.p.now = self.now;
        let mut headers =
            String::from("user-agent:Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0\n");
        let mut cookies: Vec<String> = b
            .jar
            .iter()
            .map(|v| format!("{}={v}", self.cfg.cookie.name))
            .collect();
        cookies.extend((!b.others.is_empty()).then(|| b.others.clone()));
        if !cookies.is_empty() {
            headers.push_str(&format!("cookie:{}\n", cookies.join("; ")));
        }
        headers.push_str(&b.headers);
        let url = format!("https://app.example{path}");
        let req = Incoming {
            method,
            url: &url,
            headers: HeaderList::new(&headers),
        };
        let entropy = CountingEntropy(self.now as u8 ^ b.jar.as_ref().map_or(0, |j| j.len() as u8));
        let (mut ex, step) = Exchange::start(
            Rc::new(self.cfg.clone()),
            self.bindings,
            &req,
            self.now,
            entropy,
        );
        let step = self.p.drive(&mut ex, step);
        (ex, step)
    }

    /// The origin's 200 with `control` headers to a request `begin` forwarded; returns
    /// the final step, whose cookie `b` keeps.
    pub(super) fn answer(
        &mut self,
        ex: &mut Exchange<CountingEntropy>,
        b: &mut Browser,
        control: &[(&str, &str)],
    ) -> Step {
        let h: String = control.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
        let answered = ex.answered(&Answer {
            status: 200,
            headers: HeaderList::new(&h),
        });
        let last = self.p.drive(ex, answered);
        self.end(ex, b, last)
    }

    /// The end of a request: its logs kept, its cookie in `b`'s jar.
    pub(super) fn end(
        &mut self,
        ex: &mut Exchange<CountingEntropy>,
        b: &mut Browser,
        last: Step,
    ) -> Step {
        self.logs.extend(ex.take_logs());
        let set_cookie = match &last {
            Step::Rewrap(r) => r.set_cookie.clone(),
            Step::Reply(r) => r
                .headers
                .iter()
                .filter(|(n, _)| *n == "set-cookie")
                .map(|(_, v)| v.clone())
                .find(|v| v.starts_with(&format!("{}=", self.cfg.cookie.name))),
            _ => None,
        };
        if let Some(sc) = set_cookie {
            let value = sc.split(';').next().unwrap().split_once('=').unwrap().1;
            b.jar = (!value.is_empty()).then(|| value.to_owned());
        }
        last
    }

    /// One request from `b`; the origin answers 200 with `control` headers.
    pub(super) fn go(
        &mut self,
        b: &mut Browser,
        method: &str,
        path: &str,
        control: &[(&str, &str)],
    ) -> Seen {
        let (mut ex, step) = self.begin(b, method, path);
        match step {
            Step::Forward(f) => Seen {
                origin: Some(f.session.clone()),
                last: self.answer(&mut ex, b, control),
            },
            other => Seen {
                origin: None,
                last: self.end(&mut ex, b, other),
            },
        }
    }

    /// Signs `b` in as `user`, the way an app should: `Set` and `regenerate`.
    pub(super) fn sign_in(&mut self, b: &mut Browser, user: &str) -> Seen {
        let set = format!(r#"{{"user":"{user}"}}"#);
        let s = self.go(
            b,
            "POST",
            "/login",
            &[("x-session-set", &set), ("x-session-action", "regenerate")],
        );
        self.now += 1;
        s
    }

    pub(super) fn ops(&mut self) -> Vec<String> {
        self.p.users.take_ops()
    }

    pub(super) fn logged(&self, event: &str) -> bool {
        self.logs.iter().any(|l| l.event == event)
    }
}

/// The app's answer to a second sign-in step: a change, and a new id (`regenerate`).
pub(super) const STEP_UP: [(&str, &str); 2] = [
    ("x-session-set", r#"{"mfa":true}"#),
    ("x-session-action", "regenerate"),
];

/// A request from `b` that is forwarded and left waiting for the origin's answer.
pub(super) fn start_request(
    w: &mut World,
    b: &Browser,
    method: &str,
    path: &str,
) -> Exchange<CountingEntropy> {
    let (ex, step) = w.begin(b, method, path);
    assert!(matches!(step, Step::Forward(_)), "{step:?}");
    ex
}

/// The request headers of a refresh of the session the browser knows as `handle`, with
/// a proof of the shape Chromium sends for `challenge` (its signature is the driver's
/// to check: these tests answer for WebCrypto).
pub(super) fn refresh_headers(handle: &str, challenge: &str) -> String {
    let proof = crate::testing::compact_jws(
        r#"{"alg":"ES256","typ":"dbsc+jwt"}"#,
        format!(r#"{{"jti":"{challenge}"}}"#),
        &[7u8; 64],
    );
    format!("sec-secure-session-id:{handle}\nsecure-session-response:{proof}\n")
}

/// What `b`'s session cookie says.
pub(super) fn claims_of(w: &World, b: &Browser) -> crate::session::codec::Claims {
    crate::session::codec::decode(&w.cfg.keys, &w.cfg.cookie.name, b.jar.as_deref().unwrap())
        .unwrap()
        .claims
}
