//! Native micro-benchmarks of keycard's core: the per-request session work without
//! the Workers runtime. `make bench` runs this and prints the medians next to the
//! workerd figures; `cargo bench --bench core` runs it alone.
//!
//! The session data is about 200 bytes of JSON, as in the workerd variants.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use keycard::config::Config;
use keycard::crypto::keys::{OsEntropy, SessionId};
use keycard::session::codec::{self, Body, Claims};
use keycard::session::{self, Changes, Loaded, Read};
use keycard::util::b64;

const SECRET: &str = "bench-secret-0123456789abcdef0123456789abcdef0123456789abcdef";
const NOW: u64 = 1_800_000_000;
/// About 200 bytes, the same object bench/run.mjs has the origin set.
const DATA: &str = r#"{"user":"alice@example.com","name":"Alice Example","roles":["admin","editor","viewer"],"tenant":"acme-corp","locale":"en-GB","theme":"dark","csrf":"3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAA","flags":{"beta":true,"mfa":true},"visits":42}"#;

fn config(refresh_after: &str) -> Config {
    Config::from_pairs(&[
        ("SESSION_SECRET", SECRET),
        ("SESSION_STORE", "cookie"),
        ("SESSION_COOKIE_SECURE", "false"),
        ("SESSION_IDLE_TIMEOUT", "24h"),
        ("SESSION_ABSOLUTE_TIMEOUT", "7d"),
        ("SESSION_REFRESH_AFTER", refresh_after),
    ])
    .expect("the bench config is valid")
}

fn claims() -> Claims {
    Claims {
        issued: NOW - 10,
        created: NOW - 100,
        abs_exp: NOW + 86_400,
        sid: SessionId::parse(&b64([7u8; 32])).expect("a valid session id"),
        body: Body::Inline(b64(DATA)),
        bound: None,
    }
}

fn loaded(cfg: &Config, header: &str) -> Loaded {
    match session::read(cfg, Some(header), NOW) {
        Read::Ready(s) => Loaded::Valid(s),
        other => panic!("the bench cookie does not read as a valid session: {other:?}"),
    }
}

fn core(c: &mut Criterion) {
    let cfg = config("6h");
    let name = cfg.cookie.name.clone();
    let value = codec::encode_signed(cfg.keys.current(), &name, &claims());
    let header = format!("theme=dark; {name}={value}; _ga=GA1.2.3456789.1234567890");
    assert!(matches!(
        session::read(&cfg, Some(&header), NOW),
        Read::Ready(_)
    ));

    c.bench_function("codec::decode (verify)", |b| {
        b.iter(|| codec::decode(black_box(&cfg.keys), black_box(&name), black_box(&value)))
    });
    c.bench_function("session::read (cookie header -> session)", |b| {
        b.iter(|| {
            session::read(
                black_box(&cfg),
                black_box(Some(header.as_str())),
                black_box(NOW),
            )
        })
    });
    c.bench_function("codec::encode_signed", |b| {
        let claims = claims();
        b.iter(|| {
            codec::encode_signed(
                black_box(cfg.keys.current()),
                black_box(&name),
                black_box(&claims),
            )
        })
    });
    c.bench_function("read + forward_headers (K-cookie core)", |b| {
        b.iter(|| {
            let l = loaded(&cfg, black_box(&header));
            keycard::origin::headers::forward_headers(&cfg, &l, NOW, "GET", "http://127.0.0.1/")
        })
    });
    let refresh = config("1");
    c.bench_function("read + forward + finish (K-refresh core)", |b| {
        b.iter(|| {
            let l = loaded(&refresh, black_box(&header));
            let f = keycard::origin::headers::forward_headers(
                &refresh,
                &l,
                NOW,
                "GET",
                "http://127.0.0.1/",
            );
            let out = session::finish(&refresh, l, Changes::default(), NOW, &mut OsEntropy, false)
                .expect("a refresh fits");
            assert!(out.set_cookie.is_some());
            (f, out)
        })
    });
}

criterion_group!(benches, core);
criterion_main!(benches);
