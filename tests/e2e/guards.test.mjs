// Issue 12: the guards, through the real Worker in front of real origins.
//   - KEYCARD_REQUIRE / KEYCARD_PUBLIC / KEYCARD_LOGIN_URL: a page load without a
//     signed-in user gets a 303 to the login page, anything else a 401; nothing reaches
//     the origin, whatever spelling of the path the client uses;
//   - KEYCARD_IDENTITY_HEADERS: what the origin is told about the signed-in user, and
//     that a client can never say it itself, in any spelling of the header's name;
//   - KEYCARD_CSRF: cross-origin unsafe requests refused, trusted origins and exempt
//     paths passed;
//   - with none of it configured, requests are forwarded as before;
//   - a real framework behind it: Django's RemoteUserMiddleware on X-Forwarded-User.
// Paths go on the wire byte for byte through a raw socket: node's URL parsing would
// resolve `.` and `..` before sending.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startOrigin, startKeycard, Client, request, decodeSession, freePort, q, SECRET } from "./lib/harness.mjs";
import { mint } from "./lib/mint.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
// Django, pinned by `scripts/setup.sh django` in .tools/django.
const DJANGO = path.join(ROOT, ".tools/django");
const now = () => Math.floor(Date.now() / 1000);

/** A header name in keycard's normal form: lower-case, anything outside a-z0-9 is `-`. */
const normal = (name) => name.toLowerCase().replace(/[^a-z0-9]/g, "-");

/**
 * One request written by hand on a fresh socket: the request target goes out exactly as
 * given. `headers` is a list of [name, value] pairs (repeats and odd spellings kept).
 * Resolves { status, headers (lower-case names; set-cookie as a list), text, json } as
 * soon as the whole response is there (an Upgrade request may leave the socket open).
 */
function raw(base, target, { method = "GET", headers = [], body } = {}) {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    let done = false;
    const sock = net.connect(Number(port), hostname, () => {
      let head = `${method} ${target} HTTP/1.1\r\nHost: ${hostname}:${port}\r\n`;
      if (!headers.some(([k]) => k.toLowerCase() === "connection")) head += "Connection: close\r\n";
      for (const [k, v] of headers) head += `${k}: ${v}\r\n`;
      if (body !== undefined) head += `Content-Length: ${Buffer.byteLength(body)}\r\n`;
      sock.write(head + "\r\n" + (body ?? ""));
    });
    let all = Buffer.alloc(0);
    const finish = (closed) => {
      const split = all.indexOf("\r\n\r\n");
      if (split < 0) {
        if (closed) reject(new Error(`no response head for ${method} ${target}: ${JSON.stringify(all.toString("latin1"))}`));
        return;
      }
      const [statusLine, ...lines] = all.subarray(0, split).toString("latin1").split("\r\n");
      const status = Number(statusLine.split(" ")[1]);
      const h = {};
      for (const line of lines) {
        const i = line.indexOf(":");
        const k = line.slice(0, i).trim().toLowerCase();
        const v = line.slice(i + 1).trim();
        if (k === "set-cookie") (h[k] ??= []).push(v);
        else h[k] = k in h ? `${h[k]}, ${v}` : v;
      }
      let rest = all.subarray(split + 4);
      if (method === "HEAD" || status === 204 || status === 304 || status < 200) {
        rest = Buffer.alloc(0);
      } else if (/chunked/i.test(h["transfer-encoding"] ?? "")) {
        const out = [];
        for (;;) {
          const eol = rest.indexOf("\r\n");
          if (eol < 0) return closed && reject(new Error(`truncated chunked body for ${target}`));
          const size = parseInt(rest.subarray(0, eol).toString("latin1"), 16);
          if (size === 0) break;
          if (rest.length < eol + 2 + size + 2) return closed && reject(new Error(`truncated chunked body for ${target}`));
          out.push(rest.subarray(eol + 2, eol + 2 + size));
          rest = rest.subarray(eol + 2 + size + 2);
        }
        rest = Buffer.concat(out);
      } else if (h["content-length"] !== undefined) {
        const len = Number(h["content-length"]);
        if (rest.length < len) return closed && reject(new Error(`truncated body for ${target}`));
        rest = rest.subarray(0, len);
      } else if (!closed) {
        return; // the body ends when the connection does
      }
      done = true;
      sock.destroy();
      const text = rest.toString("utf8");
      let json;
      try { json = JSON.parse(text); } catch { json = undefined; }
      resolve({ status, headers: h, text, json });
    };
    sock.setTimeout(30000, () => sock.destroy(new Error(`no answer for ${method} ${target} in 30 s`)));
    sock.on("data", (c) => {
      all = Buffer.concat([all, c]);
      finish(false);
    });
    sock.on("error", (e) => done || reject(e));
    sock.on("close", () => done || finish(true));
  });
}

