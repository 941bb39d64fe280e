// Issue 2: the whole request path in cookie mode, end to end: the built Worker in
// workerd (wrangler dev, local KV) in front of a real origin on 127.0.0.1.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { startOrigin, startKeycard, Client, request, decodeSession, parseSetCookie, q, SECRET } from "./lib/harness.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

describe("cookie mode, default attributes", () => {
  let origin, kc;
  before(async () => {
    origin = await startOrigin();
    kc = await startKeycard({ ORIGIN_URL: origin.url, SESSION_STORE: "cookie" });
  });
  after(async () => {
    await kc?.close();
    await origin?.close();
  });

  test("a new visitor gets status none and no cookie", async () => {
    const c = new Client(kc.url);
    const r = await c.get("/hello?x=1");
    assert.equal(r.status, 200);
    assert.equal(r.json.headers["x-session-status"], "none");
    assert.equal(r.json.headers["x-session"], undefined);
    assert.equal(r.json.headers["x-session-id"], undefined);
    assert.equal(r.headers["set-cookie"], undefined);
  });

  test("origin sets data, a cookie is issued, the next request's origin sees it", async () => {
    const c = new Client(kc.url);
    const r1 = await c.get(`/login?set=${q({ user: "ada", roles: ["admin"] })}`);
    assert.equal(r1.cookies.length, 1);
    const sc = r1.cookies[0];
    assert.equal(sc.name, "keycard");
    assert.match(sc.value, /^v1\.[A-Za-z0-9_-]{8}\./);
    assert.equal(sc.attrs.httponly, true);
    assert.equal(sc.attrs.samesite, "Lax");
    assert.equal(sc.attrs.path, "/");
    assert.equal(sc.attrs["max-age"], "86400");
    const r2 = await c.get("/account", { headers: { cookie: `${c.cookieHeader()}; theme=dark` } });
    const h = r2.json.headers;
    assert.equal(h["x-session-status"], "valid");
    assert.deepEqual(decodeSession(h["x-session"]), { user: "ada", roles: ["admin"] });
    assert.match(h["x-session-id"], /^[A-Za-z0-9_-]{22}$/);
    assert.ok(!sc.value.includes(h["x-session-id"]), "the handle is not the bearer value");
    const exp = Number(h["x-session-expires"]);
    const now = Date.now() / 1000;
    assert.ok(exp > now + 86000 && exp <= now + 86401, `expires ${exp}`);
    assert.equal(h.cookie, "theme=dark", "the session cookie is removed, other cookies stay");
    assert.equal(r2.headers["set-cookie"], undefined, "nothing changed, nothing re-issued");
  });

  test("method, path, query and body reach the origin; redirects are not followed", async () => {
    const c = new Client(kc.url);
    const body = "x".repeat(200_000);
    const r = await c.send("/upload/a%20b?q=1&r=%2F", { method: "PUT", body, headers: { "content-type": "text/plain" } });
    assert.equal(r.json.method, "PUT");
    assert.equal(r.json.url, "/upload/a%20b?q=1&r=%2F");
    assert.equal(r.json.body.length, body.length);
    const redir = await c.get("/go?status=302&header=location:/elsewhere");
    assert.equal(redir.status, 302);
    assert.equal(redir.headers.location, "/elsewhere");
  });

  test("X-Forwarded-* headers are set", async () => {
    const r = await request(kc.url + "/fwd", { headers: { "x-forwarded-for": "10.9.8.7" } });
    const h = r.json.headers;
    assert.equal(h["x-forwarded-host"], `127.0.0.1:${kc.port}`);
    assert.equal(h["x-forwarded-proto"], "http");
    assert.match(h["x-forwarded-for"], /^10\.9\.8\.7/);
  });

  test("a tampered cookie gives invalid and a clearing cookie", async () => {
    const c = new Client(kc.url);
    await c.get(`/login?set=${q({ user: "mallory" })}`);
    const v = c.jar.get("keycard");
    const parts = v.split(".");
    parts[6] = Buffer.from(JSON.stringify({ user: "admin" })).toString("base64url");
    const forged = parts.join(".");
    const r = await request(kc.url + "/admin", { headers: { cookie: `keycard=${forged}` } });
    assert.equal(r.json.headers["x-session-status"], "invalid");
    assert.equal(r.json.headers["x-session"], undefined);
    const sc = (r.headers["set-cookie"] ?? []).map(parseSetCookie);
    assert.equal(sc.length, 1);
    assert.equal(sc[0].name, "keycard");
    assert.equal(sc[0].value, "");
    assert.equal(sc[0].attrs["max-age"], "0");
    assert.equal(sc[0].attrs.path, "/");
  });

  test("a client-sent X-Session never reaches the origin", async () => {
    const forged = Buffer.from(JSON.stringify({ user: "admin" })).toString("base64url");
    const r = await request(kc.url + "/spoof", {
      headers: { "X-Session": forged, "x-SESSION-status": "valid", "X-Session-Id": "abc", "X-Session-Anything": "1", "X-Sessions": "kept" },
    });
    const h = r.json.headers;
    assert.equal(h["x-session"], undefined);
    assert.equal(h["x-session-status"], "none");
    assert.equal(h["x-session-id"], undefined);
    assert.equal(h["x-session-anything"], undefined);
    assert.equal(h["x-sessions"], "kept", "only the reserved namespace is stripped");
  });

  test("origin control headers never reach the client; the origin's own cookies do", async () => {
    const c = new Client(kc.url);
    const r = await c.get(`/x?set=${q({ a: 1 })}&action=regenerate&maxage=3600&header=X-Session-Debug:secret&origincookie=${encodeURIComponent("pref=1; Path=/")}`);
    const leaked = Object.keys(r.headers).filter((k) => k.toLowerCase().startsWith("x-session"));
    assert.deepEqual(leaked, []);
    const names = r.cookies.map((x) => x.name).sort();
    assert.deepEqual(names, ["keycard", "pref"]);
    assert.equal(r.cookies.find((x) => x.name === "keycard").attrs["max-age"], "3600");
  });

  test("destroy clears the session", async () => {
    const c = new Client(kc.url);
    await c.get(`/login?set=${q({ user: "ada" })}`);
    const saved = c.cookieHeader();
    const r = await c.get(`/logout?action=destroy&set=${q({ ignored: true })}`);
    const sc = r.cookies.find((x) => x.name === "keycard");
    assert.equal(sc.attrs["max-age"], "0");
    assert.equal(c.jar.size, 0);
    const after = await c.get("/after");
    assert.equal(after.json.headers["x-session-status"], "none");
    // In cookie mode a saved copy stays verifiable until it expires: docs/stores.md says
    // so, and kv mode is how to get revocation (tested in the KV suite).
    const replay = await request(kc.url + "/replay", { headers: { cookie: saved } });
    assert.equal(replay.json.headers["x-session-status"], "valid");
    assert.deepEqual(decodeSession(replay.json.headers["x-session"]), { user: "ada" });
  });

  test("POST logout clears the session, 204 or 303 to a safe next", async () => {
    const c = new Client(kc.url);
    await c.get(`/login?set=${q({ user: "ada" })}`);
    const r = await c.send("/.keycard/logout", { method: "POST" });
    assert.equal(r.status, 204);
    assert.equal(r.cookies[0].attrs["max-age"], "0");
    assert.equal(origin.requests.filter((x) => x.url.startsWith("/.keycard")).length, 0, "never forwarded");
    await c.get(`/login?set=${q({ user: "ada" })}`);
    const r2 = await c.send("/.keycard/logout?next=%2Fbye%3Fx%3D1", { method: "POST" });
    assert.equal(r2.status, 303);
    assert.equal(r2.headers.location, "/bye?x=1");
    const r3 = await c.send("/.keycard/logout?next=%2F%2Fevil.example", { method: "POST" });
    assert.equal(r3.status, 204, "an unsafe next is not followed");
    assert.equal(r3.headers.location, undefined);
    const r4 = await c.get("/.keycard/logout");
    assert.equal(r4.status, 405);
    const r5 = await c.send("/.keycard/logout", { method: "POST", headers: { "sec-fetch-site": "cross-site" } });
    assert.equal(r5.status, 403);
  });

  test("health answers without forwarding; session is 404 without inspect", async () => {
    const before = origin.requests.length;
    const h = await request(kc.url + "/.keycard/health");
    assert.equal(h.status, 200);
    assert.equal(h.json.status, "ok");
    assert.equal(h.json.store, "cookie");
    assert.match(h.json.version, /^\d+\.\d+\.\d+/);
    const s = await request(kc.url + "/.keycard/session");
    assert.equal(s.status, 404);
    const i = await request(kc.url + "/.keycard/");
    assert.equal(i.status, 404);
    assert.equal(origin.requests.length, before);
  });
});

