//! The `Cookie` request header, split the way RFC 6265bis (section 5.7.3) says a
//! server should: on `;`, trimming only SP and HTAB, the name being what comes before
//! the first `=` and compared byte for byte.
//!
//! Hand-written because the `cookie` crate's parser trims Unicode whitespace, so that
//! `\u{a0}keycard=…` (a name a sibling subdomain can set) would read as `keycard`.
//!
//! One more rule, for safety rather than by the RFC: an HTTP/1 client may send two
//! `Cookie` lines, which the runtime joins with `, `. So a piece that holds a comma is
//! also read as comma-separated sub-pieces, and one named like the session cookie never
//! reaches the origin. It is never read as the session either: a cookie value may hold
//! commas (browsers store `x=1, __Host-keycard=…` as the cookie `x`, which a sibling
//! subdomain can set), so a session found there could be anyone's. Other cookies are
//! forwarded as they came, commas and all.

/// SP and HTAB, the only whitespace RFC 6265bis trims.
const WS: [char; 2] = [' ', '\t'];

/// The pieces of a header: split on `;`, trimmed of SP and HTAB, empty ones dropped.
fn pieces(header: &str) -> impl Iterator<Item = &str> {
    header
        .split(';')
        .map(|p| p.trim_matches(WS))
        .filter(|p| !p.is_empty())
}

/// A piece's name and value. Without `=`, the name is empty and the piece is the value.
fn pair(piece: &str) -> (&str, &str) {
    match piece.split_once('=') {
        Some((n, v)) => (n.trim_matches(WS), v.trim_matches(WS)),
        None => ("", piece),
    }
}

/// The comma sub-pieces of a piece that holds a comma (see the module docs).
fn sub_pieces(piece: &str) -> impl Iterator<Item = &str> {
    piece.split(',').map(|p| p.trim_matches(WS))
}

/// Whether a piece, or one of its comma sub-pieces, has a name that `is` picks.
fn names(piece: &str, is: &impl Fn(&str) -> bool) -> bool {
    is(pair(piece).0) || (piece.contains(',') && sub_pieces(piece).any(|s| is(pair(s).0)))
}

/// The value of every cookie named exactly `name`, in order (never a comma sub-piece:
/// see the module docs), up to a comma. A value in double quotes (allowed by RFC 6265)
/// is unwrapped.
pub fn values<'a>(header: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    pieces(header)
        .map(pair)
        .filter(move |(n, _)| *n == name)
        // A session value never holds a comma: what follows one is another line's.
        .map(|(_, v)| v.split(',').next().unwrap_or("").trim_matches(WS))
        .map(|v| {
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
        })
}

/// Every cookie's name and value, in order, as [`values`] reads them (never a comma
/// sub-piece).
pub fn pairs(header: &str) -> impl Iterator<Item = (&str, &str)> {
    pieces(header).map(pair)
}

/// A `Cookie` header without the session cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stripped {
    /// The session cookie is not in it: forward the header as it came.
    Unchanged,
    /// Nothing else is left: remove the header.
    Empty,
    /// The other cookies, pieces joined with `; `.
    Rest(String),
}

/// `header` without every piece and comma sub-piece named `name`; every other piece is
/// kept byte for byte.
pub fn strip(header: &str, name: &str) -> Stripped {
    strip_where(header, |n| n == name)
}