// What browsers send.
const NAVIGATE = [["Sec-Fetch-Mode", "navigate"], ["Sec-Fetch-Dest", "document"], ["Accept", "text/html,application/xhtml+xml,*/*;q=0.8"]];
const FETCH = [["Sec-Fetch-Mode", "cors"], ["Sec-Fetch-Dest", "empty"], ["Accept", "application/json"]];
const WEBSOCKET = [["Upgrade", "websocket"], ["Connection", "Upgrade"], ["Sec-WebSocket-Version", "13"],
  ["Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="], ["Sec-Fetch-Mode", "websocket"]];

/** Runs `fn` and asserts the origin received nothing meanwhile. */
async function notForwarded(origin, what, fn) {
  const before = origin.requests.length;
  const res = await fn();
  assert.equal(origin.requests.length, before, `${what}: must not reach the origin (it got ${origin.requests.slice(before).map((r) => r.url).join(", ")})`);
  assert.equal(res.headers["x-origin"], undefined, what);
  return res;
}

/** Runs `fn` and asserts the origin received exactly that one request; returns [res, record]. */
async function forwarded(origin, what, fn) {
  const before = origin.requests.length;
  const res = await fn();
  assert.equal(origin.requests.length, before + 1, `${what}: must reach the origin (status ${res.status}, ${res.text?.slice(0, 120)})`);
  assert.equal(res.headers["x-origin"], "yes", what);
  return [res, origin.last()];
}

function assert401(res, login, what) {
  assert.equal(res.status, 401, `${what}: ${res.status} ${res.text?.slice(0, 200)}`);
  assert.equal(res.headers["cache-control"], "no-store", what);
  assert.match(res.headers["content-type"] ?? "", /^application\/json/, what);
  assert.deepEqual(JSON.parse(res.text), { error: "session_required", login }, what);
}

function assert303(res, location, what) {
  assert.equal(res.status, 303, `${what}: ${res.status} ${res.text?.slice(0, 200)}`);
  assert.equal(res.headers.location, location, what);
}

function assert400(res, what) {
  assert.equal(res.status, 400, `${what}: ${res.status} ${res.text?.slice(0, 200)}`);
  assert.equal(res.text, "keycard: ambiguous path", what);
}

/** The origin's view of every header whose name reads as `name` (normal form). */
function headersReadingAs(record, name) {
  const out = [];
  for (let i = 0; i < record.rawHeaders.length; i += 2) {
    if (normal(record.rawHeaders[i]) === normal(name)) out.push([record.rawHeaders[i], record.rawHeaders[i + 1]]);
  }
  return out;
}

const ADA = { user: "ada", roles: ["admin", "ops"], email: "a@x", uid: 42 };
const IDENTITY = {
  "X-Forwarded-User": "ada",
  "X-Forwarded-Email": "a@x",
  "X-Forwarded-Groups": "admin,ops",
  "X-Forwarded-Uid": "42",
  "Remote-User": "ada",
};

/** A client signed in through the origin (`?set=` on a public path). */
async function signedIn(kc, data = ADA) {
  const c = new Client(kc.url);
  const r = await c.get(`/signin?set=${q(data)}`);
  assert.equal(r.status, 200);
  assert.ok(c.jar.has("keycard"), "the origin's X-Session-Set gave a session cookie");
  return c;
}

// ---------------------------------------------------------------------------------

