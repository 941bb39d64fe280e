// Issue 5: the bad-input matrix, end to end in workerd. No input may produce a 5xx or
// an origin request carrying a session it should not have; every case gets the right
// X-Session-Status; a valid session of another client is untouched throughout. At the
// end, the Worker's logs must hold no secret, cookie value or session value.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { startOrigin, startKeycard, Client, request, decodeSession, q, SECRET } from "./lib/harness.mjs";
import { mint, kid } from "./lib/mint.mjs";

const now = () => Math.floor(Date.now() / 1000);
const MARK = "victim-private-marker-7c1e";

let origin, kc, victim, victimCookie, seenCookies;

async function victimIntact() {
  const r = await victim.get("/victim-check");
  assert.equal(r.json.headers["x-session-status"], "valid");
  assert.deepEqual(decodeSession(r.json.headers["x-session"]), { user: "victim", note: MARK });
}

before(async () => {
  origin = await startOrigin();
  kc = await startKeycard({ ORIGIN_URL: origin.url, SESSION_IDLE_TIMEOUT: "1h" });
  victim = new Client(kc.url);
  await victim.get(`/login?set=${q({ user: "victim", note: MARK })}`);
  victimCookie = victim.jar.get("keycard");
  seenCookies = new Set([victimCookie]);
});
after(async () => {
  await kc?.close();
  await origin?.close();
});

describe("from the client", () => {
  const valid = () => victimCookie;
  const parts = () => victimCookie.split(".");
  const cases = [
    ["a 16 KB Cookie header", () => `${Array.from({ length: 400 }, (_, i) => `junk${i}=${"z".repeat(30)}`).join("; ")}`, "none"],
    ["a 16 KB Cookie header with a junk session cookie", () => `keycard=${"A".repeat(16000)}`, "invalid"],
    ["150 cookies then a valid session", () => `${Array.from({ length: 150 }, (_, i) => `c${i}=v${i}`).join("; ")}; keycard=${valid()}`, "valid"],
    ["two session cookies, valid first", () => `keycard=${valid()}; keycard=garbage`, "valid"],
    ["two session cookies, invalid first", () => `keycard=garbage; keycard=${valid()}`, "valid"],
    ["non-UTF-8 bytes", () => "keycard=\u00ff\u00fe\u00e9\u0080abc", "invalid"],
    ["non-UTF-8 bytes inside a valid-looking cookie", () => valid().replace(/\.[^.]+$/, ".\u00ff\u00fe"), "invalid"],
    ["an empty value", () => "keycard=", "invalid"],
    ["a truncated MAC", () => valid().slice(0, -5), "invalid"],
    ["base64 MAC with padding", () => `${valid()}=`, "invalid"],
    ["standard base64 alphabet instead of url-safe", () => {
      const p = parts();
      p[5] = p[5].replace(/-/g, "+").replace(/_/g, "/");
      p[7] = p[7].replace(/-/g, "+").replace(/_/g, "/");
      if (p.join(".") === valid()) p[7] = p[7].slice(0, -1) + "+";
      return p.join(".");
    }, "invalid"],
    ["an unknown version", () => valid().replace(/^v1\./, "v9."), "invalid"],
    ["an unknown kid", () => valid().replace(/^v1\.[^.]+\./, "v1.AAAAAAAA."), "invalid"],
    ["an expired cookie", () => mint({ secret: SECRET, iat: now() - 7200, data: { user: "old" } }), "expired"],
    ["an issue time in the far future", () => mint({ secret: SECRET, iat: now() + 86400 * 365, data: { user: "future" } }), "invalid"],
    ["a cookie signed for another cookie name", () => mint({ secret: SECRET, name: "other", iat: now(), data: { user: "admin" } }), "invalid"],
    ["a MAC from another secret", () => mint({ secret: "another-secret-0123456789abcdef0123456789", kidOverride: kid(SECRET), iat: now(), data: { user: "admin" } }), "invalid"],
    ["a KV pointer to a record that does not exist", () => mint({ secret: SECRET, iat: now(), inKv: true }), "invalid"],
    ["a quoted value", () => `"${valid()}"`, "valid"],
  ];
  for (const [label, make, want] of cases) {
    test(label, async () => {
      const v = make();
      const header = v.startsWith("keycard=") || v.includes("; ") || v.startsWith("junk") ? v : `keycard=${v}`;
      const before = origin.requests.length;
      const r = await request(kc.url + "/matrix", { headers: { cookie: header } });
      assert.ok(r.status < 500, `status ${r.status}: ${r.text.slice(0, 200)}`);
      if (r.status === 431 || r.status === 413 || r.status === 400) {
        assert.equal(origin.requests.length, before, "a refused request never reaches the origin");
      } else {
        assert.equal(r.status, 200);
        const h = origin.last().headers;
        assert.equal(h["x-session-status"], want);
        if (want === "valid") assert.deepEqual(decodeSession(h["x-session"]), { user: "victim", note: MARK });
        else assert.equal(h["x-session"], undefined, "no session reaches the origin");
        assert.ok(!(h.cookie ?? "").includes("keycard="), "the session cookie is not forwarded");
        if (want === "invalid" || want === "expired") {
          assert.ok((r.headers["set-cookie"] ?? []).some((s) => s.startsWith("keycard=;") && s.includes("Max-Age=0")), "cleared");
        }
      }
      await victimIntact();
    });
  }

  test("a minted cookie with the right secret verifies (docs/formats.md is exact)", async () => {
    const c = mint({ secret: SECRET, iat: now(), data: { user: "minted" } });
    const r = await request(kc.url + "/minted", { headers: { cookie: `keycard=${c}` } });
    assert.equal(r.json.headers["x-session-status"], "valid");
    assert.deepEqual(decodeSession(r.json.headers["x-session"]), { user: "minted" });
  });

  test("spoofed session headers in every spelling are stripped", async () => {
    const r = await request(kc.url + "/spoof", { headers: { "X-SESSION": "e30", "x-Session-Status": "valid", "X-Session-Expires": "9" } });
    assert.equal(r.json.headers["x-session"], undefined);
    assert.equal(r.json.headers["x-session-status"], "none");
    assert.equal(r.json.headers["x-session-expires"], undefined);
  });
});

