//! Small shared helpers: base64url, strict number parsing, and dotted values.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// base64url without padding, the only encoding keycard writes.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes strict base64url without padding. Returns `None` on any other alphabet,
/// padding or trailing bits.
pub fn unb64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Parses a canonical unsigned decimal (no sign, no leading zeros except "0", at most
/// 19 digits so it cannot overflow). Returns `None` otherwise.
pub fn parse_u64(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > 19 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return None;
    }
    text.parse().ok()
}

/// The three parts of a `a.b.c` value (a compact JWS, a challenge), or `None` for any
/// other number of dots.
pub fn three_parts(text: &str) -> Option<(&str, &str, &str)> {
    let mut parts = text.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), Some(c), None) => Some((a, b, c)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_u64_is_strict() {
        assert_eq!(parse_u64("0"), Some(0));
        assert_eq!(parse_u64("1700000000"), Some(1_700_000_000));
        for bad in [
            "",
            "01",
            "+1",
            "-1",
            " 1",
            "1 ",
            "1e3",
            "99999999999999999999",
        ] {
            assert_eq!(parse_u64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn unb64_refuses_padding_and_standard_alphabet() {
        assert_eq!(unb64("e30").as_deref(), Some(&b"{}"[..]));
        assert_eq!(unb64("e30="), None);
        assert_eq!(unb64("+/8"), None);
    }
}
