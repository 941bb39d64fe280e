# keycard: `make dev` and `make test` are all you need; each sets up and builds first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export WRANGLER_SEND_METRICS := false
export PATH := $(CURDIR)/node_modules/.bin:$(HOME)/.cargo/bin:$(PATH)

.PHONY: help setup build example-rs dev dev-oidc front dev-rs test test-native test-e2e lint fmt check-deploy fuzz fuzz-smoke loadtest bench clean

help:
	@echo "make dev       keycard on http://127.0.0.1:8787 in front of the demo app (local KV)"
	@echo "make dev-oidc  the same, signing people in at a local OpenID provider on http://127.0.0.1:8788"
	@echo "make front ORIGIN=http://127.0.0.1:9050   keycard on http://127.0.0.1:8787 in front of your own app"
	@echo "make test      everything: setup, build, native tests, lints, workerd end-to-end suite"
	@echo "make fuzz      cargo-fuzz each parser for FUZZ_SECONDS (default 60) each"
	@echo "make loadtest  the full load test (cookie and kv modes) on loopback"
	@echo "make example-rs  the workers-rs example (keycard inside a Rust Worker) into examples/workers-rs/build/"
	@echo "make dev-rs    that example on http://127.0.0.1:8787 (local KV)"
	@echo "make bench     CPU and throughput against JS anchors; writes BENCHMARKS.md"

setup:
	@scripts/setup.sh $(SETUP_EXTRAS)

build: setup
	@scripts/build.sh

example-rs: SETUP_EXTRAS = workers-rs
example-rs: setup
	@scripts/build-rs.sh examples/workers-rs

# What to try, printed by scripts/dev.mjs (KEYCARD_STEPS) once wrangler is ready, after
# its own output.
define DEV_STEPS
  keycard is ready on http://127.0.0.1:8787/ in front of the demo app (www/), with local KV and Durable Objects.
  wrangler lists DEMO as [not connected]: that status is about Workers in other `wrangler dev` processes,
  and the demo runs in this one (www/wrangler.toml), where DEMO reaches it.
  1. Open http://127.0.0.1:8787/ and sign in with any name. Reload to count visits.
  2. Add a few things to the cart, then press 'Load 4.7 KB of order history' (the size depends on the name).
  3. Open http://127.0.0.1:8787/.keycard/ , the session inspector: the decoded data, its status,
     where it lives (the cookie, then KV past 4 KB), the cookie size and the expiry countdowns.
  4. Sign out: the session and its cookie are gone; even the back button shows nothing.
  5. Signed out, open http://127.0.0.1:8787/account/ : keycard sends you to /login?next=%2Faccount%2F first.
  6. Sign in as the same name in a second browser (or a private window): /account/ lists both devices.
     'Sign out everywhere else' ends the other one at once: its next page load is signed out, and its
     /account/ lands on the login page saying so (the KEYCARD_USERS Durable Object, local here).
     The demo checks every request (SESSION_REVOCATION_CHECK=always); the default, writes, checks
     guarded pages and writes, so an ended session may still read other pages until its next write.
  Stop with Ctrl-C.
endef

dev: export KEYCARD_STEPS = $(DEV_STEPS)
dev: build
	@echo
	@echo "  keycard is starting in front of the demo app; what to try follows wrangler's \"Ready\"."
	@echo
	node scripts/dev.mjs dev -c wrangler.toml -c www/wrangler.toml --env dev --ip 127.0.0.1 --port 8787

# `make dev` with sign-in at an OpenID provider on this machine: scripts/dev-oidc.mjs starts
# oidc-provider on 127.0.0.1:8788 and runs [env.dev] with the KEYCARD_OIDC_* settings
# added as --var (and KEYCARD_LOGIN_URL emptied, so /account/ goes to the provider).
define DEV_OIDC_STEPS
  keycard is ready on http://127.0.0.1:8787/ in front of the demo app (www/), and signs people in with the
  OpenID provider on http://127.0.0.1:8788 (oidc-provider, in memory: a restart forgets who signed in there).
  wrangler lists DEMO as [not connected]: the demo runs in this process, where DEMO reaches it (see `make dev`).
  1. Open http://127.0.0.1:8787/account/ ('Your account'): keycard sends you to the provider's sign-in form.
     Sign in as ada (or grace) with any password: you are back on /account/, signed in as ada@corp.example.
  2. Open http://127.0.0.1:8787/.keycard/ , the session inspector: the session holds the provider's claims
     (email, name, groups) and idp, the provider's issuer. The demo reads them in X-Session. (Its Cookie row
     shows the provider's _session cookies: cookies ignore ports, and both run on 127.0.0.1.)
  3. Sign out (the demo's button or the inspector's), then open /account/ again: keycard sends you to the
     provider, which still knows you and sends you straight back, signed in: signing out of keycard ends
     the keycard session only. To be asked again, sign out at the provider too: http://127.0.0.1:8788/session/end
  4. At the provider's form, any login but ada and grace has no verified email: keycard refuses it with a 403
     page, whose 'Sign in as someone else' has the provider ask again (prompt=login).
  The demo's own name form (on / and /login) still signs in without the provider; to sign in with the
  provider from any page, open http://127.0.0.1:8787/.keycard/login?next=/ .
  Stop with Ctrl-C: keycard and the provider both stop.
