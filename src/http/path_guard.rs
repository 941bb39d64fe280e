//! Which request paths need a signed-in user (`KEYCARD_REQUIRE`, `KEYCARD_PUBLIC`), and
//! which are exempt from cross-origin protection (`KEYCARD_CSRF_EXEMPT`).
//!
//! Hand-written: no crate decides this, and the decision must be made on the paths the
//! origin could serve, never on the raw string, or `/%61dmin` walks past `/admin`.
//!
//! # Two directions
//!
//! Each direction errs on its own safe side:
//!
//! - **What must be protected** ([`Rules`]' required prefixes) is matched as generously
//!   as any common origin reads a path. A required prefix is a *raw* prefix, matched
//!   without regard to ASCII case: `/admin` covers `/Admin`, `/admin.`, `/admin%20` and
//!   `/administrator` (nginx's prefix `location`s and case-insensitive routers such as
//!   Express serve those as the admin area). A trailing `/` keeps it to the segment:
//!   `/admin/` covers `/admin` and what is below it, not `/administrator`.
//! - **What is exempt** ([`Rules`]' public prefixes, and [`Exemptions`]) is matched
//!   strictly: on segment boundaries (`/login` covers `/login`, `/login/x` and
//!   `/login;jsessionid=…`, not `/login.php`), in exact case unless `ignore_case`. A
//!   trailing `/` changes nothing. What an exempt prefix covers, it covers with its
//!   script readings (below): `/index.php/login` listed public stays public.
//!
//! A path is required when some reading `r` of it is covered by a required prefix and
//! that same `r` by no public one. An exemption holds only when every reading of the
//! path falls in it.
//!
//! # Readings
//!
//! The guard reads the request's path, and its query when that starts with `/` (up to
//! the first `&`): CodeIgniter serves `/?/admin` and `/index.php?/admin` as `/admin`.
//!
//! - The *canonical* reading: percent-escapes of unreserved characters
//!   (`A-Z a-z 0-9 - . _ ~`) decoded, other escapes kept with upper-case hex, `.` and
//!   `..` segments resolved (`..` above the root stays at the root), repeated slashes
//!   collapsed, the trailing slash dropped.
//! - With a `;`, also `;params` cut from each segment (Tomcat and other Java servers
//!   serve `/admin;x/y` as `/admin/y`).
//! - With an escape, a backslash or NUL, the *generous* readings: every escape decoded
//!   until nothing changes (nginx decodes before it picks a `location`; an origin may
//!   decode twice), then each combination of `\` read as `/` or not, the whole path or
//!   the part before the first NUL, and `;params` cut or kept.
//! - Of each of those, also the reading with `İ`, `ı`, `ſ` and the Kelvin sign as `i`,
//!   `i`, `s` and `k`: Java's `equalsIgnoreCase` and Python's `re.I` take them for those
//!   ASCII letters, and JavaScript's `/iu` the last two.
//! - Of each, the *script* readings: the path with everything up to and including a
//!   segment that names a script removed, when something is left, since a front
//!   controller routes on the rest (`PATH_INFO`): `/index.php/admin` reads as `/admin`.
//!   See [`SCRIPT_EXTENSIONS`] for which segments count.
//!
//! A path is *ambiguous* when servers disagree on what it means: it holds an encoded
//! `/` (`%2F`), a backslash or `%5C`, NUL (raw or `%00`), or a double escape (`%25`
//! then two hex digits, for an origin that decodes twice). If any reading of an
//! ambiguous path is required, the guard says [`Verdict::Ambiguous`] (the edge answers
//! 400) rather than guess.

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

/// The endings of a segment that names a script a server runs with the rest of the
/// path as its `PATH_INFO` (compared without regard to case):
///
/// - `php` and its old and packaged forms: PHP's built-in server, php-fpm behind nginx
///   (`fastcgi_split_path_info`) and Apache's PHP handlers (Debian's runs
///   `.ph(ar|p|tml)`) all pass the rest as `PATH_INFO`, and Laravel, Symfony,
///   CodeIgniter and Slim route on it;
/// - `cgi`, `fcgi`, `pl`, `py`: CGI and FastCGI scripts get `PATH_INFO` (RFC 3875), from
///   Apache's `mod_cgi` to the `dispatch.fcgi` of shared hosts;
/// - `asp`, `aspx`, `asmx`, `ashx`: IIS hands the rest to ASP.NET as
///   `Request.PathInfo` (`service.asmx/Method` routes on it), and to classic ASP where
///   its handler allows path info;
/// - `cfm`: ColdFusion's `index.cfm/path` URLs (FW/1, ColdBox).
///
/// Not `jsp`: servlet containers match an extension on the last segment only, so
/// Tomcat serves `/x.jsp/admin` from its default servlet, never from the JSP.
pub const SCRIPT_EXTENSIONS: [&str; 18] = [
    "php", "php3", "php4", "php5", "php7", "php8", "phtml", "phar", "cgi", "fcgi", "pl", "py",
    "asp", "aspx", "asmx", "ashx", "cfm", "cfml",
];

