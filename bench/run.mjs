#!/usr/bin/env node
// `make bench`: keycard against JS anchors, in one run, on loopback.
//
// Variants, all in front of one nginx-light origin started from bench/nginx.conf:
//   A          bench/workers/passthrough.mjs, a bare JS pass-through (the floor)
//   J          bench/workers/session-js.mjs: the session layer people write themselves
//              (forty lines of JS on WebCrypto: HMAC-SHA256 cookie, expiry, X-Session)
//   J-refresh  the same, re-signing the cookie on every request (beside K-refresh)
//   J-kv       the same with its sessions in KV: a signed id in the cookie, one KV read
//              per request (beside K-kv)
//   K-cookie   build/index.js, SESSION_STORE=cookie, a valid ~200-byte session, no refresh
//   K-refresh  the same on the re-issue path (SESSION_REFRESH_AFTER=1, cookie older than 1 s)
//   K-guard    K-cookie with the guards on (KEYCARD_REQUIRE=/, identity headers)
//   K-kv       SESSION_STORE=kv: one KV read per request, no write
//   K-bound    K-kv with KEYCARD_DEVICE_BOUND=on and the session bound to a device key
//   K-bound-users  K-users with KEYCARD_DEVICE_BOUND=on, the binding in the user's object
//              and the key's thumbprint in the cookie
//              (an ES256 registration at sign-in): its short-lived cookie checked too
//   K-users    K-cookie with sign-out everywhere on (the KeycardUsers Durable Object
//              bound): a read calls no object in the default `writes` mode;
//              K-users-always calls the user's object on every request
//   F-hdr      bench/workers/floor.mjs: keycard's header work in JS, no session logic
//   F-kv       the same plus one KV read per request (plain workerd only, both floors)
//   H          bench/workers/hono-session.mjs, hono + hono-sessions at their defaults
//   K-rs       examples/workers-rs: keycard inside a workers-rs Worker (the `worker`
//              feature), counting visits in the session: a re-issued cookie per request
//   W          bench/workers/counter-rs: the same counting in a bare workers-rs Worker
//              with a plain, unsigned cookie (what keycard adds to a workers-rs app is
//              K-rs against W). Neither forwards: the app answers itself
//
// Each variant runs in two hosts, each instance its own workerd process:
//   workerd    a plain `workerd serve` (bench/workerd.capnp.in; K-kv's KV is the
//              in-memory bench/workers/memory-kv.mjs in a workerd process of its own,
//              bench/kv-server.capnp.in, so only the Worker's side of a read is counted)
//   wrangler   `wrangler dev` with local KV, as issue 7 prescribes; its runtime process
//              also runs miniflare's per-request plumbing, which costs far more than A
//              itself and so compresses every ratio
// wrk drives the port of the workerd process that runs the Worker (never wrangler's
// proxy), and the primary figure is that process's CPU time (utime+stime from /proc)
// per request completed. Variants and hosts alternate over ROUNDS rounds; medians are
// reported, each also as a ratio to A and to J in the same host. Then, in plain workerd,
// the cost mix (costMix: a session-day per mode, KV operations counted by the KV server)
// and the cold start (coldStarts: a fresh workerd per sample). Then the native criterion
// micro-benchmark of the core runs (benches/core.rs), and BENCHMARKS.md is rewritten
// between its bench markers.
//
// Knobs: BENCH_ROUNDS (3), BENCH_DURATION (5, seconds per measurement),
// BENCH_CONNECTIONS (10), BENCH_WARMUP (3, seconds per instance),
// Then bench/sign-in.mjs: the CPU of a sign-in with an identity provider, and
// bench/own-work.mjs: keycard's own work per request apart from the runtime, hot and
// cold (both with the extras: unless BENCH_SKIP_EXTRAS is set).
// BENCH_HOSTS (workerd,wrangler), BENCH_ONLY (e.g. A,K-cookie), BENCH_SKIP_CRITERION=1,
// BENCH_BUILD_B (other keycard build dirs to A/B against, comma-separated),
// BENCH_SKIP_EXTRAS=1 (no cost mix, cold start, sign-in or own work), BENCH_MIX_SESSIONS (40),
// BENCH_COLD_SAMPLES (7), BENCH_CF=1 (a realistic `request.cf` in plain workerd),
// BENCH_BROWSER_HEADERS=1 (every measured request carries Chrome's navigation headers),
// BENCH_PROFILE=1 (instead of the rounds: a CPU profile of each variant's isolate),
// BENCH_OUT (BENCHMARKS.md; "-" prints only).
import { spawn, spawnSync, execFileSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import zlib from "node:zlib";
import { freePort } from "../tests/e2e/lib/harness.mjs";
import { generateKey, parseChallenges, parseRegistrations, signJwt } from "../tests/e2e/lib/dbsc-client.mjs";
// BENCH_PROFILE's client for workerd's inspector. Node's own WebSocket gets its messages
// echoed back by that inspector instead of answered; ws (which wrangler and miniflare
// install) is answered.
import WebSocket from "ws";
import { processTree, comm } from "./proc.mjs";
import { SECRET, SESSION_JSON } from "./session.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const BENCH = path.join(ROOT, "bench");
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
const DURATION = Math.max(1, Number(process.env.BENCH_DURATION ?? 5));
const CONNECTIONS = Math.max(1, Number(process.env.BENCH_CONNECTIONS ?? 10));
const WARMUP = Math.max(0, Number(process.env.BENCH_WARMUP ?? 3));
const OUT = process.env.BENCH_OUT ?? path.join(ROOT, "BENCHMARKS.md");
const PROFILE = Boolean(process.env.BENCH_PROFILE);
const HOSTS = (process.env.BENCH_HOSTS ?? "workerd,wrangler").split(",").filter((h) => h === "workerd" || h === "wrangler");
// The workerd binary wrangler itself runs (from the pinned npm package).
const WORKERD = fs.realpathSync(path.join(path.dirname(fileURLToPath(import.meta.url)), "../node_modules/.bin/workerd"));
const DEADLINE_MS = 20 * 60 * 1000;
const COMPAT_DATE = "2026-11-01";
const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;

// BENCH_CF=1: what Cloudflare puts in `request.cf` (location, TLS, bot score,
// bench/cf.json) rides on every measured request to a plain workerd (wrk, the cost mix,
// the cold start) in a header the socket turns into `request.cf`
// (bench/workerd.capnp.in). The runtime parses it when a Worker first reads
// `request.cf`, as on Cloudflare, so a Worker that reads it pays for that. Off by
// default: A hands `request` to `fetch` whole, cf included, and pays for carrying it
// on (about 100 µs per request here), which J and keycard do not, so "vs A" would no
// longer compare like with like (BENCHMARKS.md, sixth session).
const CF_HEADER = process.env.BENCH_CF
  ? { "cf-blob": JSON.stringify(JSON.parse(fs.readFileSync(path.join(BENCH, "cf.json"), "utf8"))) }
  : {};

// BENCH_BROWSER_HEADERS=1: every measured request also carries the headers Chrome
// sends with a top-level navigation (about 1 KB in 15 headers), instead of wrk's two
// or three, so that the work per header (which keycard does twice, in JS and in Rust)
// weighs as it does with real browsers. The Cookie header stays the session's alone:
// F-hdr drops the whole header, which is keycard's work only when no other cookie is in it.
const BROWSER_HEADERS = Boolean(process.env.BENCH_BROWSER_HEADERS);
const CHROME_HEADERS = [
  "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
  "Accept-Encoding: gzip, deflate, br, zstd",
  "Accept-Language: en-GB,en;q=0.9,en-US;q=0.8,de;q=0.7",
  "Cache-Control: max-age=0",
  "Priority: u=0, i",
  'Sec-Ch-Ua: "Chromium";v="150", "Not=A?Brand";v="24", "Google Chrome";v="150"',
  "Sec-Ch-Ua-Mobile: ?0",
  'Sec-Ch-Ua-Platform: "Windows"',
  "Sec-Fetch-Dest: document",
  "Sec-Fetch-Mode: navigate",
  "Sec-Fetch-Site: same-origin",
  "Sec-Fetch-User: ?1",
  "Upgrade-Insecure-Requests: 1",
  "User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/150.0.0.0 Safari/537.36",
  "Referer: http://localhost/account/",
];

const KEYCARD = path.join(ROOT, "build/index.js");
// The size floor: the libraries keycard links, alone (make bench builds it with
// scripts/build-size-floor.sh).
const SIZE_FLOOR = path.join(BENCH, "size-floor/build/index_bg.wasm");
// The Rust Workers (K-rs, W), built by `make bench` with scripts/build-rs.sh.
const RS_BUILDS = { "K-rs": path.join(ROOT, "examples/workers-rs/build"), W: path.join(ROOT, "bench/workers/counter-rs/build") };
// They answer themselves: up when GET / counts a visit; signed in through POST /login.
const countsVisits = (r) => r.status === 200 && /"visits":\d+/.test(r.body);
const HONO = path.join(BENCH, "workers/hono-session.mjs");
const SESSION_JS = path.join(BENCH, "workers/session-js.mjs");
const keycardVars = (extra) => ({ SESSION_SECRET: SECRET, SESSION_COOKIE_SECURE: "false", ...extra });
const VARIANTS = [
  { name: "A", what: "JS pass-through (bench/workers/passthrough.mjs)", main: path.join(BENCH, "workers/passthrough.mjs"), vars: {}, session: false },
  {
    name: "J", what: "hand-written JS session on WebCrypto (bench/workers/session-js.mjs), valid cookie, no refresh", main: SESSION_JS,
    cookieName: "j", session: true, vars: { SESSION_SECRET: SECRET },
  },
  {
    name: "J-refresh", what: "J re-signing its cookie on every request", main: SESSION_JS,
    cookieName: "j", session: true, refresh: true, vars: { SESSION_SECRET: SECRET, REFRESH_AFTER: "1" },
  },
  {
    name: "J-kv", what: "J with its sessions in KV (SESSION_STORE=kv): a signed random id in the cookie, one KV read per request", main: SESSION_JS,
    cookieName: "j", session: true, kv: true, vars: { SESSION_SECRET: SECRET, SESSION_STORE: "kv" },
  },
  {
    name: "K-cookie", what: "keycard, SESSION_STORE=cookie, valid cookie, no refresh", main: KEYCARD, cookieName: "keycard", session: true,
    vars: keycardVars({ SESSION_STORE: "cookie" }),
  },
  {
    name: "K-refresh", what: "keycard, cookie store, re-issue on every request", main: KEYCARD, cookieName: "keycard", session: true, refresh: true,
    vars: keycardVars({ SESSION_STORE: "cookie", SESSION_REFRESH_AFTER: "1", SESSION_IDLE_TIMEOUT: "30d", SESSION_ABSOLUTE_TIMEOUT: "30d" }),
  },
  {
    name: "K-guard", what: "K-cookie with the guards on: KEYCARD_REQUIRE=/, an identity header, cross-origin protection", main: KEYCARD, cookieName: "keycard", session: true,
    // /login stays public (the origin's sign-in page); it is also the readiness probe,
    // since everything else answers 401 before sign-in.
    probe: "/login",
    vars: keycardVars({ SESSION_STORE: "cookie", KEYCARD_REQUIRE: "/", KEYCARD_PUBLIC: "/login", KEYCARD_IDENTITY_HEADERS: "X-Forwarded-User=user, X-Forwarded-Groups=roles" }),
  },
  {
    name: "K-kv", what: "keycard, SESSION_STORE=kv, local KV read per request", main: KEYCARD, cookieName: "keycard", session: true, kv: true,
    vars: keycardVars({ SESSION_STORE: "kv" }),
  },
  {
    name: "K-bound", what: "K-kv with device-bound sessions on, the session bound: its short-lived cookie checked per request", main: KEYCARD, cookieName: "keycard", session: true, kv: true, bound: true,
    vars: keycardVars({ SESSION_STORE: "kv", KEYCARD_DEVICE_BOUND: "on", KEYCARD_DEVICE_BOUND_TTL: "1h" }),
  },
  // Sign-out everywhere: K-cookie's request with the users' Durable Objects bound. In
  // `writes` mode a read makes no object call; in `always` mode every signed-in request
  // makes one. The calls are counted apart (objectCalls), and in the cost mix.
  {
    name: "K-users", what: "K-cookie with sign-out everywhere on (KEYCARD_USERS bound, SESSION_REVOCATION_CHECK=writes)", main: KEYCARD, cookieName: "keycard", session: true, users: true,
    vars: keycardVars({ SESSION_STORE: "cookie" }),
  },
  {
    name: "K-bound-users", what: "K-users with device-bound sessions on, the session bound: its cookie names the key, its short-lived cookie checked per request", main: KEYCARD, cookieName: "keycard", session: true, users: true, bound: true,
    vars: keycardVars({ SESSION_STORE: "cookie", KEYCARD_DEVICE_BOUND: "on", KEYCARD_DEVICE_BOUND_TTL: "1h" }),
  },
  {
    name: "K-users-always", what: "the same with SESSION_REVOCATION_CHECK=always: a call to the user's object per request", main: KEYCARD, cookieName: "keycard", session: true, users: true,
    vars: keycardVars({ SESSION_STORE: "cookie", SESSION_REVOCATION_CHECK: "always" }),
  },
  {
    name: "F-hdr", what: "floor: keycard's header work in JS, no session logic (bench/workers/floor.mjs)", main: path.join(BENCH, "workers/floor.mjs"), session: false,
    cookieFrom: "K-cookie", hosts: ["workerd"], vars: { FLOOR_SESSION: Buffer.from(SESSION_JSON).toString("base64url"), FLOOR_DATA: SESSION_JSON },
  },
  {
    name: "F-kv", what: "floor: F-hdr plus one KV read per request", main: path.join(BENCH, "workers/floor.mjs"), session: false, kv: true,
    cookieFrom: "K-cookie", hosts: ["workerd"], vars: { FLOOR_SESSION: Buffer.from(SESSION_JSON).toString("base64url"), FLOOR_DATA: SESSION_JSON },
  },
  {
    name: "H", what: "hono + hono-sessions defaults (bench/workers/hono-session.mjs)", main: HONO, cookieName: "session", session: true,
    vars: { SESSION_SECRET: SECRET },
  },
  {
    name: "K-rs", what: "keycard inside a workers-rs Worker (examples/workers-rs), cookie store, the visit counted: a re-issued cookie per request",
    cookieName: "keycard", rs: true, ready: countsVisits, vars: keycardVars({ SESSION_STORE: "cookie" }),
  },
  {
    name: "W", what: "bare workers-rs Worker (bench/workers/counter-rs), the same counting in a plain unsigned cookie",
    rs: true, ready: countsVisits, vars: {}, cookie: "user=alice@example.com; visits=41",
  },
].filter((v) => !process.env.BENCH_ONLY || process.env.BENCH_ONLY.split(",").includes(v.name));
// BENCH_BUILD_B=<dir with index.js + index_bg.wasm>[,<dir>...]: an A/B run. Every K
// variant also runs from each build, as "<name> B" (then C, D, ...), alternating with
// the others in the same rounds.
const OTHER_BUILDS = (process.env.BENCH_BUILD_B ?? "").split(",").filter(Boolean).map((d, i) => ({ dir: path.resolve(d), tag: String.fromCharCode(66 + i) }));
for (const b of OTHER_BUILDS) {
  for (const v of VARIANTS.filter((x) => x.main === KEYCARD && !x.build)) {
    VARIANTS.push({ ...v, name: `${v.name} ${b.tag}`, what: `${v.what}; the build in ${b.dir}`, build: b });
  }
}

const log = (...a) => console.error("bench:", ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const children = [];
let scratch;

function cleanup() {
  for (const c of children) {
    try { process.kill(-c.pid, "SIGTERM"); } catch {}
  }
}
function killHard() {
  for (const c of children) {
    try { process.kill(-c.pid, "SIGKILL"); } catch {}
  }
}
/** Stops every child: SIGTERM, a moment to exit, then SIGKILL for any left. */
async function stopChildren() {
  cleanup();
  await sleep(500);
  killHard();
}
process.on("exit", () => { cleanup(); killHard(); });
for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => { cleanup(); process.exit(130); });
const deadline = setTimeout(() => {
  console.error(`bench: gave up after ${DEADLINE_MS / 60000} minutes`);
  cleanup();
  process.exit(2);
}, DEADLINE_MS);

// ----------------------------------------------------------------- helpers --

/** One HTTP request without keep-alive; resolves with status, headers, body. */
function get(url, headers = {}, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: "utf8", ...opts });
  if (r.error) throw r.error;
  return r;
}