describe("refresh", () => {
  let origin, kc;
  before(async () => {
    origin = await startOrigin();
    kc = await startKeycard({ ORIGIN_URL: origin.url, SESSION_STORE: "cookie", SESSION_REFRESH_AFTER: "2", SESSION_IDLE_TIMEOUT: "1h" });
  });
  after(async () => {
    await kc?.close();
    await origin?.close();
  });

  test("re-issues the cookie only after SESSION_REFRESH_AFTER", async () => {
    const c = new Client(kc.url);
    await c.get(`/login?set=${q({ user: "ada" })}`);
    const first = c.jar.get("keycard");
    const soon = await c.get("/a");
    assert.equal(soon.headers["set-cookie"], undefined, "fresh cookie: no re-issue");
    await sleep(3100);
    const later = await c.get("/b");
    assert.equal(later.cookies.length, 1, "old enough: re-issued");
    const second = c.jar.get("keycard");
    assert.notEqual(second, first);
    const issued = (v) => Number(v.split(".")[2]);
    assert.ok(issued(second) >= issued(first) + 2);
    assert.equal(later.cookies[0].attrs["max-age"], "3600");
    assert.deepEqual(decodeSession(later.json.headers["x-session"]), { user: "ada" });
    const again = await c.get("/c");
    assert.equal(again.headers["set-cookie"], undefined, "and not again right after");
  });
});

