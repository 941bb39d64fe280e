//! Which request paths need a signed-in user (`KEYCARD_REQUIRE`, `KEYCARD_PUBLIC`).
//!
//! Hand-written: no crate decides this, and the decision must be made on the path the
//! origin will serve, never on the raw string, or `/%61dmin` walks past `/admin`.
//!
//! # Reading a path
//!
//! A path is read in its *canonical* form: percent-escapes of unreserved characters
//! (`A-Z a-z 0-9 - . _ ~`) decoded, other escapes kept with upper-case hex, `;params`
//! cut from each segment (Tomcat and other Java servers serve `/admin;x/y` as
//! `/admin/y`), `.` and `..` segments resolved (`..` above the root stays at the root),
//! repeated slashes collapsed, the trailing slash dropped.
//!
//! A path is *ambiguous* when servers disagree on what it means: it holds an encoded
//! `/` (`%2F`), a backslash or `%5C`, NUL (raw or `%00`), or an escape of one of those,
//! of `.` or of `%` behind a `%25` (an origin that decodes twice). Such a path is also
//! read the most generous way an origin could (every escape decoded until nothing
//! changes, `\` as `/`, cut at NUL); if either reading falls in a required area, the
//! guard says [`Verdict::Ambiguous`] (the edge answers 400) rather than guess.
//!
//! # Matching
//!
//! A prefix matches on segment boundaries: `/admin` covers `/admin` and `/admin/x`, not
//! `/administrator`. A trailing slash changes nothing (`/api/` also covers `/api`: for
//! `KEYCARD_REQUIRE` the safer reading). `/` covers everything. A path is required when
//! a `KEYCARD_REQUIRE` prefix covers it and no `KEYCARD_PUBLIC` prefix does. With
//! `ignore_case`, both sides compare without regard to ASCII case.

/// What the guard says of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Anyone may go there.
    Open,
    /// Only a signed-in user may go there.
    SignInRequired,
    /// Its meaning is ambiguous, and one of its readings is in a required area.
    Ambiguous,
}

/// The path rules: required prefixes, public exceptions, and the case rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    require: Vec<String>,
    public: Vec<String>,
    ignore_case: bool,
}

/// Whether `prefix` (without its trailing slash) covers `path` (canonical, no trailing
/// slash) on a segment boundary.
fn covers(prefix: &str, path: &str, ignore_case: bool) -> bool {
    let p = prefix.trim_end_matches('/');
    let head = match path.get(..p.len()) {
        Some(h) => h,
        None => return false,
    };
    let same = match ignore_case {
        true => head.eq_ignore_ascii_case(p),
        false => head == p,
    };
    same && (path.len() == p.len() || path.as_bytes()[p.len()] == b'/')
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).map(|d| d as u8)
}

/// The byte an escape at `s[i..]` (`%XX`) stands for.
fn escape_at(s: &[u8], i: usize) -> Option<u8> {
    (s.get(i) == Some(&b'%')).then_some(())?;
    Some(hex(*s.get(i + 1)?)? * 16 + hex(*s.get(i + 2)?)?)
}

/// Whether a path's meaning depends on the server reading it (see the module docs).
fn is_ambiguous(raw: &str) -> bool {
    let s = raw.as_bytes();
    (0..s.len()).any(|i| match s[i] {
        b'\\' | 0 => true,
        b'%' => match escape_at(s, i) {
            Some(b'/' | b'\\' | 0) => true,
            // `%25` then the hex of `/`, `\`, NUL, `.` or `%`: what a second decoding
            // turns into one of those (`%252F`).
            Some(b'%') => {
                let twice = s
                    .get(i + 3..i + 5)
                    .and_then(|h| Some(hex(h[0])? * 16 + hex(h[1])?));
                matches!(twice, Some(b'/' | b'\\' | 0 | b'.' | b'%'))
            }
            _ => false,
        },
        _ => false,
    })
}

