//! Keys and signatures: the leaves that everything which signs, seals or names a
//! session stands on.

pub mod jws;
pub mod jwt;
pub mod keys;
pub mod sealed_box;