/// The letters outside ASCII that case-insensitive matchers take for ASCII ones.
const FOLDED: [char; 4] = ['\u{130}', '\u{131}', '\u{17f}', '\u{212a}'];

/// `c`, or the ASCII letter that case-insensitive matchers take `İ`, `ı`, `ſ` and the
/// Kelvin sign for (see the module docs).
fn fold(c: char) -> char {
    match c {
        '\u{130}' | '\u{131}' => 'i',
        '\u{17f}' => 's',
        '\u{212a}' => 'k',
        c => c,
    }
}

/// The path rules: required prefixes, public exceptions, and the case rule of the
/// exceptions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    require: Vec<String>,
    public: Vec<String>,
    ignore_case: bool,
}

/// Exempt path prefixes (`KEYCARD_CSRF_EXEMPT`), matched strictly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exemptions {
    prefixes: Vec<String>,
    ignore_case: bool,
}

/// Whether the required `prefix` reaches `path` (a reading): as a raw prefix, without
/// regard to ASCII case; a prefix ending in `/` also reaches the path without it.
fn reaches(prefix: &str, path: &str) -> bool {
    let head = path.as_bytes().get(..prefix.len());
    head.is_some_and(|h| h.eq_ignore_ascii_case(prefix.as_bytes()))
        || prefix
            .strip_suffix('/')
            .is_some_and(|p| !p.is_empty() && path.eq_ignore_ascii_case(p))
}

/// Whether the exempt `prefix` (a trailing slash changes nothing) covers `path` (a
/// reading, without a trailing slash) on a segment boundary, `;params` included
/// (`/login;jsessionid=…`, where Tomcat sends a first visit's login form).
fn within(prefix: &str, path: &str, ignore_case: bool) -> bool {
    let p = prefix.trim_end_matches('/');
    let Some(head) = path.get(..p.len()) else {
        return false;
    };
    let same = match ignore_case {
        true => head.eq_ignore_ascii_case(p),
        false => head == p,
    };
    same && (path.len() == p.len() || matches!(path.as_bytes()[p.len()], b'/' | b';'))
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
/// first NUL (where a C string ends), and `;params` cut or kept. With a `;`, the same
/// again from `raw` with its `;params` cut before anything is decoded, as Tomcat does
/// (`/x;a%2F/..%2Fadmin` is `/admin` to it).
fn generous(raw: &str) -> Vec<String> {
    let cut_first = raw.contains(';').then(|| {
        raw.split('/')
            .map(|s| s.split(';').next().unwrap_or(""))
            .collect::<Vec<_>>()
            .join("/")
    });
    let mut readings = Vec::with_capacity(16);
    for source in std::iter::once(raw).chain(cut_first.as_deref()) {
        let mut text = source.to_owned();
        for _ in 0..4 {
            let once: Vec<u8> = percent_encoding::percent_decode_str(&text).collect();
            let next = String::from_utf8_lossy(&once).into_owned();
            if next == text {
                break;
            }
            text = next;
        }
        let slashed = text.replace('\\', "/");
        for decoded in [&text, &slashed] {
            for part in [decoded.as_str(), decoded.split('\0').next().unwrap_or("")] {
                for cut_params in [true, false] {
                    readings.push(resolve(part.split('/'), cut_params));
                }
            }
        }
    }
    readings
}

/// Whether a segment names a script (see [`SCRIPT_EXTENSIONS`]).
fn is_script(segment: &str) -> bool {
    segment.rsplit_once('.').is_some_and(|(_, ext)| {
        SCRIPT_EXTENSIONS
            .iter()
            .any(|e| ext.eq_ignore_ascii_case(e))
    })
}

/// One reading of a path.
struct Reading {
    path: String,
    /// For a script reading, the index of the reading it was cut from: an exempt prefix
    /// that covers that one covers this one too, so that a public
    /// `/index.php/login` stays public (MediaWiki's and Nextcloud's login pages).
    cut_from: Option<usize>,
}

impl Reading {
    /// Whether `exempt` covers this reading, or the one it was cut from.
    fn exempt(&self, all: &[Reading], exempt: impl Fn(&str) -> bool) -> bool {
        exempt(&self.path) || self.cut_from.is_some_and(|i| exempt(&all[i].path))
    }
}

/// Adds the script readings of `all[from]` to `all`: the rest after each segment that
/// names a script, when something is left. (A script with no rest is read as itself
/// only: `/login.php` must stay public when it is listed so.)
fn push_script_readings(all: &mut Vec<Reading>, from: usize) {
    let mut start = 0;
    let mut cut = Vec::new();
    let path = &all[from].path;
    for segment in path.split('/') {
        let end = start + segment.len();
        if is_script(segment) && end < path.len() {
            cut.push(path[end..].to_owned());
        }
        start = end + 1;
    }
    all.extend(cut.into_iter().map(|path| Reading {
        path,
        cut_from: Some(from),
    }));
}

/// The paths in the request target `target` (its path, then `?` and its query, if
/// any): the path, and a query that starts with `/` up to its first `&`, since
/// CodeIgniter serves `/?/admin` and `/index.php?/admin` as `/admin`.
fn paths(target: &str) -> impl Iterator<Item = &str> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let routed = query
        .starts_with('/')
        .then(|| query.split('&').next().unwrap_or(""));
    std::iter::once(path).chain(routed)
}