describe("from the origin", () => {
  const cases = [
    ["a 64 KB X-Session-Set", `setbig=${64 * 1024 - 20}`, (d) => assert.equal(d.big?.length, 64 * 1024 - 20)],
    ["non-object JSON", `set=${encodeURIComponent("[1,2,3]")}`, (d) => assert.deepEqual(d, { n: 1 })],
    ["deeply nested JSON", `setdeep=3000`, (d) => assert.deepEqual(d, { n: 1 })],
    ["invalid base64", `setb64=${encodeURIComponent("!!!not*base64")}`, (d) => assert.deepEqual(d, { n: 1 })],
    ["valid base64url", `setb64=${Buffer.from('{"b":2}').toString("base64url")}`, (d) => assert.deepEqual(d, { n: 1, b: 2 })],
    ["unknown actions", `action=${encodeURIComponent("explode, frobnicate")}`, (d) => assert.deepEqual(d, { n: 1 })],
    ["repeated X-Session-Set headers", `header=${encodeURIComponent('X-Session-Set:{"x":1}')}&header=${encodeURIComponent('X-Session-Set:{"y":2}')}`, (d) => assert.deepEqual(d, { n: 1 })],
    ["repeated X-Session-Action headers", `header=X-Session-Action:clear&header=${encodeURIComponent("X-Session-Action:bogus")}`, (d) => assert.deepEqual(d, {})],
    ["a bad X-Session-Max-Age", `maxage=soon`, (d) => assert.deepEqual(d, { n: 1 })],
  ];
  for (const [label, query, check] of cases) {
    test(label, async () => {
      const c = new Client(kc.url);
      await c.get(`/seed?set=${q({ n: 1 })}`);
      seenCookies.add(c.jar.get("keycard"));
      const r = await c.get(`/ctl?${query}`);
      assert.ok(r.status < 500, `status ${r.status}`);
      assert.equal(r.status, 200);
      assert.deepEqual(Object.keys(r.headers).filter((k) => k.startsWith("x-session")), [], "no control header reaches the client");
      for (const sc of r.cookies) seenCookies.add(sc.value);
      const after = await c.get("/after");
      const data = after.json.headers["x-session"] ? decodeSession(after.json.headers["x-session"]) : {};
      check(data);
      await victimIntact();
    });
  }

  test("a Set together with destroy destroys and ignores the Set", async () => {
    const c = new Client(kc.url);
    await c.get(`/seed?set=${q({ n: 1 })}`);
    const r = await c.get(`/ctl?set=${q({ n: 2 })}&action=destroy`);
    assert.equal(r.status, 200);
    assert.ok(r.cookies.some((x) => x.name === "keycard" && x.attrs["max-age"] === "0"));
    assert.equal(r.cookies.length, 1);
    assert.equal((await c.get("/after")).json.headers["x-session-status"], "none");
    await victimIntact();
  });

  test("an origin 5xx passes through unchanged and applies no session change", async () => {
    const c = new Client(kc.url);
    await c.get(`/seed?set=${q({ n: 1 })}`);
    const r = await c.get(`/boom?status=503&set=${q({ n: 99 })}&action=destroy&header=retry-after:7`);
    assert.equal(r.status, 503);
    assert.equal(r.headers["retry-after"], "7");
    assert.equal(r.json.url.startsWith("/boom"), true, "the origin's own body");
    assert.equal(r.headers["set-cookie"], undefined);
    assert.deepEqual(decodeSession((await c.get("/after")).json.headers["x-session"]), { n: 1 });
    const r502 = await c.get("/boom?status=502");
    assert.equal(r502.status, 502);
  });

  test("a slow origin is waited for and passed through", async () => {
    const c = new Client(kc.url);
    const t0 = Date.now();
    const r = await c.get(`/slow?delay=2500&set=${q({ slow: true })}`);
    assert.equal(r.status, 200);
    assert.ok(Date.now() - t0 >= 2400);
    assert.deepEqual(decodeSession((await c.get("/after")).json.headers["x-session"]), { slow: true });
  });
});

