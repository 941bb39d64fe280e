//! What passes between keycard and the origin: the control headers it answers with, and
//! the typed session an in-process handler gets in its place.

pub mod control;
pub mod embedded;
pub mod headers;