/** utime+stime of a process (all its threads), in clock ticks. */
function cpuTicks(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(f[11]) + Number(f[12]);
}

/** Busy and total clock ticks of the whole machine, from /proc/stat. */
function machineTicks() {
  const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3] + (f[4] || 0);
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

function sumTicks(pids) {
  let t = 0;
  for (const p of pids) { try { t += cpuTicks(p); } catch {} }
  return t;
}

/** Listening TCP ports of the given pids, from `ss -ltnpH`. */
function listeningPorts(pids) {
  const want = new Set(pids);
  const out = [];
  for (const line of run("ss", ["-ltnpH"]).stdout.split("\n")) {
    const m = line.match(/127\.0\.0\.1:(\d+)\s.*users:\((.*)\)/);
    if (!m) continue;
    for (const p of m[2].matchAll(/pid=(\d+),fd=(\d+)/g)) {
      if (want.has(Number(p[1]))) out.push({ port: Number(m[1]), pid: Number(p[1]), fd: Number(p[2]) });
    }
  }
  // Lowest fd first: workerd opens its entry socket before its debug and inspector
  // ports, so the first probe usually hits, and no HTTP is sent to the capnp debug port.
  return out.sort((a, b) => a.fd - b.fd);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
};

// ------------------------------------------------------------------ origin --

async function startNginx() {
  const dir = path.join(scratch, "nginx");
  fs.mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const conf = fs.readFileSync(path.join(BENCH, "nginx.conf"), "utf8")
    .replaceAll("@DIR@", dir)
    .replaceAll("@PORT@", String(port))
    .replaceAll("@SESSION_JSON@", SESSION_JSON);
  fs.writeFileSync(path.join(dir, "nginx.conf"), conf);
  const child = spawn("nginx", ["-p", dir, "-c", path.join(dir, "nginx.conf")], { detached: true, stdio: ["ignore", "ignore", "inherit"] });
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      const r = await get(url + "/");
      if (r.headers["x-bench-origin"]) return { url, port, log: path.join(dir, "origin.log"), pids: processTree(child.pid) };
    } catch {}
    await sleep(100);
  }
  throw new Error("nginx did not start");
}

/** The origin's access log grows one line per request: the X-Session-Status it saw. */
function originLines(o, from) {
  const size = fs.statSync(o.log).size;
  if (from === undefined) return size;
  const fd = fs.openSync(o.log, "r");
  const buf = Buffer.alloc(size - from);
  fs.readSync(fd, buf, 0, buf.length, from);
  fs.closeSync(fd);
  const lines = buf.toString().split("\n").filter(Boolean);
  return { total: lines.length, valid: lines.filter((l) => l === "valid").length };
}

// ----------------------------------------------------------------- workers --

const toml = (v) => JSON.stringify(String(v));

const fromOrigin = (r) => r.headers["x-bench-origin"];

/** Waits until `url` answers with the origin's marker header, or as `ready` says (the Worker is up). */
async function waitForOrigin(url, alive, what, ready = fromOrigin) {
  for (let i = 0; ; i++) {
    if (!alive() || i > 600) throw new Error(`${what} did not start`);
    try {
      const r = await get(url, {}, 2000);
      if (ready(r)) return;
    } catch {}
    await sleep(200);
  }
}

/** The variant in `wrangler dev`, driven at the port of the workerd that runs it. */
async function startWrangler(v, origin) {
  const slug = v.name.toLowerCase().replace(/[^a-z0-9]+/g, "-");
  const dir = path.join(scratch, `wrangler-${slug}`);
  fs.mkdirSync(dir, { recursive: true });
  const lines = [`name = ${toml("bench-" + slug)}`, `main = ${toml(v.main)}`, `compatibility_date = ${toml(COMPAT_DATE)}`];
  if (v.kv) lines.push(`kv_namespaces = [{ binding = "SESSIONS", id = "bench" }]`);
  if (v.users) lines.push(`durable_objects.bindings = [{ name = "KEYCARD_USERS", class_name = "KeycardUsers" }]`);
  lines.push("[vars]", `ORIGIN_URL = ${toml(origin.url)}`);
  const secrets = [];
  for (const [k, val] of Object.entries(v.vars)) {
    if (k.endsWith("SECRET")) secrets.push(`${k}=${toml(val)}`);
    else lines.push(`${k} = ${toml(val)}`);
  }
  if (v.users) lines.push("[[migrations]]", `tag = "v1"`, `new_sqlite_classes = ["KeycardUsers"]`);
  fs.writeFileSync(path.join(dir, "wrangler.toml"), lines.join("\n") + "\n");
  fs.writeFileSync(path.join(dir, ".dev.vars"), secrets.join("\n") + "\n");
  const port = await freePort();
  const args = [path.join(ROOT, "node_modules/wrangler/bin/wrangler.js"), "dev", "-c", path.join(dir, "wrangler.toml"),
    "--ip", "127.0.0.1", "--port", String(port), "--persist-to", path.join(dir, "state"), "--log-level", "warn",
    "--show-interactive-dev-session=false"];
  const logFile = path.join(dir, "wrangler.log");
  const out = fs.openSync(logFile, "w");
  const child = spawn(process.execPath, args, {
    cwd: dir,
    detached: true,
    // The inspector proxy off: otherwise wrangler streams every runtime event to node.
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", VSCODE_INSPECTOR_OPTIONS: ":::{}", NO_COLOR: "1", CI: "true" },
    stdio: ["ignore", out, out],
  });
  children.push(child);
  let gone = false;
  child.on("exit", () => { gone = true; });
  try {
    await waitForOrigin(`http://127.0.0.1:${port}${v.probe ?? "/"}`, () => !gone, `wrangler dev for ${v.name}`, v.ready);
  } catch (e) {
    throw new Error(e.message + ":\n" + fs.readFileSync(logFile, "utf8"));
  }
  return { ...v, host: "wrangler", child, dir, proxyPort: port, ...(await findRuntime(v, child, port)) };
}