describe("guards: required paths, login redirect, identity headers, cross-origin protection", () => {
  let origin;
  let kc;
  before(async () => {
    origin = await startOrigin();
    kc = await startKeycard({
      ORIGIN_URL: origin.url,
      KEYCARD_REQUIRE: "/admin, /api/",
      KEYCARD_PUBLIC: "/admin/public",
      KEYCARD_LOGIN_URL: "/login",
      KEYCARD_IDENTITY_HEADERS: "X-Forwarded-User=user, X-Forwarded-Email=email, X-Forwarded-Groups=roles, X-Forwarded-Uid=uid, Remote-User=user",
      KEYCARD_TRUSTED_ORIGINS: "https://partner.example",
      KEYCARD_CSRF_EXEMPT: "/hooks/",
    });
  });
  after(async () => {
    await kc?.close();
    await origin?.close();
  });

  test("signed out: a page load gets a 303 to the login page with next; everything else a 401", async () => {
    const login = "/login?next=%2Fadmin%2Fx%3Fa%3D1";
    const r1 = await notForwarded(origin, "navigate", () => raw(kc.url, "/admin/x?a=1", { headers: NAVIGATE }));
    assert303(r1, login, "navigate");
    assert.equal(r1.headers["set-cookie"], undefined, "no cookie to clear, none created");
    // HEAD is a page load too; without Sec-Fetch-Mode an Accept with text/html decides.
    assert303(await notForwarded(origin, "HEAD navigate", () => raw(kc.url, "/admin/x?a=1", { method: "HEAD", headers: NAVIGATE })), login, "HEAD");
    assert303(await notForwarded(origin, "Accept html", () => raw(kc.url, "/admin/x?a=1", { headers: [["Accept", "text/html"]] })), login, "Accept: text/html");
    assert303(await notForwarded(origin, "/admin", () => raw(kc.url, "/admin", { headers: NAVIGATE })), "/login?next=%2Fadmin", "/admin itself");
    assert303(await notForwarded(origin, "/api/", () => raw(kc.url, "/api/v1/orders", { headers: NAVIGATE })), "/login?next=%2Fapi%2Fv1%2Forders", "/api/ area");

    // Not page loads: fetch/XHR (Sec-Fetch-Mode says so even with an html Accept), no
    // Accept at all, other methods, WebSocket upgrades.
    const cases = [
      ["fetch", { headers: FETCH }],
      ["fetch with an html Accept", { headers: [["Sec-Fetch-Mode", "cors"], ["Accept", "text/html"]] }],
      ["curl-like, no Accept", { headers: [] }],
      ["Accept: application/json", { headers: [["Accept", "application/json"]] }],
      ["POST", { method: "POST", headers: [["Accept", "text/html"], ["Content-Type", "application/x-www-form-urlencoded"]], body: "a=1" }],
      ["DELETE", { method: "DELETE", headers: NAVIGATE }],
      ["WebSocket upgrade", { headers: WEBSOCKET }],
    ];
    for (const [what, opts] of cases) {
      assert401(await notForwarded(origin, what, () => raw(kc.url, "/admin/x?a=1", opts)), login, what);
    }
  });

  test("every spelling of a required path is guarded, in any case; /admin is a raw prefix, /api/ a segment", async () => {
    // A required prefix ignores case and is a raw prefix (issue 22): case-insensitive
    // routers serve /ADMIN, and nginx's `location /admin` serves /administrator.
    for (const p of ["/ADMIN/x", "/Admin", "/administrator", "/administrator/x", "/admins", "/API/v1"]) {
      assert303(await notForwarded(origin, p, () => raw(kc.url, p, { headers: NAVIGATE })), `/login?next=${encodeURIComponent(p)}`, p);
    }
    // A prefix with a trailing slash keeps to its segment.
    for (const p of ["/apix", "/api-docs"]) {
      const [r, rec] = await forwarded(origin, p, () => raw(kc.url, p, { headers: NAVIGATE }));
      assert.equal(r.status, 200, p);
      assert.equal(rec.url, p);
    }
    // Not ambiguous where nothing is required: forwarded as it came.
    const [, rec] = await forwarded(origin, "/files%2Fa", () => raw(kc.url, "/files%2Fa", { headers: NAVIGATE }));
    assert.equal(rec.url, "/files%2Fa");
    // A backslash: the runtime's URL parser reads it as `/` before keycard sees the path
    // (then it is /admin/x); if it ever reaches keycard raw, it is ambiguous.
    const bs = await notForwarded(origin, "backslash", () => raw(kc.url, "/admin\\x", { headers: FETCH }));
    if (bs.status === 401) assert401(bs, "/login?next=%2Fadmin%2Fx", "/admin\\x read as /admin/x");
    else assert400(bs, "/admin\\x");
    // Decoded, resolved or collapsed, these are all /admin/x.
    for (const p of ["/admin/x", "/%61dmin/x", "/%61%64%6d%69%6e/x", "/admin/../admin/x", "/./admin/x", "//admin/x", "/admin//x",
      "///admin/x", "/x/../admin/x", "/%2e%2e/admin/x", "/admin/%2e/x", "/admin/./x"]) {
      const r = await notForwarded(origin, p, () => raw(kc.url, p, { headers: FETCH }));
      assert.equal(r.status, 401, `${p}: ${r.status} ${r.text}`);
      assert.equal(r.json?.error, "session_required", p);
    }
    // Ambiguous in a required area: an encoded slash or backslash, NUL.
    for (const p of ["/admin%2Fx", "/admin%2fx", "/admin/x%2Fy", "/admin%5Cx", "/admin%5cx", "/admin/x%00", "/admin%00",
      "/static%2F..%2Fadmin%2Fx", "/api%2Fv1"]) {
      assert400(await notForwarded(origin, p, () => raw(kc.url, p, { headers: NAVIGATE })), p);
    }
  });

  test("public paths: KEYCARD_PUBLIC, the login page and keycard's own endpoints", async () => {
    for (const p of ["/admin/public", "/admin/public/logo.png", "/login", "/login?next=%2Fadmin", "/signin"]) {
      const [r, rec] = await forwarded(origin, p, () => raw(kc.url, p, { headers: NAVIGATE }));
      assert.equal(r.status, 200, p);
      assert.equal(rec.url, p);
    }
    // Segment boundary for KEYCARD_PUBLIC too: /admin/publicity is still /admin.
    assert303(await notForwarded(origin, "/admin/publicity", () => raw(kc.url, "/admin/publicity", { headers: NAVIGATE })),
      "/login?next=%2Fadmin%2Fpublicity", "/admin/publicity");
    const health = await notForwarded(origin, "health", () => raw(kc.url, "/.keycard/health", { headers: NAVIGATE }));
    assert.equal(health.status, 200);
    assert.equal(health.json.status, "ok");
  });

  test("signed in: required paths reach the origin with the identity headers", async () => {
    const c = await signedIn(kc);
    for (const p of ["/admin/x?a=1", "/admin", "/api/v1/orders", "/%61dmin/x", "//admin/x"]) {
      const [r, rec] = await forwarded(origin, p, () => raw(kc.url, p, { headers: [...NAVIGATE, ["Cookie", c.cookieHeader()]] }));
      assert.equal(r.status, 200, p);
      assert.equal(rec.headers["x-session-status"], "valid", p);
      assert.deepEqual(decodeSession(rec.headers["x-session"]), ADA, p);
      for (const [name, value] of Object.entries(IDENTITY)) {
        assert.deepEqual(headersReadingAs(rec, name).map(([, v]) => v), [value], `${p}: ${name}`);
      }
    }
    // Identity headers do not depend on the path: a public page gets them as well.
    const [, rec] = await forwarded(origin, "public", () => c.get("/catalogue"));
    assert.equal(rec.headers["x-forwarded-user"], "ada");
    assert.equal(rec.headers["x-forwarded-groups"], "admin,ops");
    // An ambiguous path is refused signed in too: keycard does not guess for anyone.
    assert400(await notForwarded(origin, "signed-in %2F", () => raw(kc.url, "/admin%2Fx", { headers: [...NAVIGATE, ["Cookie", c.cookieHeader()]] })), "signed-in /admin%2Fx");
  });

  test("a client can never send an identity header, in any spelling, signed in or not", async () => {
    const forged = [
      ["X-Forwarded-User", "mallory"], ["x-forwarded-user", "mallory"], ["X_Forwarded_User", "mallory"],
      ["X.Forwarded.Email", "m@evil"], ["X-FORWARDED-GROUPS", "admin"], ["x_forwarded_uid", "0"],
      ["Remote-User", "mallory"], ["Remote_User", "mallory"], ["REMOTE.USER", "mallory"], ["remote~user", "mallory"],
    ];
    // Signed out, on a public path: none of them arrives.
    let [, rec] = await forwarded(origin, "signed out", () => raw(kc.url, "/catalogue", { headers: forged }));
    for (const name of Object.keys(IDENTITY)) {
      assert.deepEqual(headersReadingAs(rec, name), [], `signed out: nothing reads as ${name}`);
    }
    // Signed out, on a required path: still refused (a forged header signs no one in).
    assert401(await notForwarded(origin, "forged on /admin", () => raw(kc.url, "/admin/x", { headers: forged })), "/login?next=%2Fadmin%2Fx", "forged headers on /admin");
    // Signed in: exactly keycard's value, once.
    const c = await signedIn(kc);
    [, rec] = await forwarded(origin, "signed in", () => raw(kc.url, "/admin/x", { headers: [...forged, ["Cookie", c.cookieHeader()]] }));
    for (const [name, value] of Object.entries(IDENTITY)) {
      assert.deepEqual(headersReadingAs(rec, name).map(([k, v]) => [k.toLowerCase(), v]), [[name.toLowerCase(), value]], `signed in: only keycard's ${name}`);
    }
    // An unrelated header that merely starts alike is not touched; another proxy's
    // identity header is dropped (issue 22).
    [, rec] = await forwarded(origin, "look-alike", () => raw(kc.url, "/catalogue", { headers: [["Remote-Username", "x"], ["X-Remote-User", "y"]] }));
    assert.equal(rec.headers["remote-username"], "x");
    assert.equal(rec.headers["x-remote-user"], undefined);
  });

  test("who counts as signed in, and values that cannot travel in a header", async () => {
    // A number is a user; it travels in decimal.
    let c = await signedIn(kc, { user: 7, uid: 12345678901234 });
    let [, rec] = await forwarded(origin, "numeric user", () => c.get("/admin/x", { headers: { accept: "text/html" } }));
    assert.equal(rec.headers["x-forwarded-user"], "7");
    assert.equal(rec.headers["x-forwarded-uid"], "12345678901234");
    assert.equal(rec.headers["x-forwarded-email"], undefined, "no field, no header");
    assert.equal(rec.headers["x-forwarded-groups"], undefined, "no field, no header");

    // Valid sessions that name no user are anonymous: a cart, an empty or non-string user.
    for (const data of [{ cart: 1 }, { user: "", cart: 1 }, { user: true }, { user: ["ada"] }, { user: { name: "ada" } }, { users: "ada" }]) {
      c = await signedIn(kc, data);
      [, rec] = await forwarded(origin, `public ${JSON.stringify(data)}`, () => c.get("/catalogue"));
      assert.equal(rec.headers["x-session-status"], "valid", JSON.stringify(data));
      assert.equal(rec.headers["x-forwarded-user"], undefined, JSON.stringify(data));
      const r = await notForwarded(origin, JSON.stringify(data), () => c.get("/admin/x", { headers: { "sec-fetch-mode": "navigate" } }));
      assert303(r, "/login?next=%2Fadmin%2Fx", JSON.stringify(data));
    }

    // A control character (or a list holding something other than strings and numbers):
    // that header is not sent, the request still is, and a log line names the header.
    const logged = kc.logs.length;
    c = await signedIn(kc, { user: "ada", email: "a\u0007b", roles: ["admin", { x: 1 }] });
    const [r] = await forwarded(origin, "control character", () => c.get("/admin/x", { headers: { accept: "text/html" } }));
    rec = origin.last();
    assert.equal(r.status, 200);
    assert.equal(rec.headers["x-forwarded-user"], "ada");
    assert.equal(rec.headers["remote-user"], "ada");
    assert.equal(rec.headers["x-forwarded-email"], undefined, "a value with a control character is not sent");
    assert.equal(rec.headers["x-forwarded-groups"], undefined, "a list with an object in it is not sent");
    const named = async (header) => {
      for (let i = 0; i < 60; i++) {
        const line = kc.logs.slice(logged).find((l) => l.includes('"keycard"') && l.toLowerCase().includes(header));
        if (line) return line;
        await new Promise((res) => setTimeout(res, 50));
      }
      return undefined;
    };
    const line = await named("x-forwarded-email");
    assert.ok(line, `a keycard log line names x-forwarded-email:\n${kc.logs.slice(logged).join("\n")}`);
    assert.ok(await named("x-forwarded-groups"), "a keycard log line names x-forwarded-groups");
    assert.ok(!kc.logs.slice(logged).some((l) => l.includes("a\u0007b") || l.includes("a\\u0007b")), "the value itself is never logged");
  });

  test("an expired or bad cookie on a required path is refused and still cleared", async () => {
    const expired = mint({ secret: SECRET, iat: now() - 2 * 86400, data: { user: "ada" } });
    let r = await notForwarded(origin, "expired", () => raw(kc.url, "/admin/x", { headers: [...NAVIGATE, ["Cookie", `keycard=${expired}`]] }));
    assert303(r, "/login?next=%2Fadmin%2Fx", "expired");
    assert.equal(r.headers["set-cookie"]?.length, 1, "the clearing cookie");
    assert.match(r.headers["set-cookie"][0], /^keycard=;/);
    assert.match(r.headers["set-cookie"][0], /Max-Age=0/);

    r = await notForwarded(origin, "bad", () => raw(kc.url, "/api/v1/orders", { headers: [...FETCH, ["Cookie", "keycard=v1.not.a.cookie"]] }));
    assert401(r, "/login?next=%2Fapi%2Fv1%2Forders", "bad cookie");
    assert.match(r.headers["set-cookie"]?.[0] ?? "", /^keycard=;.*Max-Age=0/);
  });

  test("cross-origin protection: unsafe methods from elsewhere are refused, signed in or not", async () => {
    const own = kc.url;
    const post = (target, headers, extra = []) =>
      raw(kc.url, target, { method: "POST", headers: [["Content-Type", "application/x-www-form-urlencoded"], ...headers, ...extra], body: "a=1" });
    const refused = async (what, target, headers, extra) => {
      const r = await notForwarded(origin, what, () => post(target, headers, extra));
      assert.equal(r.status, 403, `${what}: ${r.status} ${r.text}`);
      assert.equal(r.text, "keycard: cross-origin request refused", what);
      assert.equal(r.headers["set-cookie"], undefined, `${what}: no session change`);
      return r;
    };
    const passed = async (what, target, headers, extra) => {
      const [r] = await forwarded(origin, what, () => post(target, headers, extra));
      assert.equal(r.status, 200, what);
    };

    await refused("Sec-Fetch-Site: cross-site", "/form", [["Sec-Fetch-Site", "cross-site"]]);
    await refused("Sec-Fetch-Site: same-site", "/form", [["Sec-Fetch-Site", "same-site"], ["Origin", own]]);
    await refused("an Origin from elsewhere, no Sec-Fetch-Site", "/form", [["Origin", "https://evil.example"]]);
    await refused("Origin: null", "/form", [["Origin", "null"]]);
    // (Not "own host, other scheme": wrangler dev rewrites an Origin of https:// on its
    // own host and port to http:// before the Worker sees it.)
    await refused("own host, other port", "/form", [["Origin", "http://127.0.0.1:1"]]);
    for (const m of ["PUT", "PATCH", "DELETE"]) {
      const r = await notForwarded(origin, m, () => raw(kc.url, "/form", { method: m, headers: [["Sec-Fetch-Site", "cross-site"]] }));
      assert.equal(r.status, 403, m);
      assert.equal(r.text, "keycard: cross-origin request refused", m);
    }
    await passed("Sec-Fetch-Site: same-origin", "/form", [["Sec-Fetch-Site", "same-origin"], ["Origin", own]]);
    await passed("Sec-Fetch-Site: none", "/form", [["Sec-Fetch-Site", "none"]]);
    await passed("own Origin, no Sec-Fetch-Site", "/form", [["Origin", own]]);
    await passed("neither header (not a browser)", "/form", []);
    await passed("a trusted origin, cross-site", "/form", [["Sec-Fetch-Site", "cross-site"], ["Origin", "https://partner.example"]]);
    await passed("a trusted origin, no Sec-Fetch-Site", "/form", [["Origin", "https://partner.example"]]);
    await refused("a trusted origin's look-alike", "/form", [["Origin", "https://partner.example.evil"]]);
    await passed("an exempt path", "/hooks/stripe", [["Sec-Fetch-Site", "cross-site"], ["Origin", "https://evil.example"]]);
    await refused("exempt is on segment boundaries", "/hooksx", [["Sec-Fetch-Site", "cross-site"]]);
    for (const m of ["GET", "HEAD", "OPTIONS"]) {
      const [r] = await forwarded(origin, `safe ${m}`, () => raw(kc.url, "/form", { method: m, headers: [["Sec-Fetch-Site", "cross-site"], ["Origin", "https://evil.example"]] }));
      assert.equal(r.status, 200, m);
    }

    // Signed in: refused the same way, and the session is left as it was.
    const c = await signedIn(kc);
    const cookie = [["Cookie", c.cookieHeader()]];
    await refused("signed in, cross-site", `/signin?set=${q({ user: "mallory" })}`, [["Sec-Fetch-Site", "cross-site"]], cookie);
    await refused("signed in, destroy from elsewhere", "/signin?action=destroy", [["Origin", "https://evil.example"]], cookie);
    const [, rec] = await forwarded(origin, "after", () => c.get("/catalogue"));
    assert.deepEqual(decodeSession(rec.headers["x-session"]), ADA, "the session did not change");
    await passed("signed in, same-origin", "/admin/x", [["Sec-Fetch-Site", "same-origin"]], cookie);
  });
});

