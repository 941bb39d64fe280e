//! Which request paths need a signed-in user (`KEYCARD_REQUIRE`, `KEYCARD_PUBLIC`).
//!
//! Hand-written: no crate decides this, and the decision must be made on the path the
//! origin will serve, never on the raw string, or `/%61dmin` walks past `/admin`.
//!
//! # Reading a path
//!
//! A path is read in its *canonical* form: percent-escapes of unreserved characters
//! (`A-Z a-z 0-9 - . _ ~`) decoded, other escapes kept with upper-case hex, `.` and `..`
//! segments resolved (`..` above the root stays at the root), repeated slashes
//! collapsed, the trailing slash dropped. It is read twice when it holds a `;`: with
//! `;params` cut from each segment (Tomcat and other Java servers serve `/admin;x/y` as
//! `/admin/y`) and without; it is required if either reading is.
//!
//! A path is *ambiguous* when servers disagree on what it means: it holds an encoded
//! `/` (`%2F`), a backslash or `%5C`, NUL (raw or `%00`), or a double escape (`%25`
//! then two hex digits, for an origin that decodes twice). Such a path is also
//! read the generous ways an origin could (every escape decoded until nothing changes,
//! then `\` as `/` or not, whole or cut at NUL, `;params` cut or kept); if any reading
//! falls in a required area, the guard says [`Verdict::Ambiguous`] (the edge answers
//! 400) rather than guess.
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
            // `%25` then two hex digits: an escape that a second decoding turns into
            // something else (`%252F`, `%2561dmin`).
            Some(b'%') => s
                .get(i + 3..i + 5)
                .is_some_and(|h| hex(h[0]).is_some() && hex(h[1]).is_some()),
            _ => false,
        },
        _ => false,
    })
}

/// Resolves dot segments and drops empty ones (and `;params`, with `cut_params`): the
/// canonical path from already-decoded `segments`.
fn resolve<'a>(segments: impl Iterator<Item = &'a str>, cut_params: bool) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in segments {
        let seg = match cut_params {
            true => seg.split(';').next().unwrap_or(""),
            false => seg,
        };
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

/// The canonical reading of `raw` (see the module docs), with `;params` cut from each
/// segment as Java servers do, or kept as other servers do.
pub fn canonical(raw: &str, cut_params: bool) -> String {
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
    resolve(decoded.split('/'), cut_params)
}

/// The generous readings of `raw`: every escape decoded until nothing changes; then
/// each combination of `\` read as `/` or not, the whole of it or the part before the
/// first NUL (where a C string ends), and `;params` cut or kept.
fn generous(raw: &str) -> Vec<String> {
    let mut text = raw.to_owned();
    for _ in 0..4 {
        let once: Vec<u8> = percent_encoding::percent_decode_str(&text).collect();
        let next = String::from_utf8_lossy(&once).into_owned();
        if next == text {
            break;
        }
        text = next;
    }
    let slashed = text.replace('\\', "/");
    let mut readings = Vec::with_capacity(8);
    for decoded in [&text, &slashed] {
        for part in [decoded.as_str(), decoded.split('\0').next().unwrap_or("")] {
            for cut_params in [true, false] {
                readings.push(resolve(part.split('/'), cut_params));
            }
        }
    }
    readings
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

    /// Every reading of `raw_path` that an origin could serve (see the module docs).
    fn readings(raw_path: &str) -> Vec<String> {
        let mut all = vec![canonical(raw_path, true), canonical(raw_path, false)];
        if is_ambiguous(raw_path) {
            all.extend(generous(raw_path));
        }
        all
    }

    /// Whether every reading of `raw_path` is covered by the required prefixes (and no
    /// public one): for an exemption (`KEYCARD_CSRF_EXEMPT`), which must hold however
    /// the origin reads the path, or `/hooks/..;/admin` would reach `/admin` on Tomcat
    /// exempt. `false` when the rules are empty.
    pub fn always_required(&self, raw_path: &str) -> bool {
        !self.is_empty() && Rules::readings(raw_path).iter().all(|p| self.required(p))
    }

    /// The verdict on a request's path (without its query). Costs nothing when the
    /// rules are empty.
    pub fn check(&self, raw_path: &str) -> Verdict {
        if self.is_empty() {
            return Verdict::Open;
        }
        // Java servers cut `;params` before resolving dot segments, others do not:
        // `/admin/..;x/y` is `/y` to one and under `/admin` to the other. Either
        // reading in a required area makes the path required.
        let required = self.required(&canonical(raw_path, true))
            || (raw_path.contains(';') && self.required(&canonical(raw_path, false)));
        match (is_ambiguous(raw_path), required) {
            (true, true) => Verdict::Ambiguous,
            (true, false) if generous(raw_path).iter().any(|p| self.required(p)) => {
                Verdict::Ambiguous
            }
            (_, true) => Verdict::SignInRequired,
            (_, false) => Verdict::Open,
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
            "/admin/..;x/y",
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
            "/%2561dmin",
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
    fn an_exemption_holds_only_when_every_reading_agrees() {
        let hooks = rules("/hooks/", "", false);
        assert!(hooks.always_required("/hooks/pay"));
        assert!(hooks.always_required("/hooks/a;x/b"));
        for path in [
            "/hooks/..;/admin",
            "/hooks%2F..%2F..%2Fadmin",
            "/hooksx",
            "/admin",
        ] {
            assert!(!hooks.always_required(path), "{path}");
        }
        assert!(!Rules::default().always_required("/x"));
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
        assert_eq!(canonical("/a%2fb/%7e/%41", true), "/a%2Fb/~/A");
        assert_eq!(canonical("/caf%c3%a9/", true), "/caf%C3%A9");
        assert_eq!(canonical("/a/%zz/100%", true), "/a/%zz/100%");
        assert_eq!(canonical("/../../x", true), "/x");
        assert_eq!(canonical("/a;p/..;q/b", true), "/b");
        assert_eq!(canonical("/a;p/..;q/b", false), "/a;p/..;q/b");
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