/**
 * The workerd process that runs the user Worker listens on a port of its own; find it
 * (and its pid) by asking the other ports in the wrangler tree for the origin's marker.
 */
async function findRuntime({ name, probe = "/", ready = fromOrigin }, child, port) {
  const tree = processTree(child.pid);
  const candidates = listeningPorts(tree.filter((p) => comm(p) === "workerd")).filter((c) => c.port !== port);
  let direct;
  for (const c of candidates) {
    try {
      const r = await get(`http://127.0.0.1:${c.port}${probe}`, {}, 2000);
      if (ready(r)) { direct = c; break; }
    } catch {}
  }
  if (!direct) throw new Error(`no direct workerd port found for ${name} (candidates ${JSON.stringify(candidates)})`);
  return { port: direct.port, pid: direct.pid, others: tree.filter((p) => p !== direct.pid && p !== child.pid), url: `http://127.0.0.1:${direct.port}` };
}

/** wrangler restarts its runtime if it crashes: follow it to the new process. */
async function ensureRuntime(w) {
  if (fs.existsSync(`/proc/${w.pid}/stat`)) return;
  if (w.host !== "wrangler") throw new Error(`${w.label}: its workerd process ${w.pid} is gone`);
  log(`${w.label}: the workerd process ${w.pid} is gone; wrangler restarted it`);
  w.restarts = (w.restarts ?? 0) + 1;
  for (let i = 0; i < 100; i++) {
    try { Object.assign(w, await findRuntime(w, w.child, w.proxyPort)); return; } catch {}
    await sleep(200);
  }
  throw new Error(`${w.label}: lost its workerd process`);
}

/** K-kv's KV backend in a workerd process of its own (not measured); returns its port. */
async function startKvServer(dir) {
  const kvDir = path.join(dir, "kv-server");
  fs.mkdirSync(kvDir, { recursive: true });
  fs.copyFileSync(path.join(BENCH, "workers/memory-kv.mjs"), path.join(kvDir, "memory-kv.mjs"));
  const port = await freePort();
  const conf = fs.readFileSync(path.join(BENCH, "kv-server.capnp.in"), "utf8")
    .replaceAll("@PORT@", String(port))
    .replaceAll("@COMPAT_DATE@", COMPAT_DATE);
  fs.writeFileSync(path.join(kvDir, "kv-server.capnp"), conf);
  const out = fs.openSync(path.join(kvDir, "workerd.log"), "w");
  const child = spawn(WORKERD, ["serve", path.join(kvDir, "kv-server.capnp")], { cwd: kvDir, detached: true, stdio: ["ignore", out, out] });
  children.push(child);
  let gone = false;
  child.on("exit", () => { gone = true; });
  for (let i = 0; ; i++) {
    if (gone || i > 150) throw new Error("the KV server did not start");
    try {
      await get(`http://127.0.0.1:${port}/probe`, {}, 2000);
      return port;
    } catch {}
    await sleep(200);
  }
}

/**
 * Writes the plain-workerd config of variant `v` (bench/workerd.capnp.in) into `dir`,
 * listening on `port`; `kvPort` is its KV server's. Returns the config's path.
 */
function workerdConf(v, origin, dir, port, kvPort) {
  const modules = [];
  for (const m of v.modules) {
    const name = path.basename(m.file);
    fs.copyFileSync(m.file, path.join(dir, name));
    modules.push(`(name = ${toml(name)}, ${m.type} = embed ${toml(name)})`);
  }
  const bindings = [`(name = "ORIGIN_URL", text = ${toml(origin.url)})`];
  for (const [k, val] of Object.entries(v.vars)) bindings.push(`(name = ${toml(k)}, text = ${toml(val)})`);
  let kvService = "";
  if (kvPort) {
    bindings.push(`(name = "SESSIONS", kvNamespace = "kv")`);
    kvService = `(name = "kv", external = (address = "127.0.0.1:${kvPort}", http = ())),`;
  }
  let workerExtra = "";
  if (v.users) {
    // SQLite-backed objects (what `new_sqlite_classes` declares) need on-disk storage.
    const disk = path.join(dir, `objects-${port}`);
    fs.mkdirSync(disk, { recursive: true });
    bindings.push(`(name = "KEYCARD_USERS", durableObjectNamespace = (className = "KeycardUsers"))`);
    kvService += `(name = "objects", disk = (path = ${toml(disk)}, writable = true)),`;
    workerExtra = `durableObjectNamespaces = [(className = "KeycardUsers", uniqueKey = "bench-keycard-users", enableSql = true)],
  durableObjectStorage = (localDisk = "objects"),`;
  }
  const conf = fs.readFileSync(path.join(BENCH, "workerd.capnp.in"), "utf8")
    .replaceAll("@KV_SERVICE@", kvService)
    .replaceAll("@WORKER_EXTRA@", workerExtra)
    .replaceAll("@CONFIG_EXTRA@", v.v8Flags ? `v8Flags = [${v.v8Flags.map(toml).join(", ")}],` : "")
    .replaceAll("@PORT@", String(port))
    .replaceAll("@COMPAT_DATE@", COMPAT_DATE)
    .replaceAll("@MODULES@", modules.join(", "))
    .replaceAll("@BINDINGS@", bindings.join(", "));
  const file = path.join(dir, `workerd-${port}.capnp`);
  fs.writeFileSync(file, conf);
  return file;
}

/** The variant in a plain `workerd serve` (the binary wrangler ships) from bench/workerd.capnp.in. */
async function startWorkerd(v, origin, slug = "workerd") {
  const dir = path.join(scratch, `${slug}-${v.name.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`);
  fs.mkdirSync(dir, { recursive: true });
  const kvPort = v.kv ? await startKvServer(dir) : undefined;
  const port = await freePort();
  const conf = workerdConf(v, origin, dir, port, kvPort);
  const logFile = path.join(dir, "workerd.log");
  const out = fs.openSync(logFile, "w");
  const inspector = PROFILE && slug === "workerd" ? await freePort() : undefined;
  const args = ["serve", conf, ...(inspector ? [`--inspector-addr=127.0.0.1:${inspector}`] : [])];
  const child = spawn(WORKERD, args, { cwd: dir, detached: true, stdio: ["ignore", out, out] });
  children.push(child);
  let gone = false;
  child.on("exit", () => { gone = true; });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForOrigin(url + (v.probe ?? "/"), () => !gone, `workerd for ${v.name}`, v.ready);
  } catch (e) {
    throw new Error(e.message + ":\n" + fs.readFileSync(logFile, "utf8"));
  }
  const pid = processTree(child.pid).find((p) => comm(p) === "workerd");
  return { ...v, host: "workerd", child, dir, port, pid, others: [], url, kvPort, inspector };
}

/** Signs in through the Worker (the origin's /login sets the data) and returns the cookie. */
async function signIn(w) {
  if (w.rs) return signInRs(w);
  const r = await get(w.url + "/login");
  const sc = [].concat(r.headers["set-cookie"] ?? []).find((c) => c.startsWith(w.cookieName + "="));
  if (r.status !== 200 || !sc) throw new Error(`${w.label}: /login gave ${r.status} and no ${w.cookieName} cookie`);
  return w.bound ? bind(w, sc.split(";")[0], r.headers["secure-session-registration"]) : sc.split(";")[0];
}

/** K-bound: registers an ES256 key for the session `cookie` as the sign-in's answer
 * offered (the DBSC test client's JWT); returns both cookies (the session cookie as the
 * registration re-issued it, when it did: with the users' objects, it names the key). */
async function bind(w, cookie, offer) {
  const [reg] = parseRegistrations(offer ?? "");
  if (!reg) throw new Error(`${w.label}: the sign-in offered no binding`);
  const key = await generateKey("ES256");
  const jwt = await signJwt({ alg: "ES256", jwk: key.jwk, typ: "dbsc+jwt" }, { jti: reg.challenge }, key);
  const res = await fetch(w.url + reg.path, { method: "POST", headers: { cookie, "secure-session-response": jwt } });
  const set = res.headers.getSetCookie();
  const bound = set.find((c) => c.startsWith("__Host-keycard-bound="));
  if (res.status !== 200 || !bound) throw new Error(`${w.label}: the registration gave ${res.status} and no short-lived cookie`);
  w.device = { key, id: (await res.json()).session_identifier };
  const reissued = set.find((c) => c.startsWith(w.cookieName + "="));
  return `${(reissued ?? cookie).split(";")[0]}; ${bound.split(";")[0]}`;
}

/** K-bound's device refreshes, as a browser makes them (the challenge's 403, then the
 * proof's 200), `n` in a row: the CPU of its workerd process per refresh, in µs. The
 * client's signing is node's, not counted. */
async function refreshCost(w, n = Number(process.env.BENCH_REFRESHES ?? 300)) {
  const post = (headers) => fetch(w.url + "/.keycard/dbsc/refresh", { method: "POST", headers: { cookie: w.cookie, "sec-secure-session-id": w.device.id, ...headers } });
  const before = cpuTicks(w.pid);
  for (let i = 0; i < n; i++) {
    const asked = await post({});
    await asked.text();
    const challenge = parseChallenges(asked.headers.get("secure-session-challenge") ?? "")[0]?.challenge;
    if (asked.status !== 403 || !challenge) throw new Error(`${w.label}: a refresh gave ${asked.status} and no challenge`);
    const proof = await signJwt({ alg: "ES256", typ: "dbsc+jwt" }, { jti: challenge }, w.device.key);
    const done = await post({ "secure-session-response": proof });
    await done.text();
    if (done.status !== 200) throw new Error(`${w.label}: a refresh's proof gave ${done.status}`);
  }
  return ((cpuTicks(w.pid) - before) / CLK_TCK) * 1e6 / n;
}

/** K-rs: signs in with the example's POST /login?user=… (a 303 with the cookie). */
function signInRs(w) {
  return new Promise((resolve, reject) => {
    const req = http.request(w.url + "/login?user=alice%40example.com", { method: "POST", agent: false }, (res) => {
      res.resume();
      const sc = [].concat(res.headers["set-cookie"] ?? []).find((c) => c.startsWith(w.cookieName + "="));
      if (res.statusCode !== 303 || !sc) reject(new Error(`${w.label}: POST /login gave ${res.statusCode} and no ${w.cookieName} cookie`));
      else resolve(sc.split(";")[0]);
    });
    req.on("error", reject);
    req.end();
  });
}