describe("guards: case-insensitive paths, no login URL, cross-origin protection off", () => {
  let origin;
  let kc;
  before(async () => {
    origin = await startOrigin();
    kc = await startKeycard({ ORIGIN_URL: origin.url, KEYCARD_REQUIRE: "/admin", KEYCARD_PATHS_IGNORE_CASE: "true", KEYCARD_CSRF: "off" });
  });
  after(async () => {
    await kc?.close();
    await origin?.close();
  });

  test("every case gets the 401 with login null; /ADMIN and /administrator are /admin", async () => {
    for (const p of ["/administrator", "/ADMINISTRATOR", "/Administrator/x"]) {
      assert401(await notForwarded(origin, p, () => raw(kc.url, p, { headers: NAVIGATE })), null, p);
    }
    // Signed in, any case reaches the origin as it came.
    const c = new Client(kc.url);
    await c.get(`/signin?set=${q({ user: "ada" })}`);
    const [r, rec] = await forwarded(origin, "signed in", () => c.get("/ADMIN/x"));
    assert.equal(r.status, 200);
    assert.equal(rec.url, "/ADMIN/x");
    assert.equal(rec.headers["x-forwarded-user"], undefined, "no KEYCARD_IDENTITY_HEADERS, no identity header");
    for (const p of ["/admin/x", "/ADMIN/x", "/Admin", "/aDmIn/x?a=1", "/%41DMIN/x", "/%41dmin/x", "//ADMIN/x", "/./AdMiN/x"]) {
      for (const [what, headers] of [["navigate", NAVIGATE], ["fetch", FETCH], ["upgrade", WEBSOCKET]]) {
        assert401(await notForwarded(origin, `${p} ${what}`, () => raw(kc.url, p, { headers })), null, `${p} ${what}`);
      }
    }
    assert400(await notForwarded(origin, "/ADMIN%2Fx", () => raw(kc.url, "/ADMIN%2Fx", { headers: NAVIGATE })), "/ADMIN%2Fx");
  });

  test("KEYCARD_CSRF=off forwards cross-origin unsafe requests", async () => {
    for (const headers of [[["Sec-Fetch-Site", "cross-site"]], [["Origin", "https://evil.example"]]]) {
      const [r] = await forwarded(origin, JSON.stringify(headers), () => raw(kc.url, "/form", { method: "POST", headers, body: "a=1" }));
      assert.equal(r.status, 200);
    }
  });
});