describe("secure defaults", () => {
  let origin, kc;
  before(async () => {
    origin = await startOrigin();
    kc = await startKeycard({ ORIGIN_URL: origin.url, SESSION_COOKIE_SECURE: undefined });
  });
  after(async () => {
    await kc?.close();
    await origin?.close();
  });

  test("the default cookie is __Host-keycard, Secure, HttpOnly, SameSite=Lax, Path=/, no Domain", async () => {
    const c = new Client(kc.url);
    const r = await c.get(`/login?set=${q({ user: "ada" })}`);
    const sc = r.cookies[0];
    assert.equal(sc.name, "__Host-keycard");
    assert.equal(sc.attrs.secure, true);
    assert.equal(sc.attrs.httponly, true);
    assert.equal(sc.attrs.samesite, "Lax");
    assert.equal(sc.attrs.path, "/");
    assert.equal(sc.attrs.domain, undefined);
    const r2 = await c.get("/next");
    assert.deepEqual(decodeSession(r2.json.headers["x-session"]), { user: "ada" });
  });
});

describe("misconfiguration fails closed", () => {
  for (const [label, vars, variable] of [
    ["missing secret", { SESSION_SECRET: undefined }, "SESSION_SECRET"],
    ["short secret", { SESSION_SECRET: "short-secret-value" }, "SESSION_SECRET"],
    ["bad duration", { SESSION_IDLE_TIMEOUT: "forever" }, "SESSION_IDLE_TIMEOUT"],
    ["SameSite=None without Secure", { SESSION_COOKIE_SAME_SITE: "None" }, "SESSION_COOKIE_SAME_SITE"],
    ["a misspelled name under KEYCARD_STRICT", { SESSION_IDLE_TIMOUT: "30m", KEYCARD_STRICT: "true" }, "KEYCARD_STRICT"],
    ["device-bound sessions with nowhere to keep a binding", { KEYCARD_DEVICE_BOUND: "on" }, "KEYCARD_DEVICE_BOUND"],
  ]) {
    test(`${label}: opaque 500, a log line naming ${variable}, origin untouched`, async () => {
      const origin = await startOrigin();
      const kc = await startKeycard({ ORIGIN_URL: origin.url, ...vars });
      try {
        const r = await request(kc.url + "/anything", { headers: { cookie: "keycard=v1.x" } });
        assert.equal(r.status, 500);
        assert.equal(r.text, "keycard: misconfigured");
        const h = await request(kc.url + "/.keycard/health");
        assert.equal(h.status, 500);
        assert.equal(origin.requests.length, 0);
        const ev = await kc.waitForEvent("misconfigured");
        assert.ok(ev, "a structured log line: " + kc.logs.join("\n"));
        assert.equal(ev.detail.var, variable);
        if (vars.SESSION_SECRET) assert.ok(!kc.logs.join("\n").includes(vars.SESSION_SECRET), "the secret is never logged");
      } finally {
        await kc.close();
        await origin.close();
      }
    });
  }
});