/** K-rs and W: every GET / with the same cookie counts one visit past it, signed in. */
async function verifyRs(w) {
  const fail = (m) => { throw new Error(`${w.label}: ${m}`); };
  const n = 5;
  let setCookies = 0;
  let visits;
  for (let i = 0; i < n; i++) {
    const r = await get(w.url + "/", { cookie: w.cookie });
    const body = r.status === 200 ? JSON.parse(r.body) : {};
    if (body.status !== "valid" || body.user !== "alice@example.com") fail(`GET / gave ${r.status} ${r.body}`);
    if (visits !== undefined && body.visits !== visits) fail(`visits ${body.visits} after ${visits} with the same cookie`);
    visits = body.visits;
    if ([].concat(r.headers["set-cookie"] ?? []).some((c) => c.startsWith(w.name === "W" ? "visits=" : w.cookieName + "="))) setCookies++;
  }
  if (setCookies !== n) fail(`${setCookies}/${n} responses counted the visit in a Set-Cookie`);
  return `answers itself: signed in as alice@example.com, visit ${visits} counted, Set-Cookie on ${setCookies}/${n} responses`;
}

/** Before measuring: the K variants must really take the intended path. */
async function verify(w) {
  if (w.rs) return verifyRs(w);
  const notes = [];
  const fail = (m) => { throw new Error(`${w.label}: ${m}`); };
  const n = 5;
  let setCookies = 0;
  let lastStatus;
  for (let i = 0; i < n; i++) {
    const r = await get(w.url + "/verify", w.cookie ? { cookie: w.cookie } : {});
    if (r.status !== 200 || !r.headers["x-bench-origin"]) fail(`GET /verify gave ${r.status}`);
    if (Object.keys(r.headers).some((h) => /^x-session/.test(h))) fail("an X-Session* header reached the client");
    const sc = [].concat(r.headers["set-cookie"] ?? []).filter((c) => c.startsWith(w.cookieName + "="));
    if (sc.length) setCookies++;
    lastStatus = r.headers["x-saw-status"];
    if (w.name.startsWith("F-") && (r.headers["x-saw-cookie"] ?? "").includes("keycard=")) fail("the session cookie was forwarded");
    if (!w.session) continue;
    if (r.headers["x-saw-status"] !== "valid") fail(`origin saw X-Session-Status ${r.headers["x-saw-status"]}, not valid`);
    const data = JSON.parse(Buffer.from(r.headers["x-saw-session"] ?? "", "base64url").toString());
    if (!isDeepStrictEqual(data, JSON.parse(SESSION_JSON))) fail("origin saw different session data");
    if (w.name !== "H" && (r.headers["x-saw-cookie"] ?? "").includes(w.cookieName + "=")) fail("the session cookie was forwarded");
  }
  if (w.refresh && setCookies !== n) fail(`${setCookies}/${n} responses re-issued the cookie`);
  if (w.cookieName && !w.refresh && w.name !== "H") {
    if (setCookies) fail(`${setCookies}/${n} responses carried a Set-Cookie on the no-refresh path`);
  }
  if (w.session) notes.push(`origin saw X-Session-Status: valid and the ~${SESSION_JSON.length}-byte data ${n}/${n}`);
  if (w.cookieName) notes.push(`Set-Cookie on ${setCookies}/${n} responses`);
  if (w.name === "A") notes.push("forwards untouched");
  if (w.name.startsWith("F-")) notes.push(`forwards; the origin saw X-Session-Status: ${lastStatus} (a constant) and no session cookie`);
  return notes.join("; ");
}

// --------------------------------------------------------------------- wrk --

function toMs(v, unit) {
  return Number(v) * { us: 0.001, ms: 1, s: 1000 }[unit];
}

async function wrk(w, seconds) {
  const args = ["-t1", `-c${CONNECTIONS}`, `-d${seconds}s`, "--latency", "--timeout", "5s"];
  if (w.cookie) args.push("-H", `Cookie: ${w.cookie}`);
  if (BROWSER_HEADERS) for (const h of CHROME_HEADERS) args.push("-H", h);
  if (w.host === "workerd") for (const [k, v] of Object.entries(CF_HEADER)) args.push("-H", `${k}: ${v}`);
  args.push(w.url + "/");
  const child = spawn("wrk", args, { stdio: ["ignore", "pipe", "pipe"] });
  let text = "";
  child.stdout.on("data", (d) => (text += d));
  child.stderr.on("data", (d) => (text += d));
  const code = await new Promise((r) => child.on("exit", r));
  if (code !== 0) throw new Error(`wrk failed for ${w.label}:\n${text}`);
  const num = (re) => { const m = text.match(re); return m ? m : null; };
  const reqs = Number(num(/(\d+) requests in/)[1]);
  const rps = Number(num(/Requests\/sec:\s+([\d.]+)/)[1]);
  const p50 = num(/^\s+50%\s+([\d.]+)(us|ms|s)\s*$/m);
  const p99 = num(/^\s+99%\s+([\d.]+)(us|ms|s)\s*$/m);
  const non2xx = Number(num(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
  const sockErr = num(/Socket errors: (.*)/)?.[1] ?? "";
  return { reqs, rps, p50: toMs(p50[1], p50[2]), p99: toMs(p99[1], p99[2]), non2xx, sockErr, args };
}

async function measure(w, origin) {
  await ensureRuntime(w);
  const before = cpuTicks(w.pid);
  const othersBefore = w.others.map((p) => { try { return cpuTicks(p); } catch { return 0; } });
  const logFrom = originLines(origin);
  const originBefore = sumTicks(origin.pids);
  const machineBefore = machineTicks();
  const r = await wrk(w, DURATION);
  await sleep(150); // let the last responses' CPU land
  const ticks = cpuTicks(w.pid) - before;
  const machineAfter = machineTicks();
  const originTicks = sumTicks(origin.pids) - originBefore;
  const otherTicks = w.others.reduce((s, p, i) => { try { return s + cpuTicks(p) - othersBefore[i]; } catch { return s; } }, 0);
  const seen = originLines(origin, logFrom);
  const span = machineAfter.total - machineBefore.total;
  return {
    ...r,
    // Share of the whole machine busy during the run, and the part of it that was
    // neither this variant's wrangler tree nor nginx (wrk's own share included).
    busyPct: (100 * (machineAfter.busy - machineBefore.busy)) / span,
    backgroundPct: (100 * (machineAfter.busy - machineBefore.busy - ticks - otherTicks - originTicks)) / span,
    cpuUs: (ticks / CLK_TCK) * 1e6 / r.reqs,
    otherUs: (otherTicks / CLK_TCK) * 1e6 / r.reqs,
    originSaw: seen.total,
    originValid: seen.valid,
  };
}

// ---------------------------------------------------------------- cost mix --

// Cloudflare's published prices in USD per million, beyond the Workers Paid plan's
// included usage (Standard usage model), as developers.cloudflare.com showed them on
// PRICES.date: workers/platform/pricing, kv/platform/pricing and
// durable-objects/platform/pricing (an object's duration, per GB-s, is left out).
const PRICES = { date: "2026-12-01", request: 0.3, cpuMs: 0.02, kvRead: 0.5, kvWrite: 5, kvDelete: 5, doRequest: 0.15 };

// One session-day as issue 16 prices it: a sign-in, 48 reads and one change (after the
// 24th read): 50 requests, with no re-issue (the day takes seconds here). Each mode
// runs MIX_SESSIONS session-days, MIX_PARALLEL at a time over keep-alive connections,
// in a plain workerd whose KV server counts every operation; CPU is that workerd's, as
// in the rounds.
const MIX_SESSIONS = Math.max(1, Number(process.env.BENCH_MIX_SESSIONS ?? 40));
const MIX_PARALLEL = 8;
const MIX_VARIANTS = [
  { name: "K-cookie", what: "keycard, SESSION_STORE=cookie", main: KEYCARD, cookieName: "keycard", vars: keycardVars({ SESSION_STORE: "cookie" }) },
  { name: "K-auto", what: "keycard, SESSION_STORE=auto (the ~230-byte session fits the cookie)", main: KEYCARD, cookieName: "keycard", vars: keycardVars({ SESSION_STORE: "auto" }) },
  { name: "K-kv", what: "keycard, SESSION_STORE=kv", main: KEYCARD, cookieName: "keycard", vars: keycardVars({ SESSION_STORE: "kv" }) },
  // What one re-issue adds (a session used all day is re-issued every SESSION_REFRESH_AFTER,
  // 6 h by default): the same day with a 1.1 s pause before the 37th read, which is
  // re-issued under SESSION_REFRESH_AFTER=1.
  {
    name: "K-kv +1 re-issue", what: "K-kv, the day's 37th read re-issued (SESSION_REFRESH_AFTER=1, a 1.1 s pause before it)", main: KEYCARD, cookieName: "keycard",
    pause: true, vars: keycardVars({ SESSION_STORE: "kv", SESSION_REFRESH_AFTER: "1" }),
  },
  // Sign-out everywhere on: its object calls counted by bench/workers/users-count.mjs.
  {
    name: "K-users", what: "K-auto with sign-out everywhere on (KEYCARD_USERS, SESSION_REVOCATION_CHECK=writes)", main: KEYCARD, cookieName: "keycard",
    users: true, countObjects: true, vars: keycardVars({ SESSION_STORE: "auto" }),
  },
  // What a re-issue adds with sign-out everywhere on: the object is asked before the
  // refresh is forwarded and again when its fresh cookie is issued (issue 22).
  {
    name: "K-users +1 re-issue", what: "K-users, the day's 37th read re-issued (SESSION_REFRESH_AFTER=1, a 1.1 s pause before it)", main: KEYCARD, cookieName: "keycard",
    users: true, countObjects: true, pause: true, vars: keycardVars({ SESSION_STORE: "auto", SESSION_REFRESH_AFTER: "1" }),
  },
  {
    name: "K-users-always", what: "K-users with SESSION_REVOCATION_CHECK=always", main: KEYCARD, cookieName: "keycard",
    users: true, countObjects: true, vars: keycardVars({ SESSION_STORE: "auto", SESSION_REVOCATION_CHECK: "always" }),
  },
  { name: "J", what: "hand-written JS session (bench/workers/session-js.mjs): the cookie only", main: SESSION_JS, cookieName: "j", vars: { SESSION_SECRET: SECRET } },
  { name: "J-kv", what: "the same with its sessions in KV (SESSION_STORE=kv)", main: SESSION_JS, cookieName: "j", vars: { SESSION_SECRET: SECRET, SESSION_STORE: "kv" } },
  { name: "H-kv", what: "hono-sessions with its sessions in KV (HONO_KV_STORE=1)", main: HONO, cookieName: "session", vars: { SESSION_SECRET: SECRET, HONO_KV_STORE: "1" } },
].map((v) => ({ ...v, kv: true, session: true }));

/** One HTTP GET over `agent`; resolves with status and headers (the body is drained). */
function getVia(agent, url, headers) {
  return new Promise((resolve, reject) => {
    http.get(url, { headers, agent, timeout: 5000 }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers }));
    }).on("error", reject);
  });
}

