//! A Rust Worker with keycard sessions: a visit counter with sign-in and sign-out.
//!
//! - `GET /` answers `{"user": <string or null>, "visits": <n>, "status": "<status>"}`
//!   and counts the visit in the session;
//! - `POST /login?user=NAME` signs `NAME` in, regenerates the session (against
//!   session fixation) and answers `303` to `/`;
//! - `POST /logout` destroys the session and answers `303` to `/`;
//! - `POST /logout-others` ends the user's other sessions ("sign out everywhere
//!   else", through the `KeycardUsers` Durable Object this Worker exports) and answers
//!   `303` to `/`;
//! - `GET /headers` answers the request headers the handler received (keycard's
//!   `X-Session*` headers, never the session cookie). It also sets a cookie of its own,
//!   which reaches the browser next to keycard's, and tries an `X-Session-Set` header,
//!   which keycard removes and ignores: the session changes through `Session` only.

// Sign out everywhere: the class of the users' objects, bound in wrangler.toml.
pub use keycard::worker::KeycardUsers;
use keycard::worker::{Keycard, Session};
use serde_json::{json, Map, Value};
use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
    Keycard::from_env(&env).serve(req, &env, app).await
}

async fn app(req: Request, session: &mut Session) -> Result<Response> {
    let url = req.url()?;
    // By the method's name: `worker::Method` reads a method it does not know (PROPFIND)
    // as `Get`, and this GET branch changes the session.
    let method = req.inner().method();
    match (method.as_str(), url.path()) {
        ("GET", "/") => {
            let visits = session.get::<u64>("visits")?.unwrap_or(0) + 1;
            session.insert("visits", visits)?;
            Response::from_json(&json!({
                "user": session.get::<String>("user")?,
                "visits": visits,
                "status": session.status().as_str(),
            }))
        }
        ("POST", "/login") => {
            let Some((_, user)) = url.query_pairs().find(|(k, _)| k == "user") else {
                return Response::error("user is required", 400);
            };
            session.insert("user", user.as_ref())?;
            session.regenerate();
            see_other("/")
        }
        ("POST", "/logout") => {
            session.destroy();
            see_other("/")
        }
        ("POST", "/logout-others") => {
            session.destroy_others();
            see_other("/")
        }
        ("GET", "/headers") => {
            let seen: Map<String, Value> = req
                .headers()
                .entries()
                .map(|(name, value)| (name, Value::String(value)))
                .collect();
            let mut res = Response::from_json(&seen)?;
            res.headers_mut()
                .append("set-cookie", "theme=dark; Path=/")?;
            res.headers_mut()
                .set("x-session-set", r#"{"user":"mallory"}"#)?;
            Ok(res)
        }
        _ => Response::error("not found", 404),
    }
}

fn see_other(location: &str) -> Result<Response> {
    let mut res = Response::empty()?.with_status(303);
    res.headers_mut().set("location", location)?;
    Ok(res)
}