/// Every reading of the request target `target` that an origin could serve (see the
/// module docs).
fn readings(target: &str) -> Vec<Reading> {
    let mut resolved = Vec::with_capacity(4);
    for raw in paths(target) {
        resolved.push(canonical(raw, true));
        if raw.contains(';') {
            resolved.push(canonical(raw, false));
        }
        if raw.contains(['%', '\\', '\0']) {
            resolved.extend(generous(raw));
        }
    }
    let mut all = Vec::with_capacity(resolved.len() + 2);
    for path in resolved {
        let folded = path
            .contains(FOLDED)
            .then(|| path.chars().map(fold).collect::<String>());
        for reading in std::iter::once(path).chain(folded) {
            all.push(Reading {
                path: reading,
                cut_from: None,
            });
            let from = all.len() - 1;
            push_script_readings(&mut all, from);
        }
    }
    all
}

/// Parses a comma-separated list of prefixes as a variable holds it. Each must start
/// with `/` and be a plain path: no `?`, `#`, `%`, `\`, `;`, whitespace or control
/// characters, no empty, `.` or `..` segment. Empty entries are skipped, and trailing
/// slashes kept to one.
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
        out.push(match p.ends_with('/') {
            true => format!("{inner}/"),
            false => p.to_owned(),
        });
    }
    Ok(out)
}

impl Rules {
    /// The rules. `public` prefixes are exceptions to the `require` ones; `ignore_case`
    /// applies to them (required prefixes always ignore case).
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

    /// Whether the reading `r` (one of `all`) is required.
    fn required(&self, all: &[Reading], r: &Reading) -> bool {
        let public = |path: &str| {
            self.public
                .iter()
                .any(|p| within(p, path, self.ignore_case))
        };
        self.require.iter().any(|p| reaches(p, &r.path)) && !r.exempt(all, public)
    }

    /// The verdict on a request target: its path, and its query if any. Costs nothing
    /// when the rules are empty.
    pub fn check(&self, target: &str) -> Verdict {
        if self.is_empty() {
            return Verdict::Open;
        }
        let all = readings(target);
        if !all.iter().any(|r| self.required(&all, r)) {
            return Verdict::Open;
        }
        match paths(target).any(is_ambiguous) {
            true => Verdict::Ambiguous,
            false => Verdict::SignInRequired,
        }
    }
}

impl Exemptions {
    /// The exempt `prefixes`, compared without regard to case with `ignore_case`.
    pub fn new(prefixes: Vec<String>, ignore_case: bool) -> Exemptions {
        Exemptions {
            prefixes,
            ignore_case,
        }
    }