/** One session-day through Worker `w`; returns how many reads the origin saw as valid. */
async function sessionDay(w, agent) {
  let cookie;
  const hit = async (p) => {
    const r = await getVia(agent, w.url + p, { ...CF_HEADER, ...(cookie ? { cookie } : {}) });
    if (r.status !== 200) throw new Error(`${w.name} (mix): GET ${p} gave ${r.status}`);
    const sc = [].concat(r.headers["set-cookie"] ?? []).find((c) => c.startsWith(w.cookieName + "="));
    if (sc) cookie = sc.split(";")[0];
    return r;
  };
  await hit("/login");
  let valid = 0;
  for (let i = 0; i < 48; i++) {
    if (i === 24) await hit("/change");
    if (i === 36 && w.pause) await sleep(1100);
    if ((await hit("/verify")).headers["x-saw-status"] === "valid") valid++;
  }
  return valid;
}

async function kvCounts(port) {
  const r = await get(`http://127.0.0.1:${port}/`, { "x-bench-counts": "1" });
  return JSON.parse(r.body);
}

/** Runs the cost mix for every MIX_VARIANTS entry; per request: CPU and KV operations. */
async function costMix(origin) {
  const out = [];
  for (const v of MIX_VARIANTS) {
    const w = await startWorkerd(v, origin, "mix");
    const agent = new http.Agent({ keepAlive: true, maxSockets: MIX_PARALLEL });
    await sessionDay(w, agent); // warm the isolate; not counted
    const objects = async () => (v.countObjects ? JSON.parse((await get(w.url + "/__bench/users")).body).calls : 0);
    const before = { ticks: cpuTicks(w.pid), kv: await kvCounts(w.kvPort), objects: await objects() };
    let next = 0, valid = 0;
    const lanes = Array.from({ length: MIX_PARALLEL }, async () => {
      while (next < MIX_SESSIONS) {
        next++;
        const n = await sessionDay(w, agent); // not `valid += await`: lanes interleave
        valid += n;
      }
    });
    await Promise.all(lanes);
    await sleep(150);
    const ticks = cpuTicks(w.pid) - before.ticks;
    const kv = await kvCounts(w.kvPort);
    const objectCalls = (await objects()) - before.objects;
    agent.destroy();
    try { process.kill(-w.child.pid, "SIGTERM"); } catch {}
    const reqs = MIX_SESSIONS * 50;
    const per = (k) => (kv[k] - before.kv[k]) / reqs;
    const row = {
      name: v.name, what: v.what, reqs, valid, reads: MIX_SESSIONS * 48,
      cpuUs: (ticks / CLK_TCK) * 1e6 / reqs, kvReads: per("reads"), kvWrites: per("writes"), kvDeletes: per("deletes"), doRequests: objectCalls / reqs,
    };
    row.usd = costPerMillion(row);
    out.push(row);
    log(`mix ${pad(v.name, 10)} ${f0(row.cpuUs)} µs/req, per 50 requests: ${f2(row.kvReads * 50)} KV reads, ${f2(row.kvWrites * 50)} writes, ${f2(row.kvDeletes * 50)} deletes; ${valid}/${row.reads} reads valid`);
  }
  return out;
}

/** USD per million requests of a mix row, by Cloudflare's prices. */
function costPerMillion(r) {
  const parts = {
    requests: PRICES.request,
    cpu: (r.cpuUs / 1000) * PRICES.cpuMs,
    kv: r.kvReads * PRICES.kvRead + r.kvWrites * PRICES.kvWrite + r.kvDeletes * PRICES.kvDelete,
    objects: r.doRequests * PRICES.doRequest,
  };
  return { ...parts, total: parts.requests + parts.cpu + parts.kv + parts.objects };
}

// -------------------------------------------------------------- cold start --

// The first request on a fresh isolate: a new workerd process per sample, timed from
// spawn until its socket accepts, then the first request, then a second one for
// comparison. workerd listens before it loads the Worker: the modules are compiled and
// evaluated (keycard's wasm instantiated) during the first request, so "spawn → first
// response" is the figure to compare. A, J, K-cookie (and K-cookie from each
// BENCH_BUILD_B build) alternate, with "A + keycard loaded" (A's pass-through with
// keycard's bundle loaded but never called: what loading the module costs). Then one
// more K-cookie sample with V8's --trace-wasm-compilation-times, whose lines say which
// wasm functions the first request compiled, and how long each took.
const COLD_SAMPLES = Math.max(1, Number(process.env.BENCH_COLD_SAMPLES ?? 7));
const LOADED = "A + keycard loaded";

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1", () => { s.destroy(); resolve(true); });
    s.on("error", () => resolve(false));
  });
}

/** One cold sample of `v`: a fresh workerd, its first and second request. */
async function coldSample(v, origin, slug, stdout = "ignore") {
  const dir = path.join(scratch, slug);
  fs.mkdirSync(dir);
  const port = await freePort();
  const conf = workerdConf(v, origin, dir, port);
  const headers = { ...CF_HEADER, ...(v.cookie ? { cookie: v.cookie } : {}) };
  const t0 = performance.now();
  const child = spawn(WORKERD, ["serve", conf], { cwd: dir, detached: true, stdio: ["ignore", stdout, stdout] });
  children.push(child);
  while (!(await canConnect(port))) {
    if (performance.now() - t0 > 30000) throw new Error(`cold start of ${v.name}: no socket after 30 s`);
    await sleep(2);
  }
  const tListen = performance.now();
  const first = await get(`http://127.0.0.1:${port}/`, headers);
  const tFirst = performance.now();
  await get(`http://127.0.0.1:${port}/`, headers);
  const tSecond = performance.now();
  try { process.kill(-child.pid, "SIGKILL"); } catch {}
  if (first.status !== 200 || !first.headers["x-bench-origin"]) throw new Error(`cold start of ${v.name}: first request gave ${first.status}`);
  return { listen: tListen - t0, first: tFirst - tListen, total: tFirst - t0, second: tSecond - tFirst };
}

/** K-cookie's first request under --trace-wasm-compilation-times: how many wasm
 * functions it compiled, their code size and V8's compile time (the second request
 * compiles nothing new, so the trace is the first request's). */
async function compileTrace(k, origin) {
  const file = path.join(scratch, "cold-trace.log");
  const out = fs.openSync(file, "w");
  await coldSample({ ...k, v8Flags: ["--trace-wasm-compilation-times"] }, origin, "cold-trace", out);
  fs.closeSync(out);
  const fns = [...fs.readFileSync(file, "utf8").matchAll(/^Compiled function \S+ using (\w+), took (\d+) μs.*bodysize (\d+)/gm)];
  return {
    functions: fns.length,
    ms: fns.reduce((s, m) => s + Number(m[2]), 0) / 1000,
    kb: fns.reduce((s, m) => s + Number(m[3]), 0) / 1024,
    tiers: [...new Set(fns.map((m) => m[1]))].join(", "),
  };
}

async function coldStarts(workers, origin) {
  const names = ["A", "J", "K-cookie", ...OTHER_BUILDS.map((b) => `K-cookie ${b.tag}`)];
  const vs = names.map((n) => workers.find((w) => w.name === n && w.host === "workerd")).filter(Boolean);
  const k = vs.find((v) => v.name === "K-cookie");
  if (k) {
    const loaded = path.join(BENCH, "workers/passthrough-keycard-loaded.mjs");
    vs.splice(1, 0, { name: LOADED, vars: k.vars, modules: [{ file: loaded, type: "esModule" }, ...k.modules] });
  }
  const samples = new Map(vs.map((v) => [v.name, []]));
  for (let i = 0; i < COLD_SAMPLES; i++) {
    for (const v of vs) samples.get(v.name).push(await coldSample(v, origin, `cold-${v.name.toLowerCase().replace(/[^a-z0-9]+/g, "-")}-${i}`));
  }
  const trace = k ? await compileTrace(k, origin) : undefined;
  const rows = vs.map((v) => {
    const xs = samples.get(v.name);
    const m = (key) => median(xs.map((x) => x[key]));
    return { name: v.name, listen: m("listen"), first: m("first"), total: m("total"), second: m("second"),
      totalMin: Math.min(...xs.map((x) => x.total)), totalMax: Math.max(...xs.map((x) => x.total)) };
  });
  return { rows, trace };
}

// ------------------------------------------------------------------ profile --

/** BENCH_PROFILE=1: V8's sampling profile of `w`'s isolate (through workerd's inspector)
 * while wrk drives it for DURATION seconds. Writes the .cpuprofile (Chrome DevTools
 * opens it) and returns the share of the isolate's busy time per kind of code and per
 * function, its own time and with its callees. Function names need a build with them:
 * scripts/build.sh with KEYCARD_BUILD_NAMES=1 (into KEYCARD_BUILD_OUT). */
async function profile(w) {
  const ws = new WebSocket(`ws://127.0.0.1:${w.inspector}/main`);
  await new Promise((resolve, reject) => { ws.on("open", resolve); ws.on("error", reject); });
  let id = 0;
  const waiting = new Map();
  ws.on("message", (m) => {
    const d = JSON.parse(m);
    waiting.get(d.id)?.(d.result);
    waiting.delete(d.id);
  });
  const send = (method, params = {}) => new Promise((resolve) => {
    waiting.set(++id, resolve);
    ws.send(JSON.stringify({ id, method, params }));
  });
  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: 100 }); // µs
  await send("Profiler.start");
  const m = await wrk(w, DURATION);
  const { profile: p } = await send("Profiler.stop");
  ws.close();
  const file = path.join(os.tmpdir(), `keycard-profile-${w.name.replace(/[^A-Za-z0-9]+/g, "-")}.cpuprofile`);
  fs.writeFileSync(file, JSON.stringify(p));
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const name = (n) => n.callFrame.functionName || "(anonymous)";
  const kind = (n) => (n.callFrame.url.includes("wasm") ? "wasm" : n.callFrame.url ? "js" : ["(program)", "(garbage collector)"].includes(name(n)) ? name(n) : "runtime");
  const own = new Map(), withCallees = new Map(), kinds = new Map();
  const add = (map, k, t) => map.set(k, (map.get(k) ?? 0) + t);
  let busy = 0;
  p.samples.forEach((sid, i) => {
    const n = nodes.get(sid);
    const t = p.timeDeltas[i] ?? 0;
    if (name(n) === "(idle)") return;
    busy += t;
    add(kinds, kind(n), t);
    add(own, `${kind(n)} ${name(n)}`, t);
    const seen = new Set();
    for (let x = sid; x !== undefined; x = parent.get(x)) {
      const f = nodes.get(x);
      if (kind(f) === "js" && !seen.has(name(f))) { seen.add(name(f)); add(withCallees, name(f), t); }
    }
  });
  const top = (map, k) => [...map].sort((a, b) => b[1] - a[1]).slice(0, k).map(([n, t]) => `${f1(100 * t / busy).padStart(5)}%  ${n.slice(0, 110)}`);
  return [
    `## ${w.label}: ${f0(m.rps)} req/s; the isolate busy ${f0(busy / 1000)} ms of ${DURATION} s (${file})`,
    "by kind:", ...top(kinds, 6), "own time:", ...top(own, 25), "with callees (JS functions):", ...top(withCallees, 15),
  ].join("\n");
}