endef

dev-oidc: export KEYCARD_STEPS = $(DEV_OIDC_STEPS)
dev-oidc: build
	@echo
	@echo "  keycard and an OpenID provider are starting; what to try follows wrangler's \"Ready\"."
	@echo
	node scripts/dev-oidc.mjs dev -c wrangler.toml -c www/wrangler.toml --env dev --ip 127.0.0.1 --port 8787

# keycard in front of your own app, locally: [env.front] of wrangler.toml, ORIGIN_URL from
# the command line (PORT=8787 by default).
PORT ?= 8787
define FRONT_STEPS
  keycard is ready on http://127.0.0.1:$(PORT)/ in front of $(ORIGIN), with local KV and Durable Objects.
  Open http://127.0.0.1:$(PORT)/ : your app, with X-Session-* request headers from keycard.
  Your app signs a user in by answering  X-Session-Set: {"user":"ada"}  and  X-Session-Action: regenerate .
  The session inspector: http://127.0.0.1:$(PORT)/.keycard/   Health: http://127.0.0.1:$(PORT)/.keycard/health
  To keep settings, put them in .dev.vars.front (see .dev.vars.example). Stop with Ctrl-C.
endef

front: export KEYCARD_STEPS = $(FRONT_STEPS)
front: build
	@if [ -z "$(ORIGIN)" ]; then echo "usage: make front ORIGIN=http://127.0.0.1:9050 [PORT=8787]" >&2; exit 2; fi
	node scripts/dev.mjs dev -c wrangler.toml --env front --ip 127.0.0.1 --port $(PORT) --var ORIGIN_URL:$(ORIGIN)

dev-rs: example-rs
	@echo
	@echo "  The workers-rs example is starting on http://127.0.0.1:8787/ (local KV and Durable Objects)."
	@echo "  GET / counts visits; POST /login?user=NAME signs in; POST /logout; POST /logout-others;"
	@echo "  GET /headers shows what the handler receives. Try: curl -c j -b j -X POST '127.0.0.1:8787/login?user=ann'"
	@echo
	npx wrangler dev -c examples/workers-rs/wrangler.toml --ip 127.0.0.1 --port 8787

test: SETUP_EXTRAS = browser php symfony nginx pyjwt django gunicorn fuzz workers-rs dbsc-chromium
test: build example-rs test-native lint test-e2e fuzz-smoke check-deploy

test-native:
	cargo test --all-targets

lint:
	cargo +nightly fmt --all --check
	cargo test -q --test layout
	cargo clippy --all-targets -- -D warnings
	cargo clippy --target wasm32-unknown-unknown -- -D warnings
	cargo clippy --features worker --target wasm32-unknown-unknown -- -D warnings
	cargo clippy -p keycard-example-workers-rs --target wasm32-unknown-unknown -- -D warnings
	cargo clippy -p keycard-bench-size-floor --target wasm32-unknown-unknown -- -D warnings
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --features worker --target wasm32-unknown-unknown

test-e2e:
	node --test --test-concurrency=1 --test-timeout=300000 tests/e2e/*.test.mjs

# A short, seeded run of every fuzz target plus its regressions (not a fuzzing campaign:
# that is `make fuzz`).
fuzz-smoke:
	scripts/fuzz.sh --smoke

check-deploy:
	npx wrangler deploy --dry-run --outdir build/dry-run

fuzz: SETUP_EXTRAS = fuzz
fuzz: setup
	scripts/fuzz.sh $${FUZZ_SECONDS:-60}

loadtest: build
	node tests/load/run.mjs --full

bench: SETUP_EXTRAS = bench workers-rs
bench: build example-rs
	@scripts/build-rs.sh bench/workers/counter-rs
	@scripts/build-size-floor.sh
	node bench/run.mjs

clean:
	rm -rf build target .wrangler node_modules .tools examples/workers-rs/build bench/workers/counter-rs/build bench/size-floor/build
