//! W: `GET /` answers `{"user": <string or null>, "visits": <n>, "status": ...}` as the
//! workers-rs example does, but keeps `user` and `visits` in plain cookies (no
//! signature, no expiry, nothing forwarded), and counts the visit with a `Set-Cookie`.

use serde_json::json;
use worker::{event, Context, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(req: Request, _env: Env, _ctx: Context) -> Result<Response> {
    if req.path() != "/" {
        return Response::error("not found", 404);
    }
    let cookies = req.headers().get("cookie")?.unwrap_or_default();
    let cookie = |name: &str| {
        cookies
            .split(';')
            .filter_map(|c| c.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_owned())
    };
    let user = cookie("user");
    let seen = cookie("visits").and_then(|v| v.parse::<u64>().ok());
    let visits = seen.unwrap_or(0) + 1;
    let mut res = Response::from_json(&json!({
        "user": user,
        "visits": visits,
        "status": if seen.is_some() { "valid" } else { "none" },
    }))?;
    res.headers_mut().append(
        "set-cookie",
        &format!("visits={visits}; Path=/; HttpOnly; SameSite=Lax; Max-Age=604800"),
    )?;
    Ok(res)
}
