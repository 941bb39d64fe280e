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

#![forbid(unsafe_code)]

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