// Issue 23: SESSION_IDLE_TIMOUT="30m" was ignored in silence: health said ok, and the
// cookie kept the default Max-Age=86400.
describe("a variable keycard does not read", () => {
  test("is logged once by name, with the name it likely means, and listed by health", async () => {
    const origin = await startOrigin();
    const kc = await startKeycard({ ORIGIN_URL: origin.url, SESSION_IDLE_TIMOUT: "30m", ORIGIN_ULR: "http://x.example", DATABASE_URL: "not ours" });
    try {
      const h = await request(kc.url + "/.keycard/health");
      assert.equal(h.status, 200);
      assert.deepEqual(h.json.warnings.map((w) => w.var).sort(), ["ORIGIN_ULR", "SESSION_IDLE_TIMOUT"]);
      const w = h.json.warnings.find((x) => x.var === "SESSION_IDLE_TIMOUT");
      assert.equal(w.problem, "is not a variable keycard reads; did you mean SESSION_IDLE_TIMEOUT?");
      const ev = await kc.waitForEvent("unknown_variable");
      assert.ok(ev, kc.logs.join("\n"));
      await request(kc.url + "/x");
      await new Promise((r) => setTimeout(r, 300));
      const lines = kc.events().filter((e) => e.keycard === "unknown_variable");
      assert.deepEqual(lines.map((e) => e.detail.var).sort(), ["ORIGIN_ULR", "SESSION_IDLE_TIMOUT"], "once each");
      // keycard's own lines (wrangler lists the vars it was given when it starts).
      const own = kc.logs.filter((l) => l.includes('"keycard"'));
      assert.ok(!own.some((l) => l.includes("30m") || l.includes("x.example") || l.includes("not ours")), "never a value");
    } finally {
      await kc.close();
      await origin.close();
    }
  });
});

describe("origin failures", () => {
  test("an origin that refuses connections gives an opaque 502", async () => {
    const origin = await startOrigin();
    const deadUrl = origin.url;
    await origin.close();
    const kc = await startKeycard({ ORIGIN_URL: deadUrl });
    try {
      const r = await request(kc.url + "/x");
      assert.equal(r.status, 502);
      assert.equal(r.text, "keycard: origin unreachable");
      assert.ok(await kc.waitForEvent("origin_unreachable"), kc.logs.join("\n"));
    } finally {
      await kc.close();
    }
  });
});

export { SECRET };

// Issue 23: with ORIGIN_URL unset (route mode) or pointing at keycard itself, `wrangler
// dev` forwarded each request to keycard again, thousands of times, until a 500 with a
// stack trace, or hung for 30 s. keycard's mark on what it forwards ends it at once.
describe("a request that comes back to keycard", () => {
  test("ORIGIN_URL unset: one 508 that names ORIGIN_URL, in the body and in one log line", async () => {
    const kc = await startKeycard({});
    try {
      const started = Date.now();
      // identity: the second pass's answer comes back through the first, and workerd's
      // own fetch asked it for brotli.
      const r = await request(kc.url + "/page", { headers: { "accept-encoding": "identity" } });
      assert.equal(r.status, 508, r.text);
      assert.match(r.text, /^keycard: loop detected: .*ORIGIN_URL/);
      assert.ok(Date.now() - started < 10000, "answered at once, not after a timeout");
      const ev = await kc.waitForEvent("forward_loop");
      assert.equal(ev?.detail.var, "ORIGIN_URL");
      assert.match(ev.detail.problem, /^is unset/);
      await new Promise((res) => setTimeout(res, 500));
      assert.equal(kc.events().filter((e) => e.keycard === "forward_loop").length, 1, "one line, no storm");
      assert.ok(!kc.logs.some((l) => l.includes("Network connection lost")), "no storm of errors");
    } finally {
      await kc.close();
    }
  });

  test("a keycard in front of another keycard (another secret) is no loop", async () => {
    const origin = await startOrigin();
    const back = await startKeycard({ ORIGIN_URL: origin.url, SESSION_SECRET: "the-back-keycard-secret-0123456789abcdef0123" });
    const front = await startKeycard({ ORIGIN_URL: back.url });
    try {
      const r = await request(front.url + "/page", { headers: { "X-Session-Via": "forged" } });
      assert.equal(r.status, 200, r.text);
      const via = origin.last().rawHeaders.filter((_, i) => i % 2 === 0 && origin.last().rawHeaders[i].toLowerCase() === "x-session-via");
      assert.equal(via.length, 1, "the origin gets one mark, the back keycard's");
      assert.notEqual(origin.last().headers["x-session-via"], "forged");
    } finally {
      await front.close();
      await back.close();
      await origin.close();
    }
  });
});
