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
//! - **session id** ([`crypto::keys::SessionId`]): 32 random bytes from the platform CSPRNG,
//!   base64url. It is a bearer secret: it only ever travels inside the signed cookie and
//!   is never logged or forwarded.
//! - **handle**: a non-secret, stable name for a session, `HMAC(handle key, session id)`,
//!   forwarded as `X-Session-Id`. Origin logs can carry it without leaking a session.
//! - **cookie**: the signed (or sealed) value the browser holds; see [`session::codec`].
//! - **record**: the server-side copy of a session's data in KV; see [`session::record`].
//! - **kid**: a short id of the key a cookie was signed with, derived from the secret.
//! - **user's object**: the Durable Object that keeps one signed-in user's sessions,
//!   for sign-out everywhere; see [`users`].
//!
//! # Shape
//!
//! Everything in this crate except the drivers (`src/driver/`) is a pure core: plain
//! functions and types that take `now` (unix seconds) as an argument and never touch
//! the platform, so `cargo test` runs them natively. One request is an
//! [`exchange::Exchange`]: a state machine that returns each step (read or write a KV
//! record, forward, answer) as data. The edge (wasm32 only) reads the Worker's `env`
//! into a [`config::Config`] and exports the exchange as synchronous calls;
//! `src/driver/entry.js`, the Worker's entry, carries out the steps with the Workers
//! runtime.
//!
//! With the `worker` cargo feature, `keycard::worker` drives the same exchange from
//! your own workers-rs `#[event(fetch)]` handler, calling your handler in place of the
//! origin with a typed [`origin::embedded::Session`].
//!
//! # Map
//!
//! The folders go by layer, and dependencies point one way, from the top of this list
//! down: a request starts in a driver, the exchange alone orchestrates it, and what it
//! calls is configuration, policy or a leaf, none of which calls back up.
//!
//! ```text
//! src/driver/    the platform: entry.js (the standalone Worker's entry: it carries out
//!                each step in JS, and holds the KeycardUsers class) with edge.rs (the
//!                exchange as synchronous wasm exports); js_env.rs (env -> Config once
//!                per isolate, bindings by kind, log lines); worker.rs, the `worker`
//!                feature's driver inside a workers-rs app, with worker/users.rs, its
//!                KeycardUsers Durable Object class, and worker/provider.rs, sign-in's
//!                fetches and signature checks
//! src/exchange/  one request as a state machine whose steps are data: mod.rs (the
//!                machine, how a request starts and is routed); step.rs (what crosses
//!                to and from a driver); wire.rs (header edits, and their text for JS);
//!                endpoints.rs (keycard's own paths: health, logout, sessions,
//!                inspect, sign-in's login and callback); proxy.rs (a request for the
//!                origin: guards, the session loaded, the forward); sign_in.rs (a
//!                sign-in with an identity provider: the redirect, the callback's
//!                checks, the code exchange, the keys, the signature, the session);
//!                pages.rs (the pages keycard shows a person); users_flow.rs (when a request asks the user's
//!                object, and what it tells it); writes.rs (the origin's answer: its
//!                changes, the writes they take, the response rewrapped); failure.rs
//!                (what fails a request, answered in one place); its tests: single
//!                steps (tests.rs), and whole requests through harness.rs's World (KV
//!                sessions, sign-out everywhere, device-bound sessions in the users'
//!                objects) against FakeKv
//! src/config/    Config from a lookup function, with each field's default (mod.rs);
//!                vars.rs (the reader, value types, the error naming the variable);
//!                per concern: cookie.rs, origin.rs, guards.rs, oidc.rs; names.rs (every
//!                variable's name, and the likely meaning of one keycard does not read)
//! src/origin/    what passes between keycard and the origin: headers.rs (what it is
//!                told: X-Session and its companions), control.rs (its control headers
//!                -> session changes), embedded.rs (the typed Session an in-process
//!                handler gets, its edits -> control headers)
//! src/session/   the session (mod.rs: the model, expiry and refresh); read.rs (from
//!                the Cookie header); write.rs (origin changes -> decisions, Set-Cookie,
//!                KV writes); changes.rs (what an origin asks); codec.rs, the cookie's
//!                signed and sealed formats; record.rs, the KV record and tombstone
//! src/oidc/      signing in with OpenID Connect, the relying party's rules: mod.rs
//!                (the settings, the per-isolate cache of a provider's metadata and
//!                keys); discovery.rs, flow.rs (a sign-in in flight, sealed in its
//!                cookie), token.rs, id_token.rs (the token's algorithm, key and
//!                claims), identity.rs (the user, the allow rules, the session data)
//! src/dbsc/      device-bound sessions, the protocol's rules (the endpoints are the
//!                exchange's device.rs; a binding is kept in a KV record or in a user's
//!                object): mod.rs (the binding), challenge.rs, proof.rs (a browser's
//!                dbsc+jwt and the bound key), short_cookie.rs, wire.rs (the headers
//!                and the configuration)
//! src/guard.rs   the guards: signed-in users, login redirects, identity headers, CSRF
//! src/users/     sign-out everywhere: a user's Durable Object (its logic, and its JSON
//!                in json.rs), user-agent summaries
//! src/http/      HTTP pieces: headers.rs (header lists as the edge passes them, the
//!                reserved-name rule, other proxies' identity headers), cookie_header.rs
//!                (the Cookie header split as RFC 6265bis says), forward.rs (the origin
//!                URL, X-Forwarded-For), path_guard.rs (which paths need a sign-in: every
//!                way an origin reads a path), cross_origin.rs (Sec-Fetch-Site and
//!                Origin, as Go's CrossOriginProtection), outbound.rs (keycard's own
//!                requests to an identity provider, and their answers)
//! src/crypto/    keys.rs (secrets, HKDF purpose keys, the key ring, kid, session ids,
//!                handles), sealed_box.rs (XChaCha20-Poly1305), jwt.rs (the jwt header
//!                format), jws.rs (others' signed JWTs: the algorithms keycard accepts
//!                and the WebCrypto check of each)
//! src/util.rs    base64url and strict numbers
//! src/testing.rs test fixtures: one config builder, FakeKv (an in-memory KV driver)
//! ```
//!
//! Outside `src/`: `www/` holds the demo app and the inspector; `examples/` the PHP,
//! Python and Node origins, Django with reverse-proxy login, and keycard inside a Rust
//! Worker; `tests/e2e/` the end-to-end suite, beside `tests/load/`, `fuzz/` and
//! `bench/`.