// --------------------------------------------------------------- criterion --

function criterion() {
  log("criterion: cargo bench --bench core (native, compiles first)");
  const args = ["bench", "--bench", "core", "--", "--warm-up-time", "1", "--measurement-time", "3"];
  const r = run("cargo", args, { cwd: ROOT, maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    process.stderr.write(r.stderr.slice(-4000));
    return { ok: false, cmd: "cargo " + args.join(" "), results: [] };
  }
  const results = [];
  for (const m of r.stdout.matchAll(/^(\S[^\n]*?)\s*\n?\s+time:\s+\[([\d.]+) (\S+) ([\d.]+) (\S+) ([\d.]+) (\S+)\]/gm)) {
    const us = (v, u) => Number(v) * { ps: 1e-6, ns: 1e-3, "µs": 1, us: 1, ms: 1e3, s: 1e6 }[u];
    results.push({ name: m[1].trim(), low: us(m[2], m[3]), mid: us(m[4], m[5]), high: us(m[6], m[7]) });
  }
  return { ok: true, cmd: "cargo " + args.join(" "), results };
}

// -------------------------------------------------------------------- main --

function versions() {
  const v = (cmd, args, re) => {
    try {
      const r = run(cmd, args);
      const m = (r.stdout + r.stderr).match(re);
      return m ? m[1] : "?";
    } catch { return "?"; }
  };
  const pkg = (name) => { try { return JSON.parse(fs.readFileSync(path.join(ROOT, "node_modules", name, "package.json"))).version; } catch { return "?"; } };
  return {
    node: process.versions.node,
    wrangler: pkg("wrangler"),
    workerd: pkg("workerd"),
    hono: pkg("hono"),
    honoSessions: pkg("hono-sessions"),
    nginx: v("nginx", ["-v"], /nginx\/(\S+)/),
    wrk: v("wrk", ["-v"], /wrk (\S+)/),
    rustc: v("rustc", ["--version"], /rustc (\S+)/),
  };
}

function machine() {
  const cpu = fs.readFileSync("/proc/cpuinfo", "utf8").match(/model name\s*:\s*(.*)/)?.[1] ?? "?";
  return { nproc: os.availableParallelism?.() ?? os.cpus().length, cpu, kernel: os.release(), memGb: (os.totalmem() / 2 ** 30).toFixed(0) };
}

function gitRev() {
  const rev = run("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT }).stdout.trim();
  const dirty = run("git", ["status", "--porcelain", "--", "src", "Cargo.toml", "Cargo.lock"], { cwd: ROOT }).stdout.trim();
  return rev + (dirty ? " (with uncommitted changes to src/ or Cargo.*)" : "");
}

const f0 = (x) => x.toFixed(0);
const f1 = (x) => x.toFixed(1);
const f2 = (x) => x.toFixed(2);
const pad = (s, n) => String(s).padEnd(n);

async function main() {
  const t0 = Date.now();
  for (const bin of ["nginx", "wrk"]) {
    if (run("sh", ["-c", `command -v ${bin}`]).status !== 0) throw new Error(`${bin} is missing: run scripts/setup.sh bench (make bench does)`);
  }
  if (!fs.existsSync(path.join(ROOT, "build/index_bg.wasm"))) throw new Error("build/index_bg.wasm is missing: run make build (make bench does)");
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), "keycard-bench-"));
  // A private copy of the build: wrangler dev reloads when its entry changes, and a
  // rebuild in the checkout during the run must not swap the Worker under measurement.
  const copyBuild = (from, to) => {
    fs.mkdirSync(to);
    for (const f of ["index.js", "index_bg.wasm"]) fs.copyFileSync(path.join(from, f), path.join(to, f));
    return to;
  };
  const kdir = copyBuild(path.join(ROOT, "build"), path.join(scratch, "keycard-build"));
  const rsWasm = {};
  for (const v of VARIANTS.filter((x) => x.rs)) {
    const from = RS_BUILDS[v.name];
    if (!fs.existsSync(path.join(from, "index_bg.wasm"))) throw new Error(`${from} is missing: run make example-rs and scripts/build-rs.sh bench/workers/counter-rs (make bench does)`);
    const dir = copyBuild(from, path.join(scratch, `${v.name}-build`));
    v.main = path.join(dir, "index.js");
    const w = fs.readFileSync(path.join(dir, "index_bg.wasm"));
    rsWasm[v.name] = { raw: w.length, gzip: zlib.gzipSync(w, { level: 9 }).length };
  }
  for (const b of OTHER_BUILDS) b.copy = copyBuild(b.dir, path.join(scratch, `keycard-build-${b.tag.toLowerCase()}`));
  const wasm = fs.readFileSync(path.join(kdir, "index_bg.wasm"));
  const wasmSize = { raw: wasm.length, gzip: zlib.gzipSync(wasm, { level: 9 }).length };
  log(`wasm ${wasmSize.raw} bytes raw, ${wasmSize.gzip} gzipped`);
  // Built and optimised as keycard is; absent when run.mjs runs without make bench.
  if (fs.existsSync(SIZE_FLOOR)) {
    const w = fs.readFileSync(SIZE_FLOOR);
    wasmSize.floor = { raw: w.length, gzip: zlib.gzipSync(w, { level: 9 }).length };
    log(`the libraries alone: ${wasmSize.floor.raw} bytes raw, ${wasmSize.floor.gzip} gzipped`);
  }
  // Plain workerd gets no bundler: bundle H the way wrangler would (esbuild, worker conditions).
  const hBundle = path.join(scratch, "hono-session.bundle.mjs");
  const EXTRAS = HOSTS.includes("workerd") && !process.env.BENCH_SKIP_EXTRAS;
  if ((HOSTS.includes("workerd") && VARIANTS.some((v) => v.main === HONO)) || EXTRAS) {
    const r = run(path.join(ROOT, "node_modules/.bin/esbuild"), [path.join(BENCH, "workers/hono-session.mjs"), "--bundle", "--format=esm",
      "--platform=neutral", "--main-fields=module,main", "--conditions=workerd,worker,browser", `--outfile=${hBundle}`, "--log-level=warning"]);
    if (r.status !== 0) throw new Error("esbuild failed for H:\n" + r.stderr);
  }
  for (const v of [...VARIANTS, ...MIX_VARIANTS]) {
    if (v.main === KEYCARD || v.rs) {
      const dir = v.rs ? path.dirname(v.main) : v.build ? v.build.copy : kdir;
      v.main = path.join(dir, "index.js");
      v.modules = [{ file: path.join(dir, "index.js"), type: "esModule" }, { file: path.join(dir, "index_bg.wasm"), type: "wasm" }];
      // The counting wrapper first: workerd's main module is the first one.
      if (v.countObjects) v.modules.unshift({ file: path.join(BENCH, "workers/users-count.mjs"), type: "esModule" });
    } else if (v.main === HONO) {
      v.modules = [{ file: hBundle, type: "esModule" }];
    } else {
      v.modules = [{ file: v.main, type: "esModule" }];
    }
  }

  const origin = await startNginx();
  log(`origin: nginx on ${origin.url}`);
  log(`starting ${VARIANTS.length} variants × ${HOSTS.join(" + ")}`);
  const starts = [];
  for (const v of VARIANTS) {
    for (const host of HOSTS) {
      if (v.hosts && !v.hosts.includes(host)) continue;
      starts.push((host === "wrangler" ? startWrangler : startWorkerd)(v, origin));
    }
  }
  const workers = await Promise.all(starts);
  for (const w of workers) {
    w.label = `${w.name} (${w.host})`;
    log(`${pad(w.label, 22)} workerd pid ${w.pid} on port ${w.port}` + (w.proxyPort ? ` (wrangler's own port ${w.proxyPort})` : ""));
  }

  for (const w of workers) if (w.cookieName && !w.cookie) w.cookie = await signIn(w);
  // The floor variants get K-cookie's request, cookie included.
  for (const w of workers) if (w.cookieFrom) w.cookie = workers.find((x) => x.name === w.cookieFrom && x.host === w.host)?.cookie;
  if (workers.some((w) => w.refresh)) await sleep(1200); // K-refresh's cookie must be older than 1 s
  for (const w of workers) {
    w.check = await verify(w);
    log(`${pad(w.label, 22)} path check: ${w.check}`);
  }

  if (WARMUP) {
    log(`warm-up: ${WARMUP} s each`);
    for (const w of workers) await wrk(w, WARMUP);
  }
  if (PROFILE) {
    for (const w of workers.filter((x) => x.inspector)) process.stdout.write((await profile(w)) + "\n\n");
    await stopChildren();
    clearTimeout(deadline);
    return;
  }
  const rounds = [];
  const names = VARIANTS.map((v) => v.name);
  for (let r = 0; r < ROUNDS; r++) {
    // Rotate the order every round so no variant always runs first or last.
    const order = names.map((_, i) => names[(i + r) % names.length]);
    for (const name of order) {
      const hosts = r % 2 ? [...HOSTS].reverse() : HOSTS;
      for (const host of hosts) {
        const w = workers.find((x) => x.name === name && x.host === host);
        if (!w) continue; // a variant that runs in one host only
        const m = await measure(w, origin);
        rounds.push({ round: r + 1, variant: w.name, host, ...m });
        log(`round ${r + 1} ${pad(w.label, 22)} ${f0(m.cpuUs).padStart(5)} µs/req ${f0(m.rps).padStart(6)} req/s  p50 ${f2(m.p50)} ms  p99 ${f2(m.p99)} ms  machine busy ${f0(m.busyPct)}%` +
          (m.non2xx ? `  NON-2XX ${m.non2xx}` : "") + (m.sockErr ? `  socket errors: ${m.sockErr}` : ""));
      }
    }
  }
  // Not in the rounds: a device refresh, what a session-day costs, and the first request
  // on a fresh isolate.
  const bound = workers.find((x) => x.name === "K-bound" && x.host === "workerd");
  const refreshUs = bound ? await refreshCost(bound) : undefined;
  if (refreshUs !== undefined) log(`a device refresh (K-bound): ${f0(refreshUs)} µs of workerd CPU`);
  const boundUsers = workers.find((x) => x.name === "K-bound-users" && x.host === "workerd");
  const refreshUsersUs = boundUsers ? await refreshCost(boundUsers) : undefined;
  if (refreshUsersUs !== undefined) log(`a device refresh (K-bound-users): ${f0(refreshUsersUs)} µs of workerd CPU`);
  const mix = EXTRAS ? await costMix(origin) : [];
  const cold = EXTRAS ? await coldStarts(workers, origin) : { rows: [] };
  await stopChildren();
  for (const w of workers) if (w.restarts) w.check += `; **its workerd process restarted ${w.restarts} time(s) during the run**`;

  const summary = workers.map((w) => {
    const rs = rounds.filter((x) => x.variant === w.name && x.host === w.host);
    return {
      name: w.name, host: w.host, what: w.what, check: w.check, session: w.session, rs: w.rs, refresh: w.refresh,
      cpuUs: median(rs.map((x) => x.cpuUs)), otherUs: median(rs.map((x) => x.otherUs)),
      cpuMin: Math.min(...rs.map((x) => x.cpuUs)), cpuMax: Math.max(...rs.map((x) => x.cpuUs)),
      rps: median(rs.map((x) => x.rps)), p50: median(rs.map((x) => x.p50)), p99: median(rs.map((x) => x.p99)),
      reqs: rs.reduce((s, x) => s + x.reqs, 0), non2xx: rs.reduce((s, x) => s + x.non2xx, 0),
      originSaw: rs.reduce((s, x) => s + x.originSaw, 0), originValid: rs.reduce((s, x) => s + x.originValid, 0),
    };
  });
  const crit = process.env.BENCH_SKIP_CRITERION ? { ok: true, skipped: true, results: [] } : criterion();
  const seconds = Math.round((Date.now() - t0) / 1000);
  const md = report({ summary, rounds, wasmSize, rsWasm, crit, seconds, mix, cold, refreshUs, refreshUsersUs, wrkArgs: rounds[0]?.args ?? [] });
  // After the rounds, two scripts of their own: what a sign-in with an identity provider
  // costs (its own workerd), and keycard's own work apart from the runtime, hot and
  // cold (steadier than the rounds).
  if (EXTRAS) {
    for (const [title, script, args] of [
      ["Signing in", "sign-in.mjs", []],
      ["keycard's own work", "own-work.mjs", [path.dirname(KEYCARD), ...OTHER_BUILDS.map((b) => b.dir)]],
    ]) {
      log(`${title} (bench/${script})`);
      const r = run(process.execPath, [path.join(BENCH, script), ...args], { timeout: 10 * 60 * 1000 });
      const block = r.status === 0 ? r.stdout.trim() : `### ${title}\n\nbench/${script} failed:\n\n\`\`\`\n${(r.stderr || "").slice(-2000)}\n\`\`\``;
      md.full += "\n\n" + block + "\n";
      md.terminal += "\n\n" + block + "\n";
    }
  }
  process.stdout.write("\n" + md.terminal + "\n");
  if (OUT !== "-") {
    const begin = "<!-- bench:begin (generated by bench/run.mjs; edit outside these markers) -->";
    const end = "<!-- bench:end -->";
    let doc = fs.existsSync(OUT) ? fs.readFileSync(OUT, "utf8") : "";
    const block = `${begin}\n${md.full}\n${end}`;
    if (doc.includes(begin) && doc.includes(end)) {
      doc = doc.slice(0, doc.indexOf(begin)) + block + doc.slice(doc.indexOf(end) + end.length);
    } else {
      doc = "# keycard benchmarks\n\n" + block + "\n";
    }
    fs.writeFileSync(OUT, doc);
    log(`wrote ${path.relative(process.cwd(), OUT) || OUT}`);
  }
  fs.rmSync(scratch, { recursive: true, force: true });
  clearTimeout(deadline);
  const bad = summary.filter((s) => s.non2xx || (s.session && s.originValid !== s.originSaw));
  for (const m of mix) if (m.valid !== m.reads) bad.push({ name: m.name, host: "cost mix" });
  if (bad.length) {
    console.error(`bench: invalid run: ${bad.map((s) => `${s.name} (${s.host})`).join(", ")} had non-2xx responses or requests without a valid session`);
    process.exit(1);
  }
  if (!crit.ok) {
    console.error("bench: cargo bench failed");
    process.exit(1);
  }
}