describe("guards: everything required, a login page on another host", () => {
  let origin;
  let kc;
  const LOGIN = "https://login.example/sso?app=kc";
  before(async () => {
    origin = await startOrigin();
    kc = await startKeycard({ ORIGIN_URL: origin.url, KEYCARD_REQUIRE: "/", KEYCARD_PUBLIC: "/assets/", KEYCARD_LOGIN_URL: LOGIN });
  });
  after(async () => {
    await kc?.close();
    await origin?.close();
  });

  test("next is the absolute URL of the request; /assets/ and /.keycard/ stay public", async () => {
    const abs = (p) => `${LOGIN}&next=${encodeURIComponent(kc.url + p)}`;
    assert303(await notForwarded(origin, "/", () => raw(kc.url, "/", { headers: NAVIGATE })), abs("/"), "/");
    assert303(await notForwarded(origin, "/x/y?a=1", () => raw(kc.url, "/x/y?a=1", { headers: NAVIGATE })), abs("/x/y?a=1"), "/x/y?a=1");
    assert401(await notForwarded(origin, "fetch", () => raw(kc.url, "/x/y?a=1", { headers: FETCH })), abs("/x/y?a=1"), "fetch");
    assert.equal(abs("/x/y?a=1"), `${LOGIN}&next=http%3A%2F%2F127.0.0.1%3A${kc.port}%2Fx%2Fy%3Fa%3D1`);
    // A path login URL is public; an absolute one is on another host, so /sso here is not.
    assert303(await notForwarded(origin, "/sso", () => raw(kc.url, "/sso", { headers: NAVIGATE })), abs("/sso"), "/sso");
    const [, rec] = await forwarded(origin, "/assets/app.css", () => raw(kc.url, "/assets/app.css", { headers: NAVIGATE }));
    assert.equal(rec.url, "/assets/app.css");
    const health = await notForwarded(origin, "health", () => raw(kc.url, "/.keycard/health"));
    assert.equal(health.status, 200);
  });

  test("with everything required, any ambiguous path is a 400", async () => {
    for (const p of ["/a%2Fb", "/a%2fb", "/a%5Cb", "/a%00b", "/%00", "/assets%2F..%2Fsecret"]) {
      for (const headers of [NAVIGATE, FETCH]) {
        assert400(await notForwarded(origin, p, () => raw(kc.url, p, { headers })), p);
      }
    }
  });
});

