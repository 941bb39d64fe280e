// What signing in with a provider costs keycard, in a plain workerd (the binary wrangler
// ships, configured from bench/workerd.capnp.in as `make bench` runs every variant),
// against the rogue provider of the e2e suite answering as a well-behaved one:
//   - the CPU of a whole sign-in in keycard's Worker process: the login's redirect and
//     the callback (metadata and keys cached, as after an isolate's first sign-in; the
//     code exchange, the ID token's checks, its signature verified by WebCrypto, the
//     session made), for RS256 and ES256;
//   - a signed-in request after that sign-in against one after the origin's own sign-in
//     with the same data (K-cookie's request), in alternating rounds.
// CPU is read from /proc/<pid>/task/*/schedstat (nanoseconds) of workerd's threads.
// Printed as a Markdown block; `make bench` appends it to BENCHMARKS.md.
//
//   node bench/sign-in.mjs            (after `make build`)
//   BENCH_SIGNIN_ROUNDS=5 BENCH_SIGNIN_N=200 node bench/sign-in.mjs
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { Client, freePort } from "../tests/e2e/lib/harness.mjs";
import { startRogueProvider } from "../tests/e2e/lib/rogue-provider.mjs";
import { processTree, comm } from "./proc.mjs";
import { SECRET } from "./session.mjs";

const ROUNDS = Math.max(1, Number(process.env.BENCH_SIGNIN_ROUNDS ?? 5));
const N = Math.max(10, Number(process.env.BENCH_SIGNIN_N ?? 150));
const DATA = { user: "alice@corp.example", email: "alice@corp.example", name: "Alice", groups: ["eng"] };

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const WORKERD = fs.realpathSync(path.join(ROOT, "node_modules/.bin/workerd"));
const toml = (v) => JSON.stringify(String(v));

/** keycard (build/) in a plain `workerd serve` with `vars`; resolves once it answers. */
async function startWorkerd(vars) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keycard-bench-signin-"));
  const modules = [];
  for (const [file, type] of [["index.js", "esModule"], ["index_bg.wasm", "wasm"]]) {
    fs.copyFileSync(path.join(ROOT, "build", file), path.join(dir, file));
    modules.push(`(name = ${toml(file)}, ${type} = embed ${toml(file)})`);
  }
  const bindings = Object.entries(vars).map(([k, v]) => `(name = ${toml(k)}, text = ${toml(v)})`);
  const port = await freePort();
  const conf = fs.readFileSync(path.join(ROOT, "bench/workerd.capnp.in"), "utf8")
    .replaceAll("@KV_SERVICE@", "")
    .replaceAll("@WORKER_EXTRA@", "")
    .replaceAll("@CONFIG_EXTRA@", "")
    .replaceAll("@PORT@", String(port))
    .replaceAll("@COMPAT_DATE@", "2026-11-01")
    .replaceAll("@MODULES@", modules.join(", "))
    .replaceAll("@BINDINGS@", bindings.join(", "));
  fs.writeFileSync(path.join(dir, "workerd.capnp"), conf);
  const child = spawn(WORKERD, ["serve", path.join(dir, "workerd.capnp")], { cwd: dir, stdio: "ignore" });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(url + "/.keycard/health");
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  // The CPU is the workerd binary's, a child of the Node launcher spawned here.
  const pid = processTree(child.pid).find((p) => comm(p) === "workerd");
  if (!pid) throw new Error("no workerd process under the launcher");
  return { url, pid, close: () => child.kill("SIGKILL") };
}

/** Nanoseconds on CPU of every thread of `pids`. */
function cpuNs(pids) {
  let ns = 0;
  for (const pid of pids) {
    for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, "utf8").split(" ")[0]);
      } catch {}
    }
  }
  return ns;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const spread = (xs) => `${(Math.min(...xs) / 1000).toFixed(0)}–${(Math.max(...xs) / 1000).toFixed(0)}`;

