// The end-to-end harness: the real built Worker (build/index.js + wasm) running in
// workerd through Miniflare, with local KV, in front of a real HTTP origin on
// 127.0.0.1, driven over real HTTP. Nothing here mocks the runtime or the origin.
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import { spawn } from "node:child_process";
import assert from "node:assert/strict";
import { Cookie as ToughCookie, CookieJar as ToughCookieJar } from "tough-cookie";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const SECRET = "e2e-test-secret-0123456789abcdef0123456789abcdef";
export const COMPAT_DATE = "2026-11-01";

// ---------------------------------------------------------------- the origin --

/**
 * A real HTTP origin on 127.0.0.1. It records every request it receives and answers
 * with JSON describing it. The test steers its answer through the query string:
 *   set=<raw json>  setb64=<b64>  setbig=<n>  setdeep=<n>  action=<list>  maxage=<n>  status=<code>
 *   delay=<ms>  header=<name>:<value> (repeatable, e.g. to repeat control headers)
 * A custom `handler(req, res, body)` may answer instead; return true if it did.
 */
export async function startOrigin(handler) {
  const requests = [];
  const server = http.createServer({ maxHeaderSize: 512 * 1024 }, (req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks);
      const record = { method: req.method, url: req.url, headers: req.headers, rawHeaders: req.rawHeaders, body: body.toString("utf8") };
      requests.push(record);
      if (handler && (await handler(req, res, body, record))) return;
      const u = new URL(req.url, "http://origin");
      const q = u.searchParams;
      const out = { "content-type": "application/json", "x-origin": "yes" };
      const extra = [];
      if (q.has("set")) out["x-session-set"] = q.get("set");
      if (q.has("setb64")) out["x-session-set"] = q.get("setb64");
      // Big or deep values are built here: they do not fit in a request URL.
      if (q.has("setbig")) out["x-session-set"] = JSON.stringify({ big: "b".repeat(Number(q.get("setbig"))) });
      if (q.has("setdeep")) out["x-session-set"] = `{"a":${"[".repeat(Number(q.get("setdeep")))}${"]".repeat(Number(q.get("setdeep")))}}`;
      if (q.has("action")) out["x-session-action"] = q.get("action");
      if (q.has("maxage")) out["x-session-max-age"] = q.get("maxage");
      for (const h of q.getAll("header")) {
        const i = h.indexOf(":");
        extra.push([h.slice(0, i), h.slice(i + 1)]);
      }
      if (q.has("origincookie")) extra.push(["set-cookie", q.get("origincookie")]);
      const delay = Number(q.get("delay") || 0);
      if (delay) await new Promise((r) => setTimeout(r, delay));
      const status = Number(q.get("status") || 200);
      const flat = [];
      for (const [k, v] of Object.entries(out)) flat.push(k, v);
      for (const [k, v] of extra) flat.push(k, v);
      res.writeHead(status, flat);
      res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body: record.body }));
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    last: () => requests[requests.length - 1],
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }),
  };
}

// ------------------------------------------------------------------- keycard --

// Ports handed out by freePort come from below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range, 32768-60999 by default). A port the kernel picked for a
// `listen(0)` can be handed to the next `listen(0)` or outgoing connection as soon as it
// is closed, so another wrangler's internal sockets could take it before the server we
// start binds it; CI saw exactly that ("Address already in use"). Nothing allocates
// ports in this range by itself.
const PORT_LOW = 20000;
const PORT_HIGH = 32000;