const HOST_TITLE = {
  workerd: "plain workerd (the Worker's own cost)",
  wrangler: "wrangler dev (as issue 7 prescribes; includes miniflare's per-request plumbing)",
};

function mdTable(h, rs) {
  return [`| ${h.join(" | ")} |`, `| ${h.map(() => "---").join(" | ")} |`, ...rs.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

function hostTable(summary, host) {
  const rowsOf = summary.filter((s) => s.host === host);
  const A = rowsOf.find((s) => s.name === "A");
  // The hand-written peer on the same path: J-refresh for the re-issue rows, J-kv for
  // those with a KV read per request, J for the rest.
  const jOf = (s) => rowsOf.find((x) => x.name === (s.refresh ? "J-refresh" : s.kv ? "J-kv" : "J"));
  const ratio = (x, a) => (a ? `${f2(x / a)}×` : "");
  return mdTable(
    ["variant", "CPU µs/req", "(range)", "vs A", "vs J", "req/s", "vs A", "p50 ms", "vs A", "p99 ms", "vs A", "origin saw valid/total"],
    rowsOf.map((s) => [
      s.name,
      f0(s.cpuUs), `${f0(s.cpuMin)}–${f0(s.cpuMax)}`, ratio(s.cpuUs, A?.cpuUs), ratio(s.cpuUs, jOf(s)?.cpuUs),
      f0(s.rps), ratio(s.rps, A?.rps),
      f2(s.p50), ratio(s.p50, A?.p50),
      f2(s.p99), ratio(s.p99, A?.p99),
      s.rs ? "– (answers itself)" : s.session ? `${s.originValid}/${s.originSaw}` : `${s.originSaw}`,
    ]),
  );
}

function targetTable(summary, rounds, wasmSize, crit) {
  const rows = [];
  const by = (host, n) => summary.find((s) => s.host === host && s.name === n);
  const cell = (host, f) => {
    const v = f(host);
    if (!v) return "–";
    return `${v.text} ${v.ok ? "met" : "**not met**"}`;
  };
  const ratioCheck = (a, b, field, limit, atLeast) => (host) => {
    const x = by(host, a), y = by(host, b);
    if (!x || !y) return null;
    const r = x[field] / y[field];
    return { text: `${f2(r)}×`, ok: atLeast ? r >= limit : r <= limit };
  };
  const add = (label, f) => rows.push([label, ...HOSTS.map((h) => cell(h, f))]);
  add("K-cookie CPU ≤ 0.90× J (16)", ratioCheck("K-cookie", "J", "cpuUs", 0.9));
  add("K-cookie CPU ≤ 1.25× A (16)", ratioCheck("K-cookie", "A", "cpuUs", 1.25));
  add("K-refresh CPU ≤ 0.90× J-refresh (16)", ratioCheck("K-refresh", "J-refresh", "cpuUs", 0.9));
  add("K-kv CPU ≤ 1.05× F-kv (16)", ratioCheck("K-kv", "F-kv", "cpuUs", 1.05));
  add("K-guard CPU ≤ 1.03× K-cookie (12)", ratioCheck("K-guard", "K-cookie", "cpuUs", 1.03));
  add("K-users CPU ≤ 1.03× K-cookie (13: a read with sign-out everywhere on, writes mode)", ratioCheck("K-users", "K-cookie", "cpuUs", 1.03));
  add("K-cookie req/s ≥ 2× H (7)", ratioCheck("K-cookie", "H", "rps", 2, true));
  add("K-cookie CPU ≤ 0.5× H (7)", ratioCheck("K-cookie", "H", "cpuUs", 0.5));
  add("K-rs CPU ≤ 1.15× W (14: what keycard adds to a workers-rs app)", ratioCheck("K-rs", "W", "cpuUs", 1.15));
  // Issue 26's: the median of the per-round ratios, with their spread, since one round's
  // noise here is wider than the margins.
  const perRound = (a, b, limit) => (host) => {
    const cpu = (n, r) => rounds.find((x) => x.variant === n && x.host === host && x.round === r)?.cpuUs;
    const rs = [...new Set(rounds.map((x) => x.round))].map((r) => cpu(a, r) / cpu(b, r)).filter((x) => x > 0);
    if (!rs.length) return null;
    const m = median(rs);
    return { text: `${f2(m)}× (per round ${f2(Math.min(...rs))}–${f2(Math.max(...rs))})`, ok: m <= limit };
  };
  add("K-cookie CPU ≤ 1.05× F-hdr (26: keycard's own work)", perRound("K-cookie", "F-hdr", 1.05));
  add("K-cookie CPU ≤ 0.95× J (26)", perRound("K-cookie", "J", 0.95));
  add("K-refresh CPU ≤ 0.95× J-refresh (26)", perRound("K-refresh", "J-refresh", 0.95));
  add("K-kv CPU ≤ 1.05× J-kv (26)", perRound("K-kv", "J-kv", 1.05));
  add("K-bound CPU ≤ 1.03× K-kv (27: a bound session's read)", perRound("K-bound", "K-kv", 1.03));
  add("K-bound-users CPU ≤ 1.03× K-users (27: the same, kept in the users' objects)", perRound("K-bound-users", "K-users", 1.03));
  add("K-bound-users CPU ≤ 1.03× K-cookie (27, in the issue's words: \"over K-cookie\")", perRound("K-bound-users", "K-cookie", 1.03));
  // Not targets: the floors say how much of each gap any forwarding Worker would pay.
  const ratio = (a, b) => (host) => {
    const x = by(host, a), y = by(host, b);
    return x && y ? `${f2(x.cpuUs / y.cpuUs)}×` : "–";
  };
  const info = (label, f) => rows.push([label, ...HOSTS.map((h) => f(h))]);
  info("*floor:* F-hdr CPU vs A (header work, no sessions)", ratio("F-hdr", "A"));
  info("*floor:* F-kv CPU vs A (F-hdr + one KV read)", ratio("F-kv", "A"));
  info("*keycard's own:* K-kv CPU vs F-kv", ratio("K-kv", "F-kv"));
  info("*floor:* J-kv CPU vs F-kv (the hand-written session over KV)", ratio("J-kv", "F-kv"));
  const fixed = (label, text, ok) => rows.push([label, ...HOSTS.map(() => `${text} ${ok ? "met" : "**not met**"}`)]);
  fixed("wasm ≤ 110 KB gzipped (16)", `${(wasmSize.gzip / 1000).toFixed(1)} KB`, wasmSize.gzip <= 110_000);
  if (wasmSize.floor) info("*floor:* the libraries alone (bench/size-floor), gzipped", () => `${(wasmSize.floor.gzip / 1000).toFixed(1)} KB`);
  const read = crit.results.find((r) => r.name.startsWith("session::read"));
  if (read) fixed("core session::read ≤ 2.5 µs native (16)", `${f2(read.mid)} µs`, read.mid <= 2.5);
  return mdTable(["target (issue)", ...HOSTS.map((h) => h)], rows);
}

function mixSection(mix) {
  if (!mix.length) return "";
  const usd = (x) => `$${x.toFixed(x < 0.1 ? 4 : 3)}`;
  const table = mdTable(
    ["mode", "what runs", "CPU µs/req", "KV reads", "KV writes", "KV deletes", "DO requests", "requests $", "CPU $", "KV $", "DO $", "**total $ per million requests**"],
    mix.map((m) => [m.name, m.what, f0(m.cpuUs), f2(m.kvReads * 50), f2(m.kvWrites * 50), f2(m.kvDeletes * 50), f2(m.doRequests * 50),
      usd(m.usd.requests), usd(m.usd.cpu), usd(m.usd.kv), usd(m.usd.objects), `**${usd(m.usd.total)}**`]),
  );
  return `### Cost per million requests (the cost mix)

One session-day is a sign-in, 48 reads and one change: 50 requests. ${MIX_SESSIONS} session-days per mode, ${MIX_PARALLEL} at a time,
in a plain workerd whose KV server counts every operation (the KV and object columns are per session-day, from those counters;
"DO requests" are the calls to users' Durable Objects, counted by bench/workers/users-count.mjs in the K-users rows, whose CPU
includes that wrapper, and 0 in every other mode). CPU is this machine's, measured like the rounds. Prices: Cloudflare's
Workers Paid plan beyond its included usage, as published on ${PRICES.date}: $${PRICES.request}/M requests, $${PRICES.cpuMs}/M CPU ms,
KV $${PRICES.kvRead}/M reads, $${PRICES.kvWrite}/M writes, $${PRICES.kvDelete}/M deletes, Durable Objects $${PRICES.doRequest}/M requests.

${table}`;
}

function coldSection(cold) {
  if (!cold.rows?.length) return "";
  const A = cold.rows.find((c) => c.name === "A");
  const table = mdTable(
    ["variant", "spawn → socket ms", "first request ms", "spawn → first response ms", "(range)", "vs A", "second request ms"],
    cold.rows.map((c) => [c.name, f2(c.listen), f2(c.first), f2(c.total), `${f2(c.totalMin)}–${f2(c.totalMax)}`,
      A ? `${c.total >= A.total ? "+" : "−"}${f2(Math.abs(c.total - A.total))} ms` : "", f2(c.second)]),
  );
  const t = cold.trace;
  const trace = t ? `\n\nK-cookie's first request compiled ${t.functions} wasm functions (${f0(t.kb)} KB of code, ${t.tiers}) in ${f2(t.ms)} ms of V8's
compile time (one more sample, with \`--trace-wasm-compilation-times\`): V8 compiles a wasm function when it is
first called, so that time is part of every isolate's first request.` : "";
  return `### Cold start (a fresh workerd process per sample)

Medians of ${COLD_SAMPLES} alternating samples. workerd opens its socket before it loads the Worker: each variant's
modules are compiled and evaluated (keycard's wasm instantiated, its configuration parsed) during its first
request, so "spawn → first response" is what to compare. "${LOADED}" is A with keycard's bundle loaded but never
called.

${table}${trace}`;
}

function report({ summary, rounds, wasmSize, rsWasm, crit, seconds, mix, cold, refreshUs, refreshUsersUs, wrkArgs }) {
  const m = machine();
  const ver = versions();
  const when = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const background = median(rounds.map((r) => r.backgroundPct));
  const quiet = background < 15
    ? `The machine was otherwise quiet: a median ${f0(background)}% of its CPU went to anything but the measured workerd, its wrangler tree and nginx (wrk included).`
    : `**The machine was busy with other work during this run:** a median ${f0(background)}% of its CPU went to processes outside the bench (wrk included), so absolute figures, and req/s and latency above all, are inflated and noisy. CPU per request is the steadiest figure; the ratios come from alternating rounds in one run.`;
  const tables = HOSTS.map((h) => `### ${HOST_TITLE[h]}\n\n${hostTable(summary, h)}`).join("\n\n");
  const targets = targetTable(summary, rounds, wasmSize, crit);
  const roundRows = rounds.map((r) => [r.round, r.variant, r.host, f0(r.cpuUs), f0(r.otherUs), f0(r.rps), f2(r.p50), f2(r.p99), r.reqs, r.non2xx, f0(r.busyPct), f0(r.backgroundPct)]);
  const critRows = crit.results.map((r) => [r.name, f2(r.mid), `${f2(r.low)} – ${f2(r.high)}`]);
  const variants = [...new Map(summary.map((s) => [s.name, s])).values()];
  const shown = (a) => (a.startsWith("Cookie:") ? "'Cookie: <session cookie>'" : a.startsWith("cf-blob:") ? "'cf-blob: <bench/cf.json>'" : a);
  const wrkCmd = ["wrk", ...wrkArgs.slice(0, -1).map(shown), "http://127.0.0.1:<port>/"].join(" ");

  const full = `## Latest run

${when}, keycard ${gitRev()}; \`node bench/run.mjs\` took ${seconds} s (after the build).

**Machine:** ${m.nproc} cores (nproc), ${m.cpu}, ${m.memGb} GB, Linux ${m.kernel}.
**Software:** node ${ver.node}, wrangler ${ver.wrangler}, workerd ${ver.workerd}, nginx ${ver.nginx}, wrk ${ver.wrk}, rustc ${ver.rustc}, hono ${ver.hono}, hono-sessions ${ver.honoSessions}.

Each variant runs twice: in a plain \`workerd serve\` (bench/workerd.capnp.in) and in
\`wrangler dev\`, each instance its own workerd process, all in front of one nginx-light
origin on loopback. Medians of ${ROUNDS} alternating rounds, ${DURATION} s each (\`wrk -t1 -c${CONNECTIONS}\`,
after a ${WARMUP} s warm-up). **CPU** is the utime+stime of the workerd process running the Worker,
per request completed; "vs A" is the ratio to the JS pass-through in the same host, "vs J" to the
hand-written JS session on the same path (J-refresh for the re-issue rows, J-kv for those with a KV read).
${quiet}

${tables}

| variant | what runs |
| --- | --- |
${variants.map((s) => `| ${s.name} | ${s.what} |`).join("\n")}

**Targets:**

${targets}
${refreshUs === undefined ? "" : `\n**A device refresh** (issue 27; K-bound in plain workerd, ${process.env.BENCH_REFRESHES ?? 300} in a row, each the challenge's 403 and the proof's 200 with its WebCrypto check and KV write): ${f0(refreshUs)} µs of workerd CPU.\n`}${refreshUsersUs === undefined ? "" : `\n**A device refresh with the users' objects** (K-bound-users, the same, with its three object calls, the objects in the same process): ${f0(refreshUsersUs)} µs of workerd CPU.\n`}
${[mixSection(mix), coldSection(cold)].filter(Boolean).join("\n\n")}

**wasm:** build/index_bg.wasm is ${wasmSize.raw} bytes raw, ${wasmSize.gzip} bytes gzipped (zlib level 9).${wasmSize.floor ? ` The libraries it links, alone (bench/size-floor/build/index_bg.wasm): ${wasmSize.floor.raw} bytes raw, ${wasmSize.floor.gzip} gzipped.` : ""}${Object.entries(rsWasm).map(([n, x]) => ` ${n}'s (${path.relative(ROOT, RS_BUILDS[n])}/index_bg.wasm): ${x.raw} bytes raw, ${x.gzip} gzipped.`).join("")}

**Criterion, native core** (\`${crit.cmd ?? "skipped"}\`; time per iteration, µs, same profile as the release build):

${crit.skipped ? "skipped (BENCH_SKIP_CRITERION)" : crit.ok ? mdTable(["benchmark", "median µs", "95% interval"], critRows) : "cargo bench failed"}

**Path checks before measuring** (5 sequential requests each to the origin's \`/verify\`, which echoes what it received):

${summary.map((s) => `- ${s.name} (${s.host}): ${s.check}`).join("\n")}

During the measured runs the origin logged the X-Session-Status of every request it received; the
last column of the tables shows that every K and H request carried a valid session.

**Commands** (\`make bench\` = \`scripts/setup.sh bench\` + \`make build\` + \`node bench/run.mjs\`):

\`\`\`sh
nginx -p <scratch> -c <scratch>/nginx.conf                    # bench/nginx.conf on a free 127.0.0.1 port
workerd serve <scratch>/workerd.capnp                         # bench/workerd.capnp.in, per variant
VSCODE_INSPECTOR_OPTIONS=':::{}' WRANGLER_SEND_METRICS=false \\
  node node_modules/wrangler/bin/wrangler.js dev -c wrangler.toml --ip 127.0.0.1 --port <free> \\
  --persist-to state --log-level warn --show-interactive-dev-session=false   # per variant
${wrkCmd}   # per measurement, at the port of the Worker's own workerd
# CPU: utime+stime of that workerd from /proc/<pid>/stat before and after, divided by requests
${crit.cmd ?? "cargo bench --bench core"}
\`\`\`

Knobs: \`BENCH_ROUNDS\` (3), \`BENCH_DURATION\` (5 s), \`BENCH_CONNECTIONS\` (10), \`BENCH_WARMUP\` (3 s),
\`BENCH_HOSTS=workerd,wrangler\`, \`BENCH_ONLY=A,K-cookie\`, \`BENCH_SKIP_CRITERION=1\`, \`BENCH_OUT\` (\`-\` prints only),
\`BENCH_BUILD_B=<dir>[,<dir>…]\` (A/B: every K variant also runs from each build, as "K-… B", "K-… C", in the same rounds),
\`BENCH_SKIP_EXTRAS=1\` (no cost mix, cold start, sign-in or own work), \`BENCH_MIX_SESSIONS\` (40), \`BENCH_COLD_SAMPLES\` (7),
\`BENCH_CF=1\` (plain workerd requests carry the \`request.cf\` of bench/cf.json), \`BENCH_BROWSER_HEADERS=1\` (Chrome's navigation headers on every measured request),
\`BENCH_PROFILE=1\` (no rounds: a CPU profile of each variant's isolate, printed).

<details><summary>Every measurement</summary>

${mdTable(["round", "variant", "host", "CPU µs/req", "other µs/req", "req/s", "p50 ms", "p99 ms", "requests", "non-2xx", "machine busy %", "background %"], roundRows)}

"machine busy" is the whole machine's CPU use during the measurement; "background" is what
remains after the measured workerd, its wrangler tree and nginx (so it includes wrk). "other"
is the CPU of the rest of the wrangler dev tree per request: near zero shows the load bypassed
wrangler's proxy.
</details>`;
  const rsSizes = Object.entries(rsWasm).map(([n, x]) => `${n} wasm: ${x.raw} bytes raw, ${x.gzip} gzipped`).join("\n");
  const terminal = HOSTS.map((h) => `${HOST_TITLE[h]}\n${hostTable(summary, h)}`).join("\n\n") + "\n\n" + targets +
    [mixSection(mix), coldSection(cold)].filter(Boolean).map((x) => "\n\n" + x).join("") + (rsSizes ? "\n\n" + rsSizes : "");
  return { terminal, full };
}

main().catch((e) => {
  console.error("bench:", e.stack || e.message);
  cleanup();
  process.exit(1);
});
