//! The sealed box both of keycard's sealed values use, the `e1` cookie and a sign-in's
//! flow cookie: a 24-byte random nonce, then the XChaCha20-Poly1305 ciphertext, then its
//! 16-byte tag.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use super::keys::Key;

/// Why a box did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than a nonce and a tag.
    Short,
    /// The tag does not verify under the key and the associated data.
    Forged,
}

/// Seals `plain` under `key` with associated data `aad` and the given `nonce`.
pub fn seal_box(key: &Key, nonce: &[u8; 24], aad: &[u8], plain: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.bytes().into());
    let ct = cipher
        .encrypt(XNonce::from_slice(nonce), Payload { msg: plain, aad })
        .expect("XChaCha20-Poly1305 encryption of a short payload cannot fail");
    let mut sealed = Vec::with_capacity(24 + ct.len());
    sealed.extend_from_slice(nonce);
    sealed.extend_from_slice(&ct);
    sealed
}

/// Opens a box made by [`seal_box`] and returns the plaintext.
pub fn open_box(key: &Key, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    if sealed.len() < 24 + 16 {
        return Err(OpenError::Short);
    }
    let (nonce, ct) = sealed.split_at(24);
    XChaCha20Poly1305::new(key.bytes().into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| OpenError::Forged)
}