/** An origin that signs in with DATA on /login, and otherwise answers 200. */
async function startOrigin() {
  const server = http.createServer((req, res) => {
    const headers = { "content-type": "text/plain" };
    if (req.url.startsWith("/login")) {
      headers["x-session-set"] = JSON.stringify(DATA);
      headers["x-session-action"] = "regenerate";
    }
    res.writeHead(200, headers);
    res.end("ok");
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

const PAGE = { accept: "text/html", "sec-fetch-mode": "navigate", "sec-fetch-site": "none" };

async function signIn(kc) {
  const c = new Client(kc.url);
  const r = await c.get("/.keycard/login?next=%2F", { headers: PAGE });
  const to = await fetch(r.headers.location, { redirect: "manual" });
  const back = new URL(to.headers.get("location"));
  const done = await c.get(back.pathname + back.search, { headers: PAGE });
  if (done.status !== 303) throw new Error(`sign-in: ${done.status} ${done.text.slice(0, 200)}`);
  return c;
}

/** CPU per operation of `op` run `n` times, in ns. */
async function measure(pids, n, op) {
  const before = cpuNs(pids);
  for (let i = 0; i < n; i++) await op();
  return (cpuNs(pids) - before) / n;
}

const origin = await startOrigin();
const rogue = await startRogueProvider({ clients: [{ client_id: "bench", client_secret: "bench-secret" }] });
rogue.setClaims({ sub: "alice", ...DATA });
const kc = await startWorkerd({
  SESSION_SECRET: SECRET,
  SESSION_COOKIE_SECURE: "false",
  ORIGIN_URL: origin.url,
  SESSION_STORE: "cookie",
  KEYCARD_OIDC_ISSUER: rogue.issuer,
  KEYCARD_OIDC_CLIENT_ID: "bench",
  KEYCARD_OIDC_CLIENT_SECRET: "bench-secret",
  KEYCARD_OIDC_SCOPES: "openid email profile",
});
const rows = [];
try {
  const pids = [kc.pid];
  const viaProvider = await signIn(kc);
  const viaOrigin = new Client(kc.url);
  await viaOrigin.get("/login", { method: "POST" });
  for (let i = 0; i < 20; i++) {
    await signIn(kc);
    await viaProvider.get("/");
    await viaOrigin.get("/");
  }
  const results = { RS256: [], ES256: [], oidc: [], origin: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of ["good", "es256"]) {
      rogue.setMode(mode);
      results[mode === "good" ? "RS256" : "ES256"].push(await measure(pids, N, () => signIn(kc)));
    }
    results.oidc.push(await measure(pids, N * 4, () => viaProvider.get("/")));
    results.origin.push(await measure(pids, N * 4, () => viaOrigin.get("/")));
  }
  const cookieOf = (c) => c.jar.get("keycard").length;
  rows.push(
    `| a sign-in, RS256 (login redirect + callback) | ${(median(results.RS256) / 1000).toFixed(0)} µs | ${spread(results.RS256)} |`,
    `| a sign-in, ES256 (login redirect + callback) | ${(median(results.ES256) / 1000).toFixed(0)} µs | ${spread(results.ES256)} |`,
    `| a signed-in request, session from the provider (cookie ${cookieOf(viaProvider)} B) | ${(median(results.oidc) / 1000).toFixed(0)} µs | ${spread(results.oidc)} |`,
    `| a signed-in request, session from the origin, same data (cookie ${cookieOf(viaOrigin)} B) | ${(median(results.origin) / 1000).toFixed(0)} µs | ${spread(results.origin)} |`,
  );
  const ratio = median(results.oidc) / median(results.origin);
  console.log(
    [
      `### Signing in (bench/sign-in.mjs: a plain workerd, ${ROUNDS} rounds of ${N} sign-ins and ${N * 4} requests each)`,
      "",
      "CPU of workerd's threads per operation, median of the rounds, and the rounds' range.",
      "Everything workerd does is counted (HTTP parsing, the runtime, WebCrypto), not keycard alone.",
      "",
      "| what | CPU | range (µs) |",
      "| --- | --- | --- |",
      ...rows,
      "",
      `A request signed in through a provider costs ${ratio.toFixed(2)}× one signed in by the origin with the same data.`,
    ].join("\n"),
  );
} finally {
  kc.close();
  await rogue.close();
  origin.close();
}