describe("guards: with none configured, requests are forwarded as before", () => {
  test("any path, any spelling, no identity headers; cross-origin protection is on by default", async () => {
    const origin = await startOrigin();
    const kc = await startKeycard({ ORIGIN_URL: origin.url });
    try {
      for (const p of ["/admin/x?a=1", "/%61dmin/x", "//admin/x", "/admin%2Fx", "/admin%5Cx", "/admin%00", "/ADMIN/x"]) {
        for (const headers of [NAVIGATE, FETCH]) {
          const [r, rec] = await forwarded(origin, p, () => raw(kc.url, p, { headers }));
          assert.equal(r.status, 200, p);
          assert.equal(rec.url, p);
        }
      }
      const c = new Client(kc.url);
      await c.get(`/signin?set=${q(ADA)}`);
      const [, rec] = await forwarded(origin, "signed in", () =>
        c.get("/admin/x", { headers: { "Remote-User": "someone", "X-Forwarded-User": "mallory" } }));
      assert.deepEqual(decodeSession(rec.headers["x-session"]), ADA);
      assert.equal(rec.headers["x-forwarded-user"], undefined, "X-Forwarded-* is keycard's: a client's is dropped, and none is set");
      assert.equal(rec.headers["remote-user"], undefined, "another proxy's identity header is dropped even when none is configured");
      // KEYCARD_CSRF defaults to origin.
      const refused = await notForwarded(origin, "cross-site POST", () => raw(kc.url, "/form", { method: "POST", headers: [["Sec-Fetch-Site", "cross-site"]], body: "a=1" }));
      assert.equal(refused.status, 403);
      const [ok] = await forwarded(origin, "plain POST", () => raw(kc.url, "/form", { method: "POST", body: "a=1" }));
      assert.equal(ok.status, 200);
    } finally {
      await kc.close();
      await origin.close();
    }
  });
});

