//! HTTP pieces, each a leaf that knows nothing of sessions: header lists and the
//! reserved-name rule, the `Cookie` header, the forwarded URL, how origins read a path, keycard's own outbound requests,
//! and where a request comes from.

pub mod cookie_header;
pub mod cross_origin;
pub mod forward;
pub mod headers;
pub mod outbound;
pub mod path_guard;