/// Resolves dot segments, drops empty ones and `;params`: the canonical path from
/// already-decoded `segments`.
fn resolve<'a>(segments: impl Iterator<Item = &'a str>) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in segments {
        let seg = seg.split(';').next().unwrap_or("");
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut path = String::with_capacity(64);
    for s in &out {
        path.push('/');
        path.push_str(s);
    }
    if path.is_empty() {
        path.push('/');
    }
    path
}

/// The canonical reading of `raw` (see the module docs).
pub fn canonical(raw: &str) -> String {
    let s = raw.as_bytes();
    let mut decoded = String::with_capacity(raw.len());
    let mut i = 0;
    while i < s.len() {
        match escape_at(s, i) {
            Some(b) if is_unreserved(b) => {
                decoded.push(char::from(b));
                i += 3;
            }
            Some(b) => {
                decoded.push_str(&format!("%{b:02X}"));
                i += 3;
            }
            None => {
                let ch = raw[i..].chars().next().unwrap_or('\u{fffd}');
                decoded.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    resolve(decoded.split('/'))
}

/// The most generous reading of `raw`: every escape decoded until nothing changes, `\`
/// read as `/`, cut at the first NUL.
fn generous(raw: &str) -> String {
    let mut text = raw.to_owned();
    for _ in 0..4 {
        let once: Vec<u8> = percent_encoding::percent_decode_str(&text).collect();
        let next = String::from_utf8_lossy(&once).into_owned();
        if next == text {
            break;
        }
        text = next;
    }
    let cut = text.split('\0').next().unwrap_or("").replace('\\', "/");
    resolve(cut.split('/'))
}

impl Rules {
    /// Parses a comma-separated list of prefixes as a variable holds it. Each must start
    /// with `/` and be a plain path: no `?`, `#`, `%`, `\`, `;`, whitespace or control
    /// characters, no empty, `.` or `..` segment. Empty entries are skipped.
    pub fn parse_prefixes(text: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for p in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad_char = p.chars().any(|c| {
                c.is_control() || c.is_whitespace() || matches!(c, '?' | '#' | '%' | '\\' | ';')
            });
            let inner = p.trim_end_matches('/');
            let bad_segment = inner
                .split('/')
                .skip(1)
                .any(|s| s.is_empty() || s == "." || s == "..");
            if !p.starts_with('/') || bad_char || bad_segment {
                return Err(format!(
                    "has {p:?}; each entry must be a plain path starting with /, such as /admin"
                ));
            }
            out.push(p.to_owned());
        }
        Ok(out)
    }

    /// The rules. `public` prefixes are exceptions to the `require` ones.
    pub fn new(require: Vec<String>, public: Vec<String>, ignore_case: bool) -> Rules {
        Rules {
            require,
            public,
            ignore_case,
        }
    }

    /// Whether no path is required: the guard is off.
    pub fn is_empty(&self) -> bool {
        self.require.is_empty()
    }

    /// Whether the canonical `path` is required.
    fn required(&self, path: &str) -> bool {
        let by = |list: &[String]| list.iter().any(|p| covers(p, path, self.ignore_case));
        by(&self.require) && !by(&self.public)
    }

    /// The verdict on a request's path (without its query). Costs nothing when the
    /// rules are empty.
    pub fn check(&self, raw_path: &str) -> Verdict {
        if self.is_empty() {
            return Verdict::Open;
        }
        let canonical = canonical(raw_path);
        if is_ambiguous(raw_path) {
            if self.required(&canonical) || self.required(&generous(raw_path)) {
                return Verdict::Ambiguous;
            }
            return Verdict::Open;
        }
        match self.required(&canonical) {
            true => Verdict::SignInRequired,
            false => Verdict::Open,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(require: &str, public: &str, ignore_case: bool) -> Rules {
        Rules::new(
            Rules::parse_prefixes(require).unwrap(),
            Rules::parse_prefixes(public).unwrap(),
            ignore_case,
        )
    }

    fn admin() -> Rules {
        rules("/admin, /api/", "/api/public/, /login", false)
    }

    use Verdict::*;

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        let r = admin();
        for (path, want) in [
            ("/admin", SignInRequired),
            ("/admin/", SignInRequired),
            ("/admin/x", SignInRequired),
            ("/administrator", Open),
            ("/adminx/y", Open),
            ("/api", SignInRequired),
            ("/api/v1", SignInRequired),
            ("/api/public/x", Open),
            ("/apix", Open),
            ("/login", Open),
            ("/", Open),
            ("", Open),
            ("*", Open),
        ] {
            assert_eq!(r.check(path), want, "{path}");
        }
        let all = rules("/", "/static/, /login", false);
        assert_eq!(all.check("/anything/at/all"), SignInRequired);
        assert_eq!(all.check("/"), SignInRequired);
        assert_eq!(all.check("/static/app.css"), Open);
        assert_eq!(all.check("/static/../admin"), SignInRequired);
    }

    /// Each trick an attacker tries to walk past `/admin` unauthenticated.
    #[test]
    fn every_spelling_of_a_required_path_is_required() {
        let r = admin();
        for path in [
            "/%61dmin/x",
            "/%61%64%6D%69%6E",
            "/admin/../admin/x",
            "//admin/x",
            "/./admin/x",
            "/public/../admin",
            "/login/../admin",
            "/x/%2e%2e/admin",
            "/%2E%2E/admin",
            "/admin;jsessionid=x",
            "/admin;x/y",
            "/api/public/../../api/v1",
            "/api/./public/..//v1",
        ] {
            assert_eq!(r.check(path), SignInRequired, "{path}");
        }
    }

    #[test]
    fn ambiguous_paths_in_a_required_area_are_refused() {
        let r = admin();
        for path in [
            "/admin%2Fx",
            "/admin%2fx",
            "/admin\\x",
            "/admin%5cx",
            "/admin%5Cx",
            "/admin%00",
            "/admin\0.png",
            "/static%2F..%2Fadmin",
            "/x/..%2F..%2Fadmin",
            "/admin%252F",
            "/x/%252e%252e/admin",
            "/login%2F..%2Fadmin",
        ] {
            assert_eq!(r.check(path), Ambiguous, "{path:?}");
        }
        // Ambiguous, but nowhere near a required area: it goes through.
        for path in ["/files%2Fa", "/static\\x", "/a%00b", "/100%25off"] {
            assert_eq!(r.check(path), Open, "{path:?}");
        }
    }

    #[test]
    fn case_is_ignored_only_when_asked() {
        assert_eq!(admin().check("/ADMIN/x"), Open);
        assert_eq!(admin().check("/Admin"), Open);
        let iis = rules("/admin", "/admin/public", true);
        assert_eq!(iis.check("/ADMIN/x"), SignInRequired);
        assert_eq!(iis.check("/%41dmin"), SignInRequired);
        assert_eq!(iis.check("/ADMIN/PUBLIC/x"), Open);
    }

    #[test]
    fn other_escapes_stay_encoded_with_upper_case_hex() {
        assert_eq!(canonical("/a%2fb/%7e/%41"), "/a%2Fb/~/A");
        assert_eq!(canonical("/caf%c3%a9/"), "/caf%C3%A9");
        assert_eq!(canonical("/a/%zz/100%"), "/a/%zz/100%");
        assert_eq!(canonical("/../../x"), "/x");
    }

    #[test]
    fn no_rules_cost_nothing_and_bad_prefixes_are_refused() {
        let off = Rules::default();
        assert!(off.is_empty());
        assert_eq!(off.check("/admin%2F"), Open);
        for bad in [
            "admin", "/a?b", "/a#b", "/a%2F", "/a\\b", "/a b", "/a//b", "/a/../b", "/a;x",
        ] {
            assert!(Rules::parse_prefixes(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Rules::parse_prefixes(" /admin , ,/api/ ").unwrap(),
            ["/admin", "/api/"]
        );
    }
}