/** Whether 127.0.0.1:`port` can be listened on now. */
function canListen(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

/** A free TCP port on 127.0.0.1, outside the ephemeral range. */
export async function freePort() {
  for (let i = 0; i < 200; i++) {
    const port = PORT_LOW + Math.floor(Math.random() * (PORT_HIGH - PORT_LOW));
    if (await canListen(port)) return port;
  }
  throw new Error(`no free port in ${PORT_LOW}-${PORT_HIGH}`);
}

const toml = (v) => JSON.stringify(String(v));

/**
 * Spawns `wrangler dev` on `port` and waits until it prints "Ready on", appending every
 * line it prints to `logs`. `started` says whether it got ready before it exited; a start
 * that takes over 90 s throws.
 */
async function launchWrangler(configs, port, persist, dir, logs) {
  const args = ["dev", ...configs.flatMap((c) => ["-c", c]), "--ip", "127.0.0.1", "--port", String(port),
    "--persist-to", persist, "--log-level", "log", "--show-interactive-dev-session=false"];
  const child = spawn(process.execPath, [path.join(ROOT, "node_modules/wrangler/bin/wrangler.js"), ...args], {
    cwd: dir,
    detached: true,
    env: { ...process.env, WRANGLER_SEND_METRICS: "false", VSCODE_INSPECTOR_OPTIONS: ":::{}", NO_COLOR: "1", FORCE_COLOR: "0", CI: "true" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let ready;
  const readyP = new Promise((r) => (ready = r));
  const collect = (stream) => {
    let buf = "";
    stream.on("data", (d) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        // eslint-disable-next-line no-control-regex
        const line = buf.slice(0, i).replace(/\x1b\[[0-9;]*m/g, "");
        logs.push(line);
        if (line.includes("Ready on")) ready();
        buf = buf.slice(i + 1);
      }
    });
  };
  collect(child.stdout);
  collect(child.stderr);
  const exited = new Promise((r) => child.on("exit", r));
  let timer;
  const timeout = new Promise((_, rej) => { timer = setTimeout(() => rej(new Error("wrangler dev did not start:\n" + logs.join("\n"))), 90000); });
  let started;
  try {
    started = await Promise.race([readyP.then(() => true), timeout, exited.then(() => false)]);
  } finally {
    clearTimeout(timer);
  }
  return { child, exited, started };
}

/**
 * Starts the built Worker in workerd with `wrangler dev` (fully local, local KV under a
 * fresh temporary directory). `vars` become its environment bindings, as [vars] and
 * secrets do; a value may be a function of keycard's own URL (`(self) => self` points
 * ORIGIN_URL back at keycard). Options:
 *   kv: false           no KV binding at all
 *   users: true         the KEYCARD_USERS Durable Object namespace (class KeycardUsers,
 *                       SQLite storage), as wrangler.toml declares it
 *   entry: <path>       a different entry module (a test wrapper around build/index.js)
 *   assets: true        serve www/inspector through the ASSETS binding, as wrangler.toml does
 *   serviceOrigin: src  a JS Worker (module source) reached through the ORIGIN binding
 *   persist: <dir>      reuse a state directory (to restart with the same local KV)
 * Every line wrangler and the Worker print is kept in `logs`.
 */
export async function startKeycard(vars = {}, opts = {}) {
  const dir = opts.persist ? path.dirname(opts.persist) : fs.mkdtempSync(path.join(os.tmpdir(), "keycard-e2e-"));
  const persist = opts.persist ?? path.join(dir, "state");
  const cfgPath = path.join(dir, `wrangler-${Date.now()}-${Math.random().toString(36).slice(2)}.toml`);
  const bindings = { SESSION_SECRET: SECRET, SESSION_COOKIE_SECURE: "false", ...vars };
  const lines = [
    `name = "keycard-e2e"`,
    `main = ${toml(opts.entry ?? path.join(ROOT, "build/index.js"))}`,
    `compatibility_date = ${toml(COMPAT_DATE)}`,
  ];
  if (opts.kv !== false) lines.push(`kv_namespaces = [{ binding = "SESSIONS", id = "e2e" }]`);
  if (opts.users) lines.push(`durable_objects.bindings = [{ name = "KEYCARD_USERS", class_name = "KeycardUsers" }]`);
  const configs = [cfgPath];
  if (opts.serviceOrigin) {
    const originFile = path.join(dir, "origin-worker.mjs");
    fs.writeFileSync(originFile, opts.serviceOrigin);
    const originCfg = path.join(dir, "origin-wrangler.toml");
    fs.writeFileSync(originCfg, [`name = "keycard-e2e-origin"`, `main = ${toml(originFile)}`, `compatibility_date = ${toml(COMPAT_DATE)}`].join("\n") + "\n");
    lines.push(`services = [{ binding = "ORIGIN", service = "keycard-e2e-origin" }]`);
    configs.push(originCfg);
  }
  if (opts.assets) {
    lines.push(`[assets]`, `directory = ${toml(path.join(ROOT, "www/inspector"))}`, `binding = "ASSETS"`, `run_worker_first = true`);
  }
  if (opts.users) lines.push(`[[migrations]]`, `tag = "v1"`, `new_sqlite_classes = ["KeycardUsers"]`);
  // Secrets go to .dev.vars, as `wrangler secret put` values would, so wrangler never
  // prints them; everything else is a plain [vars] entry. Written once the port is
  // known, for the values that depend on keycard's own URL.
  const SECRETS = new Set(["SESSION_SECRET", "SESSION_SECRET_PREVIOUS", "ORIGIN_SECRET"]);
  const writeConfig = (port) => {
    const self = `http://127.0.0.1:${port}`;
    const vars = [`[vars]`];
    const devVars = [];
    for (const [k, given] of Object.entries(bindings)) {
      const v = typeof given === "function" ? given(self) : given;
      if (v === undefined) continue;
      if (SECRETS.has(k) || k.endsWith("_CLIENT_SECRET")) devVars.push(`${k}=${toml(v)}`);
      else vars.push(`${k} = ${toml(v)}`);
    }
    fs.writeFileSync(cfgPath, [...lines, ...vars].join("\n") + "\n");
    fs.writeFileSync(path.join(dir, ".dev.vars"), devVars.join("\n") + "\n");
  };

  // Two processes can still race for a port freePort found free; a wrangler that lost
  // the race exits with "Address already in use", and is started again on another port.
  const logs = [];
  let port, child, exited;
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    writeConfig(port);
    const from = logs.length;
    let started;
    ({ child, exited, started } = await launchWrangler(configs, port, persist, dir, logs));
    if (started) break;
    if (attempt < 3 && logs.slice(from).some((l) => l.includes("Address already in use"))) {
      logs.push(`harness: port ${port} was taken, starting wrangler again`);
      continue;
    }
    throw new Error("wrangler dev exited:\n" + logs.join("\n"));
  }
  const url = `http://127.0.0.1:${port}`;
  // Wait until the Worker itself answers.
  for (let i = 0; i < 100; i++) {
    try {
      await request(url + "/.keycard/health");
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    url,
    port,
    logs,
    dir,
    persist,
    /** Worker log lines that are keycard's own structured logs, parsed. */
    events: () => logs.filter((l) => l.includes('"keycard"')).map((l) => { try { return JSON.parse(l.slice(l.indexOf("{"), l.lastIndexOf("}") + 1)); } catch { return { raw: l }; } }),
    /** Waits (up to `ms`) for a keycard log event named `name`; returns it or undefined. */
    async waitForEvent(name, ms = 3000) {
      const until = Date.now() + ms;
      for (;;) {
        const ev = this.events().find((e) => e.keycard === name);
        if (ev || Date.now() > until) return ev;
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async close() {
      try { process.kill(-child.pid, "SIGTERM"); } catch {}
      let t;
      await Promise.race([exited, new Promise((r) => { t = setTimeout(r, 5000); })]);
      clearTimeout(t);
      try { process.kill(-child.pid, "SIGKILL"); } catch {}
    },
  };
}

// ------------------------------------------------------------------ examples --

/** The example origin of docs/origin.md for `stack` (`node`, `python`, `php`) on a free port,
 * with `env` added to its environment. */
export async function startExample(stack, env = {}) {
  const port = await freePort();
  const cmd = {
    node: [process.execPath, [path.join(ROOT, "examples/node/server.js"), String(port)]],
    python: ["python3", [path.join(ROOT, "examples/python/app.py"), String(port)]],
    php: ["php", ["-S", `127.0.0.1:${port}`, path.join(ROOT, "examples/php/index.php")]],
  }[stack];
  const child = spawn(cmd[0], cmd[1], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  for (let i = 0; i < 100; i++) {
    try {
      await request(`http://127.0.0.1:${port}/`);
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { url: `http://127.0.0.1:${port}`, output: () => out, close: () => child.kill("SIGTERM") };
}

// ------------------------------------------------------------------- clients --

/** One raw HTTP request (node:http, so headers go on the wire exactly as given). */
export function request(url, { method = "GET", headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, rawHeaders: res.rawHeaders, text, json });
      });
    });
    req.on("error", reject);
    // A hung request fails its test instead of hanging the suite.
    req.setTimeout(30000, () => req.destroy(new Error(`no answer from ${url} in 30 s`)));
    if (body !== undefined) req.write(body);
    req.end();
  });
}

/** Parses one Set-Cookie header value into { name, value, attrs }. */
export function parseSetCookie(sc) {
  const [pair, ...rest] = sc.split(";").map((s) => s.trim());
  const i = pair.indexOf("=");
  const attrs = {};
  for (const a of rest) {
    const j = a.indexOf("=");
    if (j < 0) attrs[a.toLowerCase()] = true;
    else attrs[a.slice(0, j).toLowerCase()] = a.slice(j + 1);
  }
  return { name: pair.slice(0, i), value: pair.slice(i + 1), attrs, raw: sc };
}

/**
 * Checks that tough-cookie, a cookie library nobody here wrote, parses the Set-Cookie
 * `sc` (from `parseSetCookie`) in strict mode and reads every attribute keycard sets as
 * the harness does. The messages name the cookie, never its value.
 */
export function crossCheckSetCookie(sc) {
  const t = ToughCookie.parse(sc.raw, { loose: false });
  assert.ok(t, `tough-cookie cannot parse the Set-Cookie of ${JSON.stringify(sc.name)}`);
  const a = sc.attrs;
  const agree = (what, ok) => assert.ok(ok, `tough-cookie reads the ${what} of ${JSON.stringify(sc.name)} otherwise`);
  agree("name", t.key === sc.name);
  agree("value", t.value === sc.value);
  agree("Max-Age", a["max-age"] === undefined ? t.maxAge == null : String(t.maxAge) === a["max-age"]);
  agree("Expires", a.expires === undefined ? t.expires === "Infinity" : t.expires?.getTime?.() === Date.parse(a.expires));
  agree("Path", (t.path ?? undefined) === a.path);
  agree("Domain", (t.domain ?? undefined) === a.domain?.replace(/^\./, "").toLowerCase());
  agree("Secure", t.secure === (a.secure === true));
  agree("HttpOnly", t.httpOnly === (a.httponly === true));
  agree("SameSite", (t.sameSite ?? undefined) === a.samesite?.toLowerCase());
  agree("other attributes", !t.extensions);
  return t;
}

/**
 * A client with a cookie jar that behaves like a browser's for one host. Every
 * Set-Cookie it receives is also checked with tough-cookie (`crossCheckSetCookie`) and
 * stored in a tough-cookie `CookieJar` for the request URL, which must then hold, for
 * the cookie's path, what the harness jar holds.
 */
export class Client {
  constructor(base) {
    this.base = base;
    this.jar = new Map();
    // "strict": a __Host-/__Secure- cookie that breaks its prefix's rules throws. Loopback
    // counts as a secure context (tough-cookie's default, as in browsers), so Secure
    // cookies are stored and sent over http://127.0.0.1 too.
    this.toughJar = new ToughCookieJar(undefined, { prefixSecurity: "strict" });
  }
  cookieHeader() {
    return [...this.jar].map(([k, v]) => `${k}=${v}`).join("; ");
  }
  async get(pathAndQuery, opts = {}) {
    return this.send(pathAndQuery, { ...opts, method: opts.method ?? "GET" });
  }
  async send(pathAndQuery, { method = "GET", headers = {}, body } = {}) {
    const h = { ...headers };
    // Like a browser: a known body length goes in Content-Length (node would chunk it).
    if (body !== undefined && !Object.keys(h).some((k) => k.toLowerCase() === "content-length")) {
      h["content-length"] = String(Buffer.byteLength(body));
    }
    const c = this.cookieHeader();
    if (c && !("cookie" in h)) h.cookie = c;
    const url = this.base + pathAndQuery;
    const res = await request(url, { method, headers: h, body });
    res.cookies = (res.headers["set-cookie"] ?? []).map(parseSetCookie);
    const paths = new Map();
    for (const sc of res.cookies) {
      if (sc.attrs["max-age"] === "0") this.jar.delete(sc.name);
      else this.jar.set(sc.name, sc.value);
      const t = crossCheckSetCookie(sc);
      // A Domain cannot match 127.0.0.1, so a browser would not store such a cookie here.
      if (t.domain) continue;
      this.toughJar.setCookieSync(sc.raw, url, { ignoreError: false });
      paths.set(sc.name, t.path ?? "/");
    }
    for (const [name, p] of paths) {
      const sent = this.toughJar.getCookiesSync(new URL(p, url).href).find((t) => t.key === name);
      assert.ok(sent?.value === this.jar.get(name), `tough-cookie's jar would send ${JSON.stringify(name)} otherwise than the harness jar`);
    }
    return res;
  }
}

/** Decodes an X-Session header (base64url JSON). */
export function decodeSession(h) {
  if (!h) return undefined;
  return JSON.parse(Buffer.from(h, "base64url").toString("utf8"));
}

export const q = (obj) => encodeURIComponent(JSON.stringify(obj));

/** The header that makes `cf` the request's `request.cf` under wrangler dev
 * (miniflare's MF-CF-Blob): a client choosing `cf`, as a host that lets it does (plain
 * workerd's cfBlobHeader too). Without clientAcceptEncoding in `cf`, workerd would
 * answer in brotli. */
export const clientCf = (cf) => ({ "MF-CF-Blob": JSON.stringify({ clientAcceptEncoding: "identity", ...cf }) });