    /// Whether every reading of the request target `target` falls in an exempt
    /// prefix: an exemption must hold however the origin reads the path, or
    /// `/hooks/..;/admin` would reach `/admin` on Tomcat exempt, and
    /// `/hooks/x.php/admin` a PHP app's `/admin`. `false` when there are none.
    pub fn cover(&self, target: &str) -> bool {
        let exempt = |path: &str| {
            self.prefixes
                .iter()
                .any(|p| within(p, path, self.ignore_case))
        };
        let all = readings(target);
        !self.prefixes.is_empty() && all.iter().all(|r| r.exempt(&all, exempt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(require: &str, public: &str, ignore_case: bool) -> Rules {
        Rules::new(
            parse_prefixes(require).unwrap(),
            parse_prefixes(public).unwrap(),
            ignore_case,
        )
    }

    fn admin() -> Rules {
        rules("/admin, /api/", "/api/public/, /login", false)
    }

    use Verdict::*;

    #[test]
    fn required_prefixes_are_raw_and_public_ones_keep_to_segments() {
        let r = admin();
        for (path, want) in [
            ("/admin", SignInRequired),
            ("/admin/", SignInRequired),
            ("/admin/x", SignInRequired),
            ("/administrator", SignInRequired),
            ("/adminx/y", SignInRequired),
            ("/api", SignInRequired),
            ("/api/v1", SignInRequired),
            ("/apix", Open),
            ("/api/public/x", Open),
            ("/api/publicx", SignInRequired),
            ("/login", Open),
            ("/login.html", Open),
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
        assert_eq!(all.check("/staticx"), SignInRequired);
    }

    /// Issue 22, finding 3: nginx's `location /admin` is a raw prefix, and served
    /// `/admin.`, `/admin%20`, `/admin%3F` and `/administrator` from the admin app.
    #[test]
    fn regression_nginx_prefix_locations_serve_what_starts_with_the_prefix() {
        let r = rules("/admin", "", false);
        for path in [
            "/admin.",
            "/admin%20",
            "/admin%3F",
            "/administrator",
            "/admin%2e",
        ] {
            assert_eq!(r.check(path), SignInRequired, "{path}");
        }
        // A trailing slash keeps a required prefix to its segment, and to itself.
        let segment = rules("/admin/", "", false);
        assert_eq!(segment.check("/admin"), SignInRequired);
        assert_eq!(segment.check("/admin/x"), SignInRequired);
        assert_eq!(segment.check("/administrator"), Open);
        assert_eq!(segment.check("/admin."), Open);
    }

    /// Issue 22, finding 2: Express, koa-router, ASP.NET Core and nginx's `location ~*`
    /// serve `/Admin` as `/admin`.
    #[test]
    fn regression_required_prefixes_ignore_case() {
        let r = admin();
        for path in ["/Admin", "/ADMIN/users", "/aDmIn", "/API/v1", "/%41dmin"] {
            assert_eq!(r.check(path), SignInRequired, "{path}");
        }
        // Letters a Unicode-aware matcher folds to ASCII, raw or encoded.
        for path in [
            "/adm\u{131}n",
            "/adm%C4%B1n/x",
            "/%E2%84%AAeys",
            "/\u{17f}ecret",
        ] {
            let r = rules("/admin, /keys, /secret", "", false);
            assert_eq!(r.check(path), SignInRequired, "{path}");
        }
    }

    /// Issue 22, finding 1: PHP sets `PATH_INFO=/admin` for `/index.php/admin`, and
    /// Laravel, Symfony, CodeIgniter and Slim route on it.
    #[test]
    fn regression_a_front_controller_serves_index_php_admin_as_admin() {
        let r = rules("/admin", "/login", false);
        for path in [
            "/index.php/admin",
            "/index.php/admin/users",
            "/index.php/%61dmin",
            "/app/index.php/admin",
            "/index.PHP/admin",
            "/index%2Ephp/admin",
            "/index.php;x/admin",
            "/a.php/b.php/admin",
            "/mt.cgi/admin",
            "/Service.asmx/admin",
            "/index.cfm/admin",
        ] {
            assert_eq!(r.check(path), SignInRequired, "{path}");
        }
        for path in [
            "/index.php",
            "/index.php/",
            "/index.php/login",
            "/index.jsp/admin",
            // Below a public prefix, scripts included, is the public area.
            "/login/x.php/admin",
        ] {
            assert_eq!(r.check(path), Open, "{path}");
        }
        // A public script stays public, and so does what follows it: it runs the script.
        let php = rules("/", "/login.php", false);
        assert_eq!(php.check("/login.php"), Open);
        assert_eq!(php.check("/login.php/x"), Open);
        assert_eq!(php.check("/index.php/login.php"), SignInRequired);
    }

    /// Issue 22's review: a login page behind a front controller (MediaWiki's
    /// `/index.php/Special:UserLogin`, Nextcloud's `/index.php/login`) was required by
    /// its own script reading, and `KEYCARD_REQUIRE=/` looped on it forever.
    #[test]
    fn regression_a_public_page_behind_a_front_controller_stays_public() {
        let r = rules("/", "/index.php/login, /index.php/Special:UserLogin", false);
        assert_eq!(r.check("/index.php/login"), Open);
        assert_eq!(r.check("/index.php/login/reset"), Open);
        assert_eq!(r.check("/index.php/Special:UserLogin"), Open);
        assert_eq!(r.check("/index.php/admin"), SignInRequired);
        assert_eq!(r.check("/login"), SignInRequired, "only what is listed");
    }

    /// Issue 22's review: CodeIgniter routes on a query that starts with `/`
    /// (`/?/admin`, `/index.php?/admin/users`), and Java-style matchers fold `İ`.
    #[test]
    fn regression_a_query_routed_path_and_the_dotted_capital_i_are_read() {
        let r = rules("/admin", "/login", false);
        for target in [
            "/?/admin",
            "/index.php?/admin/users",
            "/?/%61dmin&x=1",
            "/adm%C4%B0n",
        ] {
            assert_eq!(r.check(target), SignInRequired, "{target}");
        }
        assert_eq!(r.check("/?/admin%2Fx"), Ambiguous);
        for target in ["/?q=admin", "/search?next=/admin", "/login?/x"] {
            assert_eq!(r.check(target), Open, "{target}");
        }
        // Tomcat's first-visit `;jsessionid=` stays on the public page.
        assert_eq!(
            rules("/", "/login", false).check("/login;jsessionid=ABC"),
            Open
        );
    }

    /// Found by the fuzz target: Tomcat cuts `;params` before it decodes, so a `%2F`
    /// inside a cut parameter never becomes a slash, and `..%2F` outside one does.
    #[test]
    fn regression_tomcat_cuts_params_before_it_decodes() {
        // The fuzz input: a rule-set byte (0: `admin()`), then the path.
        let input = include_bytes!("../../fuzz/regressions/path_guard/params-cut-before-decoding");
        let path = std::str::from_utf8(&input[1..]).unwrap();
        assert_ne!(admin().check(path), Open, "{path:?}");
        assert_ne!(admin().check("/x;a%2F/..%2Fadmin"), Open);
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
            "/login/..;/admin",
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
            "/index.php%2Fadmin",
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
        let hooks = Exemptions::new(parse_prefixes("/hooks/, /pay/return.php").unwrap(), false);
        assert!(hooks.cover("/hooks/pay"));
        assert!(hooks.cover("/hooks/a;x/b"));
        assert!(hooks.cover("/pay/return.php"));
        assert!(
            hooks.cover("/hooks/x.php/admin"),
            "a script below /hooks/ is the hooks'"
        );
        assert!(hooks.cover("/hooks/pay;jsessionid=1"));
        for path in [
            "/hooks/..;/admin",
            "/hooks%2F..%2F..%2Fadmin",
            "/hooksx",
            "/Hooks/pay",
            "/admin",
        ] {
            assert!(!hooks.cover(path), "{path}");
        }
        assert!(!Exemptions::default().cover("/x"));
        let any_case = Exemptions::new(parse_prefixes("/hooks/").unwrap(), true);
        assert!(any_case.cover("/HOOKS/pay"));
    }

    /// `KEYCARD_PATHS_IGNORE_CASE` governs only the exempt lists.
    #[test]
    fn ignore_case_applies_to_the_public_prefixes_only() {
        assert_eq!(
            admin().check("/LOGIN"),
            Open,
            "/LOGIN is not required at all"
        );
        let all = rules("/", "/static/", false);
        assert_eq!(all.check("/STATIC/x"), SignInRequired);
        assert_eq!(all.check("/static/x"), Open);
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
    fn readings_hold_every_way_an_origin_serves_a_path() {
        let distinct = |raw: &str| {
            let mut all: Vec<String> = readings(raw).into_iter().map(|r| r.path).collect();
            all.sort_unstable();
            all.dedup();
            all
        };
        assert_eq!(distinct("/a/b"), ["/a/b"]);
        assert_eq!(distinct("/x/index.php/a"), ["/a", "/x/index.php/a"]);
        assert_eq!(distinct("/%41%3F"), ["/A%3F", "/A?"]);
        assert_eq!(distinct("/\u{17f}"), ["/s", "/\u{17f}"]);
    }

    #[test]
    fn no_rules_cost_nothing_and_bad_prefixes_are_refused() {
        let off = Rules::default();
        assert!(off.is_empty());
        assert_eq!(off.check("/admin%2F"), Open);
        for bad in [
            "admin", "/a?b", "/a#b", "/a%2F", "/a\\b", "/a b", "/a//b", "/a/../b", "/a;x",
        ] {
            assert!(parse_prefixes(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_prefixes(" /admin , ,/api/ ,/v1//").unwrap(),
            ["/admin", "/api/", "/v1/"]
        );
    }
}