/// `header` without every piece and comma sub-piece whose name `is` picks (the session
/// cookie and sign-in's flow cookies); every other piece is kept byte for byte.
pub fn strip_where(header: &str, is: impl Fn(&str) -> bool) -> Stripped {
    if !pieces(header).any(|p| names(p, &is)) {
        return Stripped::Unchanged;
    }
    let mut out = String::with_capacity(header.len());
    let mut push = |part: &str, sep: &str| {
        if !out.is_empty() {
            out.push_str(sep);
        }
        out.push_str(part);
    };
    for piece in pieces(header) {
        if !names(piece, &is) {
            push(piece, "; ");
        } else if piece.contains(',') {
            // A comma-joined piece: keep its other sub-pieces.
            let rest: Vec<&str> = sub_pieces(piece)
                .filter(|s| !s.is_empty() && !is(pair(s).0))
                .collect();
            if !rest.is_empty() {
                push(&rest.join(", "), "; ");
            }
        }
    }
    match out.is_empty() {
        true => Stripped::Empty,
        false => Stripped::Rest(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(header: &str) -> Vec<&str> {
        values(header, "kc").collect()
    }

    /// Regression: the `cookie` crate trims Unicode whitespace, so these names read as
    /// the session cookie `kc`, and a sibling subdomain's own valid session replaced
    /// the victim's (the first valid one won).
    #[test]
    fn unicode_space_lookalikes_are_not_the_session_cookie() {
        for space in [
            "\u{a0}",
            "\u{3000}",
            "\u{2000}",
            "\u{85}",
            "\u{feff}",
            "\u{e3}\u{80}\u{80}",
        ] {
            let lookalike = format!("{space}kc=attacker");
            let header = format!("{lookalike}; kc=victim");
            assert_eq!(all(&header), ["victim"], "{space:?}");
            assert_eq!(
                strip(&header, "kc"),
                Stripped::Rest(lookalike.clone()),
                "forwarded byte for byte"
            );
            assert_eq!(strip(&lookalike, "kc"), Stripped::Unchanged);
        }
    }

    #[test]
    fn only_sp_and_htab_are_trimmed_and_names_compare_byte_for_byte() {
        assert_eq!(
            all(" \tkc=a ;kc=b\t; KC=c; kc =d; kc= e"),
            ["a", "b", "d", "e"]
        );
        assert_eq!(
            all("kcx=1; xkc=2; kc"),
            Vec::<&str>::new(),
            "`kc` alone has an empty name"
        );
        assert_eq!(all("kc=\"quoted\"; kc=a=b"), ["quoted", "a=b"]);
    }

    /// Regression: only four candidates were examined, so four junk cookies of the
    /// session's name before the real one hid it (and got it cleared).
    #[test]
    fn every_candidate_is_returned() {
        let header = (0..50).map(|i| format!("kc=junk{i}; ")).collect::<String>() + "kc=real";
        assert_eq!(all(&header).len(), 51);
        assert_eq!(all(&header).last(), Some(&"real"));
    }

    /// Regression: two `Cookie` lines, joined by the runtime with `, `, hid the session
    /// cookie from the reader and carried it to the origin.
    #[test]
    fn comma_joined_cookie_lines_never_forward_the_session_cookie() {
        for (header, want) in [
            ("a=1, kc=S", Stripped::Rest("a=1".into())),
            ("kc=S, b=2", Stripped::Rest("b=2".into())),
            ("a=1; kc=S, b=2", Stripped::Rest("a=1; b=2".into())),
            ("x=1, kc=S; y=2", Stripped::Rest("x=1; y=2".into())),
            ("kc=S, kc=T", Stripped::Empty),
        ] {
            assert_eq!(strip(header, "kc"), want, "{header}");
        }
        // Other cookies keep their commas.
        let h = "prefs={\"a\":1,\"b\":2}; kc=S";
        assert_eq!(
            strip(h, "kc"),
            Stripped::Rest("prefs={\"a\":1,\"b\":2}".into())
        );
        assert_eq!(strip("date=Wed, 21 Oct", "kc"), Stripped::Unchanged);
    }

    /// Found in review: a sibling subdomain may set `x=1, kc=<its own session>` (one
    /// cookie `x`, its value holding a comma); read as a candidate, that session would
    /// beat the victim's, or sign a signed-out victim in (login CSRF).
    #[test]
    fn a_comma_sub_piece_is_never_read_as_the_session() {
        assert_eq!(all("x=1, kc=mallory; kc=victim"), ["victim"]);
        assert_eq!(all("x=1, kc=mallory"), Vec::<&str>::new());
        assert_eq!(
            all("kc=S, b=2"),
            ["S"],
            "a whole piece's value ends at a comma"
        );
        assert_eq!(
            strip("x=1, kc=mallory; kc=victim", "kc"),
            Stripped::Rest("x=1".into())
        );
    }

    #[test]
    fn strip_keeps_other_cookies_and_says_when_nothing_changed() {
        assert_eq!(
            strip("a=1; kc=x; b=2", "kc"),
            Stripped::Rest("a=1; b=2".into())
        );
        assert_eq!(strip("kc=x", "kc"), Stripped::Empty);
        assert_eq!(
            strip("kc=x; kc=y;a=\"q\"", "kc"),
            Stripped::Rest("a=\"q\"".into())
        );
        assert_eq!(strip("kcx=1; flag", "kc"), Stripped::Unchanged);
        assert_eq!(strip("", "kc"), Stripped::Unchanged);
    }
}