describe("logout next", () => {
  for (const next of ["https://evil.example/", "//evil.example", "/\\evil.example", "\\\\evil.example", "/%2F%2Fevil.example",
    "%2F%2Fevil.example", "/%5Cevil.example", "/%252F%252Fevil", "javascript:alert(1)", "/%0d%0aLocation:%20https://evil"]) {
    test(`refuses ${next}`, async () => {
      const r = await request(`${kc.url}/.keycard/logout?next=${encodeURIComponent(next)}`, { method: "POST" });
      assert.equal(r.status, 204);
      assert.equal(r.headers.location, undefined);
    });
  }
  test("accepts a same-site path", async () => {
    const r = await request(`${kc.url}/.keycard/logout?next=${encodeURIComponent("/goodbye?x=1")}`, { method: "POST" });
    assert.equal(r.status, 303);
    assert.equal(r.headers.location, "/goodbye?x=1");
  });
});

describe("logs", () => {
  test("hold no secret, cookie value or session value", async () => {
    await new Promise((r) => setTimeout(r, 500));
    const text = kc.logs.join("\n");
    assert.ok(kc.events().length > 5, "the suite produced keycard log events");
    assert.ok(!text.includes(SECRET), "secret");
    assert.ok(!text.includes(SECRET.slice(0, 16)), "secret prefix");
    assert.ok(!text.includes(MARK), "session value");
    for (const c of seenCookies) {
      if (!c) continue;
      assert.ok(!text.includes(c), "cookie value");
      assert.ok(!text.includes(c.split(".").at(-1)), "cookie MAC");
      assert.ok(!text.includes(c.split(".")[5] ?? "\u0000"), "session id");
    }
  });
});