// ------------------------------------------------------- Django behind keycard --

async function startDjango() {
  const port = await freePort();
  const child = spawn("python3", [path.join(ROOT, "examples/django/app.py"), String(port)], {
    env: { ...process.env, PYTHONPATH: DJANGO },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const exited = new Promise((r) => child.on("exit", r));
  const url = `http://127.0.0.1:${port}`;
  // migrate runs first: wait until the port answers (or the process dies).
  let up = false;
  for (let i = 0; i < 300 && child.exitCode === null; i++) {
    try {
      await request(`${url}/whoami`);
      up = true;
      break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  if (!up) {
    child.kill("SIGKILL");
    throw new Error(`the Django example did not start:\n${out}`);
  }
  return {
    url,
    output: () => out,
    close: async () => {
      child.kill("SIGTERM");
      await exited;
    },
  };
}

describe("Django's RemoteUserMiddleware behind keycard", () => {
  const django = spawnSync("python3", ["-c", "import django; print(django.__file__); print(django.get_version())"],
    { encoding: "utf8", env: { ...process.env, PYTHONPATH: DJANGO } });
  if (django.status !== 0) console.error("Django is missing: run `scripts/setup.sh django` (make test does)");

  test("Django's user follows keycard's session; a forged X-Forwarded-User never signs anyone in", async () => {
    assert.equal(django.status, 0, "Django must be installed in .tools/django (make test installs it)");
    const [file, version] = django.stdout.trim().split("\n");
    assert.ok(file.startsWith(DJANGO + path.sep), `the pinned Django from .tools/django, not ${file}`);
    assert.match(version, /^5\.2\./);
    const app = await startDjango();
    const kc = await startKeycard({ ORIGIN_URL: app.url, KEYCARD_IDENTITY_HEADERS: "X-Forwarded-User=user" });
    try {
      const whoami = async (base, headers = []) => (await raw(base, "/whoami", { headers })).text.trim();
      const forgeries = [[["X-Forwarded-User", "admin"]], [["X_Forwarded_User", "admin"]], [["x-forwarded-user", "admin"], ["X_FORWARDED_USER", "admin"]]];

      // The control: reached directly, this server takes both spellings as the user. So
      // whatever keeps them out below is keycard.
      assert.equal(await whoami(app.url), "user=anonymous");
      assert.equal(await whoami(app.url, [["X-Forwarded-User", "admin"]]), "user=admin");
      assert.equal(await whoami(app.url, [["X_Forwarded_User", "admin"]]), "user=admin");

      // Through keycard: anonymous, forged or not.
      assert.equal(await whoami(kc.url), "user=anonymous");
      for (const f of forgeries) assert.equal(await whoami(kc.url, f), "user=anonymous", JSON.stringify(f));

      // Sign in through the app (X-Session-Set + regenerate): Django sees ada.
      const c = new Client(kc.url);
      assert.equal((await c.get("/whoami")).text.trim(), "user=anonymous");
      const login = await c.send("/login", { method: "POST", body: "name=ada", headers: { "content-type": "application/x-www-form-urlencoded" } });
      assert.equal(login.status, 303, app.output());
      assert.ok(c.jar.has("keycard"), "keycard issued its cookie");
      const me = await c.get("/whoami");
      assert.equal(me.text.trim(), "user=ada");
      assert.ok(c.jar.has("sessionid"), "Django keeps its own login session too");
      // Signed in, a forged header does not change who Django sees.
      for (const f of forgeries) {
        assert.equal(await whoami(kc.url, [...f, ["Cookie", c.cookieHeader()]]), "user=ada", JSON.stringify(f));
      }

      // Sign out (destroy): keycard sends no header, and Django logs its user out even
      // though its own sessionid cookie is still sent.
      const out = await c.send("/logout", { method: "POST" });
      assert.equal(out.status, 303);
      assert.ok(!c.jar.has("keycard"), "keycard cleared its cookie");
      assert.ok(c.jar.has("sessionid"), "Django's cookie is still there");
      assert.equal((await c.get("/whoami")).text.trim(), "user=anonymous");
      for (const f of forgeries) {
        assert.equal(await whoami(kc.url, [...f, ["Cookie", c.cookieHeader()]]), "user=anonymous", `after sign-out ${JSON.stringify(f)}`);
      }
    } finally {
      await kc.close();
      await app.close();
    }
  });
});
