//! The session cookie decoder, signed (`v1.`) and sealed (`e1.`).
//!
//! Input: a `mode` byte, then the rest. `mode & 3` picks what the rest is:
//!
//! - `0`: a raw cookie value, as a client could send it;
//! - `1`: a payload, signed as `v1.<kid>.<payload>` with the real key;
//! - `2`: a plaintext (any bytes), sealed with the real key;
//! - `3`: a whole signed part, version and kid included, signed with the real key.
//!
//! Modes 1 to 3 forge with the key, which no client has, to reach the parsing that only
//! runs after the MAC or the AEAD verifies. `mode & 4` signs under the previous key,
//! `mode & 8` binds to the second cookie name.
//!
//! Properties: `decode` never panics; anything it accepts has ordered times, a valid
//! session id and body, a kid the ring knows, re-encodes to exactly the same value (the
//! format is canonical: no second spelling of a cookie verifies), and does not verify
//! under another cookie name.

#![no_main]

use keycard::session::codec::{self, Body, SEALED, SIGNED};
use keycard::crypto::keys::SessionId;
use keycard::util::unb64;
use keycard_fuzz::{keys, ring, seal, sign, Replay, NAMES, NONCE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let keys = keys(mode & 4 != 0);
    let name = NAMES[usize::from(mode >> 3 & 1)];
    let value = match mode & 3 {
        2 => seal(keys, name, rest, NONCE),
        m => {
            let Ok(text) = std::str::from_utf8(rest) else {
                return;
            };
            match m {
                0 => text.to_owned(),
                1 => sign(keys, name, &format!("{SIGNED}.{}.{text}", keys.kid())),
                _ => sign(keys, name, text),
            }
        }
    };
    check(name, &value);
});

fn check(name: &str, value: &str) {
    let ring = ring();
    let Ok(v) = codec::decode(ring, name, value) else {
        return;
    };
    let c = &v.claims;
    assert!(
        c.created <= c.issued && c.issued <= c.abs_exp,
        "times out of order: {c:?}"
    );
    assert!(SessionId::parse(c.sid.as_str()).is_some());
    if let Body::Inline(b) = &c.body {
        assert!(
            !b.is_empty()
                && b.bytes()
                    .all(|x| x.is_ascii_alphanumeric() || x == b'-' || x == b'_')
        );
    }
    let (keys, current) = ring
        .find(&v.kid)
        .expect("accepted under a kid the ring does not know");
    assert_eq!(current, v.current_key);
    // Canonical: encoding the decoded claims again gives the very same value.
    let again = if value.starts_with(&format!("{SEALED}.")) {
        let b = value
            .splitn(3, '.')
            .nth(2)
            .and_then(unb64)
            .expect("accepted sealed value has a box");
        codec::encode_sealed(keys, name, c, &mut Replay(b[..24].to_vec()))
    } else {
        codec::encode_signed(keys, name, c)
    };
    assert_eq!(
        again, value,
        "a second spelling of the same claims verified"
    );

    // Bound to its cookie name.
    let other = if name == NAMES[0] { NAMES[1] } else { NAMES[0] };
    assert!(
        codec::decode(ring, other, value).is_err(),
        "verified under another cookie name"
    );
    assert_eq!(codec::decode(ring, name, value).as_ref(), Ok(&v));
}
