//! The drivers: they carry out the exchange's steps with the platform, and decide
//! nothing. The standalone Worker's entry (`entry.js`, with `edge.rs`) and the
//! `worker` feature's driver inside a workers-rs app share `js_env.rs`.

// The standalone Worker's exports; a crate built with the `worker` feature is a
// library inside someone else's Worker, which must not carry them.
#[cfg(all(target_arch = "wasm32", not(feature = "worker")))]
mod edge;
pub(crate) mod js_env;
#[cfg(feature = "worker")]
pub mod worker;
