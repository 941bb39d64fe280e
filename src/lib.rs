//! keycard: signed-cookie sessions at the edge.
//!
//! keycard runs as a Cloudflare Worker in front of an *origin* (usually a legacy app
//! with no session handling of its own). It verifies the browser's session cookie,
//! keeps server-side state in Workers KV when needed, and hands the decoded session to
//! the origin in the `X-Session` request header. The origin changes the session by
//! answering with `X-Session-Set`, `X-Session-Action` and `X-Session-Max-Age`.
//!
//! # Terms, defined once
//!
//! - **session**: what the edge knows about one visitor: its data (a JSON object), its
//!   session id, when it was created, when it ends at the latest (absolute expiry) and
//!   when its cookie was last issued (which drives the sliding idle expiry).
//! - **session id** ([`keys::SessionId`]): 32 random bytes from the platform CSPRNG,
//!   base64url. It is a bearer secret: it only ever travels inside the signed cookie and
//!   is never logged or forwarded.
//! - **handle**: a non-secret, stable name for a session, `HMAC(handle key, session id)`,
//!   forwarded as `X-Session-Id`. Origin logs can carry it without leaking a session.
//! - **cookie**: the signed (or sealed) value the browser holds; see [`codec`].
//! - **record**: the server-side copy of a session's data in KV; see [`record`].
//! - **kid**: a short id of the key a cookie was signed with, derived from the secret.
//! - **user's object**: the Durable Object that keeps one signed-in user's sessions,
//!   for sign-out everywhere; see [`users`].
//!
//! # Shape
//!
//! Everything in this crate except the edge (`src/edge.rs`, `src/js_env.rs`) and the
//! `worker` feature's driver is a pure core: plain functions and types that take `now`
//! (unix seconds) as an argument and never touch the platform, so `cargo test` runs
//! them natively. One request is an [`exchange::Exchange`]: a state
//! machine that returns each step (read or write a KV record, forward, answer) as data.
//! The edge (wasm32 only) reads the Worker's `env` into a [`config::Config`] and exports
//! the exchange as synchronous calls; `src/entry.js`, the Worker's entry, carries out
//! the steps with the Workers runtime.
//!
//! With the `worker` cargo feature, `keycard::worker` drives the same exchange from
//! your own workers-rs `#[event(fetch)]` handler, calling your handler in place of the
//! origin with a typed [`embedded::Session`].
//!
//! # Map
//!
//! Where each part lives, along a request's path (tests sit beside their module):
//!
//! ```text
//! src/lib.rs           crate docs: terms defined once
//! src/config.rs        Config from a lookup function; defaults; errors naming the variable
//! src/config/names.rs  every variable's name; a name keycard does not read, and its likely meaning
//! src/config/guards.rs the guards' variables, read into guards::Guards
//! src/keys.rs          secrets, HKDF purpose keys, key ring, kid, session ids, handles
//! src/codec.rs         the cookie codec: signed and sealed formats
//! src/cookie_header.rs the Cookie header split as RFC 6265bis says (exact names only)
//! src/session.rs       expiry and refresh policy; origin changes -> decisions; Set-Cookie
//! src/record.rs        the KV record and tombstone formats and keys
//! src/control.rs       origin control headers -> changes
//! src/headers.rs       header lists as the edge passes them; the reserved-name (alias) rule;
//!                      other proxies' identity headers
//! src/forward.rs       request rewriting: Cookie, origin URL, X-Forwarded-For
//! src/cross_origin.rs  Sec-Fetch-Site / Origin checks (Go's CrossOriginProtection)
//! src/guards.rs        the guards: signed-in users, login redirects, identity headers, CSRF
//! src/path_guard.rs    which paths need a sign-in: every way an origin reads the path
//! src/endpoints.rs     health, logout, inspect
//! src/jwt.rs           the jwt header format
//! src/users.rs         sign-out everywhere: a user's Durable Object (its logic, and its
//!                      JSON in users/json.rs), user-agent summaries
//! src/exchange.rs      one request as a state machine: each step (KV read/write, forward,
//!                      reply, pass, rewrap) is data; header edits in one wire form
//! src/exchange/        users_flow.rs (when a request asks the user's object, and what it
//!                      tells it); its tests,
//!                      the KV session and sign-out-everywhere scenarios against FakeKv
//! src/testing.rs       test fixtures: one config builder, FakeKv (an in-memory KV driver)
//! src/edge.rs          wasm only: the exchange as synchronous wasm exports
//! src/js_env.rs        env -> Config once per isolate, bindings by kind, log lines (both drivers)
//! src/embedded.rs      the typed Session an in-process handler gets; its edits -> control headers
//! src/worker.rs        the `worker` feature: the exchange driven from a workers-rs handler;
//!                      worker/users.rs, its KeycardUsers Durable Object class
//! src/entry.js         the Worker entry: carries out each step (KV, fetch, a user's object) in JS;
//!                      the KeycardUsers Durable Object class
//! www/                 the demo app (src/) and the inspector (inspector/)
//! examples/            PHP, Python and Node origins; Django with reverse-proxy login;
//!                      workers-rs, keycard inside a Rust Worker
//! tests/e2e/           the end-to-end suite; tests/load/ the load test; fuzz/; bench/
//! ```

#![forbid(unsafe_code)]
// One phase per function, at most 80 lines (clippy.toml); tests may be longer tables.
#![warn(clippy::too_many_lines)]
#![cfg_attr(test, allow(clippy::too_many_lines))]

pub mod codec;
pub mod config;
pub mod control;
pub mod cookie_header;
pub mod cross_origin;
pub mod embedded;
pub mod endpoints;
pub mod exchange;
pub mod forward;
pub mod guards;
pub mod headers;
pub mod jwt;
pub mod keys;
pub mod path_guard;
pub mod record;
pub mod session;
pub mod users;
pub mod util;

#[cfg(test)]
mod testing;

// The standalone Worker's exports; a crate built with the `worker` feature is a
// library inside someone else's Worker, which must not carry them.
#[cfg(all(target_arch = "wasm32", not(feature = "worker")))]
mod edge;
#[cfg(any(target_arch = "wasm32", feature = "worker"))]
mod js_env;
#[cfg(feature = "worker")]
pub mod worker;

/// The crate version, reported by the `health` endpoint.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
