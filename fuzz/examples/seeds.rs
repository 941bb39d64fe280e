//! Writes the seed corpus: valid inputs for every fuzz target, reproducibly (fixed
//! secrets, times and entropy), into `fuzz/corpus/<target>/seed-<label>`.
//!
//! ```text
//! cargo run --manifest-path fuzz/Cargo.toml --example seeds
//! ```
//!
//! Existing `seed-*` files are replaced; inputs the fuzzer saved (hash-named, ignored by
//! git) are left alone. It also checks that the fuzz harness forges cookies exactly as
//! keycard encodes them, so a format change cannot silently blind the forging modes.

use std::fs;
use std::path::{Path, PathBuf};

use keycard::session::codec::{self, Body, SIGNED};
use keycard::util::b64;
use keycard_fuzz::{
    claims, inline, keys, seal, sign, var_char, Replay, NAMES, NONCE, ORIGIN_SECRET, T0,
};

const DATA: &str = r#"{"user":"ada","roles":["admin"],"n":1}"#;

struct Corpus {
    dir: PathBuf,
    count: usize,
}

impl Corpus {
    fn new(root: &Path, target: &str) -> Corpus {
        let dir = root.join(target);
        fs::create_dir_all(&dir).unwrap();
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("seed-")
            {
                fs::remove_file(path).unwrap();
            }
        }
        Corpus { dir, count: 0 }
    }

    fn add(&mut self, label: &str, bytes: &[u8]) {
        fs::write(self.dir.join(format!("seed-{label}")), bytes).unwrap();
        self.count += 1;
    }

    fn framed(&mut self, label: &str, head: &[u8], text: &str) {
        let mut b = head.to_vec();
        b.extend_from_slice(text.as_bytes());
        self.add(label, &b);
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let sid_text = claims(0, 0, 0, Body::InKv).sid.as_str().to_owned();
    let data_claims = claims(T0, T0, 1, inline(DATA));
    let kv_claims = claims(T0, T0, 2, Body::InKv);
    let payload = |body: &str| format!("{}.{}.{}.{}.{}", T0, T0, T0 + 604_800, sid_text, body);

    // The harness forges exactly what keycard encodes.
    for previous in [false, true] {
        let k = keys(previous);
        for name in NAMES {
            let c = &data_claims;
            let p = format!(
                "{}.{}.{}.{}.{}",
                c.issued,
                c.created,
                c.abs_exp,
                c.sid.as_str(),
                b64(DATA)
            );
            assert_eq!(
                sign(k, name, &format!("{SIGNED}.{}.{p}", k.kid())),
                codec::encode_signed(k, name, c)
            );
            assert_eq!(
                seal(k, name, p.as_bytes(), NONCE),
                codec::encode_sealed(k, name, c, &mut Replay(NONCE.to_vec()))
            );
        }
    }

    // cookie_decode: mode byte, then text.
    let mut c = Corpus::new(&root, "cookie_decode");
    let (cur, prev) = (keys(false), keys(true));
    let mut nonce = Replay([3u8; 24 * 8].to_vec());
    c.framed(
        "raw-signed",
        &[0],
        &codec::encode_signed(cur, NAMES[0], &data_claims),
    );
    c.framed(
        "raw-signed-kv",
        &[0],
        &codec::encode_signed(cur, NAMES[0], &kv_claims),
    );
    c.framed(
        "raw-signed-previous-key",
        &[0],
        &codec::encode_signed(prev, NAMES[0], &data_claims),
    );
    c.framed(
        "raw-signed-other-name",
        &[8],
        &codec::encode_signed(cur, NAMES[1], &data_claims),
    );
    c.framed(
        "raw-sealed",
        &[0],
        &codec::encode_sealed(cur, NAMES[0], &data_claims, &mut nonce),
    );
    c.framed(
        "raw-sealed-kv",
        &[8],
        &codec::encode_sealed(cur, NAMES[1], &kv_claims, &mut nonce),
    );
    c.framed(
        "raw-sealed-previous-key",
        &[0],
        &codec::encode_sealed(prev, NAMES[0], &kv_claims, &mut nonce),
    );
    c.framed(
        "raw-unknown-version",
        &[0],
        &format!("v2.{}.{}.AAAA", cur.kid(), payload("-")),
    );
    c.framed("sign-payload", &[1], &payload(&b64(DATA)));
    c.framed("sign-payload-kv", &[1], &payload("-"));
    c.framed("sign-payload-previous-key", &[5], &payload("e30"));
    c.add(
        "seal-payload",
        &[&[2u8][..], payload(&b64(DATA)).as_bytes()].concat(),
    );
    c.add(
        "seal-payload-kv-other-name",
        &[&[10u8][..], payload("-").as_bytes()].concat(),
    );
    c.framed(
        "sign-whole",
        &[3],
        &format!("{SIGNED}.{}.{}", cur.kid(), payload("-")),
    );
    c.framed(
        "sign-whole-previous-key",
        &[7],
        &format!("{SIGNED}.{}.{}", prev.kid(), payload(&b64("{}"))),
    );
    println!("cookie_decode: {} seeds", c.count);

    // cookie_header: config byte, when byte, header. Cookies are issued at T0.
    let mut c = Corpus::new(&root, "cookie_header");
    let signed = |name: &str, cl| codec::encode_signed(cur, name, cl);
    let mut nonce = Replay([5u8; 24 * 8].to_vec());
    let h0 = signed("__Host-keycard", &data_claims);
    c.framed(
        "default-valid",
        &[0, 0],
        &format!("theme=dark; __Host-keycard={h0}; lang=\"en\""),
    );
    c.framed(
        "default-refresh-due",
        &[0, 30],
        &format!("__Host-keycard={h0}"),
    );
    c.framed(
        "default-idle-expired",
        &[0, 100],
        &format!("a=1;__Host-keycard={h0}"),
    );
    c.framed(
        "default-duplicates",
        &[0, 0],
        &format!("__Host-keycard=v1.junk; __Host-keycard={h0};; flag; b=2"),
    );
    c.framed(
        "default-previous-key",
        &[0, 1],
        &format!(
            "__Host-keycard={}",
            codec::encode_signed(prev, "__Host-keycard", &data_claims)
        ),
    );
    let kc = codec::encode_sealed(cur, "kc", &kv_claims, &mut nonce);
    c.framed("sealed-kv", &[1, 2], &format!("x=y; kc={kc}"));
    c.framed(
        "cookie-store",
        &[2, 4],
        &format!("sess={}; other=z", signed("sess", &data_claims)),
    );
    let h3 = codec::encode_sealed(cur, "__Host-keycard", &data_claims, &mut nonce);
    c.framed("sealed-jwt", &[3, 0], &format!("__Host-keycard={h3}"));
    c.framed("no-session", &[0, 0], "a=1; b=\"two\"; c=");
    c.framed(
        "tampered",
        &[0, 0],
        &format!("__Host-keycard={}x", &h0[..h0.len() - 1]),
    );
    c.framed(
        "lookalike-names",
        &[0, 0],
        &format!("\u{a0}__Host-keycard={h0}; \u{3000}__Host-keycard=x; __Host-keycard={h0}"),
    );
    c.framed(
        "junk-before-real",
        &[0, 0],
        &format!("{}__Host-keycard={h0}", "__Host-keycard=junk; ".repeat(6)),
    );
    c.framed(
        "two-cookie-lines",
        &[0, 0],
        &format!("a=1, __Host-keycard={h0}; prefs={{\"a\":1,\"b\":2}}"),
    );
    println!("cookie_header: {} seeds", c.count);

    // exchange: config, bindings (1 KV, 2 assets), when, script, then
    // method \0 path \0 cookie \0 fetch-site \0 set \0 action \0 max-age \0
    // client headers \0 origin headers.
    let mut c = Corpus::new(&root, "exchange");
    let fields = |f: &[&str]| f.join("\0");
    let host0 = format!("__Host-keycard={h0}");
    let kv = format!("x=y; kc={kc}");
    let host3 = format!("__Host-keycard={h3}");
    let seeds: [(&str, [u8; 4], [&str; 9]); 11] = [
        ("anonymous", [0, 0, 0, 1], ["GET", "/", "", "", "", "", "", "", ""]),
        (
            "sign-in",
            [0, 1, 0, 1],
            ["POST", "/login", "", "", DATA, "", "", "", ""],
        ),
        (
            "session",
            [0, 1, 1, 1],
            ["GET", "/x?y=1", &host0, "", "", "", "", "", ""],
        ),
        (
            "kv-session",
            [1, 1, 2, 5],
            ["GET", "/a", &kv, "", "", "", "", "", ""],
        ),
        (
            "kv-regenerate",
            [1, 1, 2, 9],
            ["GET", "/a", &kv, "", "", "regenerate", "", "", ""],
        ),
        (
            "logout",
            [1, 1, 2, 1],
            [
                "POST",
                "/.keycard/logout?next=/bye",
                &kv,
                "same-origin",
                "",
                "",
                "",
                "",
                "",
            ],
        ),
        (
            "logout-cross-site",
            [0, 0, 0, 1],
            ["POST", "/.keycard/logout", "", "cross-site", "", "", "", "", ""],
        ),
        (
            "health",
            [0, 1, 0, 1],
            ["GET", "/.keycard/health", "", "", "", "", "", "", ""],
        ),
        (
            "client-header-aliases",
            [0, 1, 1, 1],
            [
                "GET",
                "/",
                &host0,
                "",
                "",
                "",
                "",
                "x_session:eyJ1c2VyIjoicm9vdCJ9\nX.Session-Status:valid\nx_forwarded_user:root\nforwarded:for=1.2.3.4\nx_real_ip:6.6.6.6",
                "",
            ],
        ),
        (
            "origin-header-aliases",
            [0, 1, 0, 1],
            [
                "GET",
                "/",
                "",
                "",
                DATA,
                "",
                "",
                "",
                "x_session_set:{\"user\":\"root\"}\nx.session.action:destroy\ncache-control:public",
            ],
        ),
        (
            "destroy-jwt",
            [3, 0, 1, 3],
            ["GET", "/", &host3, "", "", "destroy", "", "", ""],
        ),
    ];
    for (label, head, f) in &seeds {
        c.framed(label, head, &fields(f));
    }
    println!("exchange: {} seeds", c.count);

    // control_headers: flags, extra, set \0 action \0 max-age.
    // flags: 1 set, 2 action, 4 max-age; config << 3; session kind << 5 (0 none,
    // 1 bad cookie, 2 cookie data, 3 KV data). extra: 1 KV available, 2 previous key,
    // now offset << 2.
    let mut c = Corpus::new(&root, "control_headers");
    let flags = |present: u8, cfg: u8, kind: u8| present | cfg << 3 | kind << 5;
    c.framed("create", &[flags(1, 0, 0), 1], r#"{"user":"ada","n":1}"#);
    c.framed(
        "merge-null-deletes",
        &[flags(1, 0, 2), 1],
        "{\"n\":2,\"roles\":null}\0\0",
    );
    c.framed(
        "set-base64",
        &[flags(1, 1, 3), 1],
        &b64(r#"{"cart":[1,2,3]}"#),
    );
    c.framed(
        "set-base64-padded",
        &[flags(1, 2, 2), 0],
        &format!("{}==", b64(r#"{"a":"?"}"#)),
    );
    c.framed("destroy", &[flags(2, 0, 2), 1], "\0destroy\0");
    c.framed(
        "destroy-kv-with-set",
        &[flags(3, 1, 3), 1],
        "{\"x\":1}\0destroy\0",
    );
    c.framed(
        "clear-regenerate",
        &[flags(3, 3, 2), 1],
        "{\"user\":\"bob\"}\0clear, regenerate\0",
    );
    c.framed("regenerate-kv", &[flags(2, 1, 3), 5], "\0Regenerate\0");
    c.framed(
        "max-age",
        &[flags(4, 0, 2), 1],
        &["", "", "3600"].join("\0"),
    );
    c.framed(
        "max-age-zero",
        &[flags(4, 0, 3), 1],
        &["", "", "0"].join("\0"),
    );
    c.framed(
        "all-three",
        &[flags(7, 0, 2), 3 | 40 << 2],
        "{\"step\":2}\0clear,bogus\0 86400 ",
    );
    c.framed("refresh-only", &[flags(0, 0, 2), 1 | 40 << 2], "");
    c.framed("bad-cookie-set", &[flags(1, 2, 1), 0], "{\"u\":null}");
    c.framed("not-an-object", &[flags(1, 0, 2), 1], "[1,2,3]");
    println!("control_headers: {} seeds", c.count);

    // path_guard: a rule-set byte (bit 7: ignore case), then the path.
    let mut c = Corpus::new(&root, "path_guard");
    for (label, head, path) in [
        ("plain", 0u8, "/admin/x"),
        ("encoded", 0, "/%61dmin/x"),
        ("dots", 0, "/public/../admin"),
        ("slashes", 0, "//admin//x"),
        ("encoded-slash", 0, "/static%2F..%2Fadmin"),
        ("backslash", 0, "/admin\\x"),
        ("nul", 0, "/admin%00.png"),
        ("params", 0, "/admin;jsessionid=1/x"),
        ("double", 0, "/%2561dmin"),
        ("everything", 1, "/static/../secret"),
        ("case", 0x80, "/ADMIN/x"),
        ("account", 2, "/account/login/../settings"),
        ("front-controller", 0, "/index.php/admin/users"),
        ("any-case", 0, "/ADMIN/users"),
        ("raw-prefix", 0, "/administrator"),
        ("raw-prefix-dot", 0, "/admin."),
        ("folded-letter", 0, "/adm%C4%B1n"),
    ] {
        c.framed(label, &[head], path);
    }
    println!("path_guard: {} seeds", c.count);

    // config: records `<var char><value>` separated by NUL.
    let mut c = Corpus::new(&root, "config");
    let rec = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| format!("{}{v}", var_char(k)))
            .collect::<Vec<_>>()
            .join("\0")
    };
    let secret = (
        "SESSION_SECRET",
        "dev-only-insecure-secret-do-not-deploy-0123456789abcdef",
    );
    c.framed("defaults", &[], &rec(&[secret]));
    c.framed(
        "wrangler-vars",
        &[],
        &rec(&[
            secret,
            ("ORIGIN_URL", ""),
            ("SESSION_STORE", "auto"),
            ("SESSION_IDLE_TIMEOUT", "24h"),
            ("SESSION_ABSOLUTE_TIMEOUT", "7d"),
        ]),
    );
    c.framed(
        "dev",
        &[],
        &rec(&[
            secret,
            ("ORIGIN_SERVICE", "DEMO"),
            ("KEYCARD_INSPECT", "true"),
            ("SESSION_COOKIE_SECURE", "false"),
        ]),
    );
    c.framed(
        "guards",
        &[],
        &rec(&[
            secret,
            ("KEYCARD_REQUIRE", "/admin, /api/"),
            ("KEYCARD_PUBLIC", "/api/public/, /static/"),
            ("KEYCARD_LOGIN_URL", "/login?from=kc"),
            ("KEYCARD_IDENTITY_HEADERS", "X-Forwarded-User=user, X-Forwarded-Groups=roles"),
            ("KEYCARD_TRUSTED_ORIGINS", "https://partner.example"),
            ("KEYCARD_CSRF_EXEMPT", "/hooks/"),
            ("KEYCARD_PATHS_IGNORE_CASE", "true"),
            ("ORIGIN_TIMEOUT", "30s"),
        ]),
    );
    c.framed(
        "production-jwt",
        &[],
        &rec(&[
            secret,
            ("ORIGIN_URL", "https://legacy.internal.example.com:8443"),
            ("SESSION_IDLE_TIMEOUT", "8h"),
            ("SESSION_HEADER_FORMAT", "jwt"),
            ("ORIGIN_SECRET", ORIGIN_SECRET),
        ]),
    );
    c.framed(
        "kv-sealed-rotating",
        &[],
        &rec(&[
            secret,
            (
                "SESSION_SECRET_PREVIOUS",
                "old-secret-one-0123456789abcdef0123456789, old-secret-two-0123456789abcdef012345",
            ),
            ("SESSION_STORE", "kv"),
            ("SESSION_KV_BINDING", "MY_SESSIONS"),
            ("SESSION_KV_PREFIX", "app1:"),
            ("SESSION_COOKIE_ENCRYPT", "yes"),
            ("SESSION_KV_FAILURE", "open"),
        ]),
    );
    c.framed(
        "cookie-attributes",
        &[],
        &rec(&[
            secret,
            ("SESSION_COOKIE_NAME", "sid"),
            ("SESSION_COOKIE_DOMAIN", ".example.com"),
            ("SESSION_COOKIE_PATH", "/app"),
            ("SESSION_COOKIE_HTTP_ONLY", "off"),
            ("SESSION_COOKIE_SAME_SITE", "Strict"),
            ("SESSION_COOKIE_PERSISTENT", "0"),
            ("SESSION_FORWARD_COOKIE", "1"),
            ("KEYCARD_PATH_PREFIX", "/_auth/"),
        ]),
    );
    c.framed(
        "humane-durations",
        &[],
        &rec(&[
            secret,
            ("SESSION_IDLE_TIMEOUT", "1h 30m"),
            ("SESSION_ABSOLUTE_TIMEOUT", "2days"),
            ("SESSION_REFRESH_AFTER", "90"),
            ("SESSION_COOKIE_SAME_SITE", "none"),
            ("SESSION_COOKIE_NAME", "__Secure-kc"),
        ]),
    );
    c.framed("missing-secret", &[], &rec(&[("SESSION_STORE", "cookie")]));
    println!("config: {} seeds", c.count);

    // logout_next: the text.
    let mut c = Corpus::new(&root, "logout_next");
    for (label, text) in [
        ("root", "/"),
        ("path", "/account/settings"),
        ("query-fragment", "/a/b?c=d&e=%2F#top"),
        ("encoded", "/caf%C3%A9"),
        ("query-form", "next=%2Fbye&x=1"),
    ] {
        c.add(label, text.as_bytes());
    }
    println!("logout_next: {} seeds", c.count);

    // sign_in: a script byte, then the callback's query and the provider's answers.
    let mut c = Corpus::new(&root, "sign_in");
    let header = r#"{"alg":"ES256","kid":"k1"}"#;
    let claims = r#"{"iss":"https://id.example","aud":"app","sub":"u1","nonce":"$nonce","iat":1700000000,"exp":1700000300,"email":"ada@corp.example","email_verified":true,"groups":["eng"]}"#;
    let signature = b64([9u8; 64]);
    let good = format!("\0200\0application/json\0{header}\0{claims}\0{signature}\0\0{{}}");
    for (label, script, text) in [
        ("signed-in", 0b1001u8, good.clone()),
        ("bad-signature", 0b1000, good.clone()),
        ("no-iss", 0b0001, good.clone()),
        ("token-html", 0b1001, format!("\0200\0text/html\0{header}\0{claims}\0{signature}\0\0")),
        ("refused-code", 0b1001, format!("\0400\0application/json\0{header}\0{claims}\0{signature}\0\0")),
        ("own-keys", 0b11001, format!("\0200\0application/json\0{header}\0{claims}\0{signature}\0{{\"keys\":[{{\"kty\":\"RSA\",\"kid\":\"k1\",\"n\":\"AQAB\",\"e\":\"AQAB\"}}]}}\0")),
        ("provider-error", 0b1000, "error=access_denied\0200\0application/json\0\0\0\0\0".to_owned()),
    ] {
        c.framed(label, &[script], &text);
    }
    println!("sign_in: {} seeds", c.count);
}