#![forbid(unsafe_code)]
// One phase per function, at most 80 lines (clippy.toml); tests may be longer tables.
#![warn(clippy::too_many_lines)]
#![cfg_attr(test, allow(clippy::too_many_lines))]

// The modules are the contributors' map (`cargo doc`). For an embedder, who builds
// with the `worker` feature, they are internals (public only for the fuzz targets, the
// test vectors and the benches), and the docs show `keycard::worker` alone.
#[cfg_attr(feature = "worker", doc(hidden))]
pub mod config;
#[cfg_attr(feature = "worker", doc(hidden))]
pub mod crypto;
#[cfg_attr(feature = "worker", doc(hidden))]
pub mod dbsc;
#[cfg_attr(feature = "worker", doc(hidden))]
pub mod exchange;
#[cfg_attr(feature = "worker", doc(hidden))]
pub mod guard;
#[cfg_attr(feature = "worker", doc(hidden))]
pub mod http;
#[cfg_attr(feature = "worker", doc(hidden))]
pub mod oidc;
#[cfg_attr(feature = "worker", doc(hidden))]
pub mod origin;
#[cfg_attr(feature = "worker", doc(hidden))]
pub mod session;
#[cfg_attr(feature = "worker", doc(hidden))]
pub mod users;
#[cfg_attr(feature = "worker", doc(hidden))]
pub mod util;

#[cfg(test)]
mod testing;

#[cfg(any(target_arch = "wasm32", feature = "worker"))]
mod driver;
#[cfg(feature = "worker")]
pub use driver::worker;

/// The crate version, reported by the `health` endpoint.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
