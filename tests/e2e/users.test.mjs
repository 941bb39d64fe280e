// Issue 13: sign out everywhere. The real Worker in workerd with its real KeycardUsers
// Durable Objects (wrangler dev, local SQLite-backed objects), in front of a real origin.
// The namespace binding is wrapped only to count and, on request, fail object calls
// (tests/e2e/fixtures/users-wrap.mjs).
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startOrigin, startKeycard, Client, request, q, clientCf } from "./lib/harness.mjs";

const WRAP = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures/users-wrap.mjs");
const FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const SAFARI = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
const EDGE = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0";
const SAME = { "sec-fetch-site": "same-origin" };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const calls = async (kc) => (await request(kc.url + "/__test/users")).json.calls;
const failObjects = (kc, on) => request(kc.url + `/__test/users?fail=${on ? 1 : 0}`, { method: "POST" });

/** A browser of `user`, signed in the way an app should do it: Set, then regenerate. */
async function signedIn(kc, user, ua = FIREFOX) {
  const c = new Client(kc.url);
  c.ua = ua;
  const r = await c.send(`/login?set=${q({ user })}&action=regenerate`, { method: "POST", headers: { "user-agent": ua } });
  assert.equal(r.status, 200);
  assert.ok(c.jar.get("keycard"), "signed in");
  return c;
}

/** What the origin is told on an unsafe request (which is always checked). */
async function statusOnPost(c, pathAndQuery = "/form") {
  const r = await c.send(pathAndQuery, { method: "POST", headers: { "user-agent": c.ua ?? FIREFOX } });
  return r.json?.headers["x-session-status"];
}

const handleOf = async (c) => (await c.get("/whoami")).json.headers["x-session-id"];
const list = async (c) => c.get("/.keycard/sessions", { headers: { "user-agent": c.ua ?? FIREFOX } });

describe("sign-out everywhere, cookie store, SESSION_REVOCATION_CHECK=writes (the default)", () => {
  let origin, kc;
  before(async () => {
    origin = await startOrigin();
    kc = await startKeycard({ ORIGIN_URL: origin.url, SESSION_STORE: "cookie" }, { entry: WRAP, users: true });
  });
  after(async () => {
    await kc?.close();
    await origin?.close();
  });

  test("three sessions of one user are listed, the current one marked; another user sees only his", async () => {
    const laptop = await signedIn(kc, "ada", FIREFOX);
    await signedIn(kc, "ada", SAFARI);
    await signedIn(kc, "ada", EDGE);
    const bob = await signedIn(kc, "bob");
    const r = await list(laptop);
    assert.equal(r.status, 200);
    assert.equal(r.headers["cache-control"], "no-store");
    const sessions = r.json.sessions;
    assert.equal(sessions.length, 3);
    assert.deepEqual(sessions.map((s) => s.agent).sort(), ["Edge on Windows", "Firefox on Linux", "Safari on iOS"]);
    const current = sessions.filter((s) => s.current);
    assert.equal(current.length, 1);
    assert.equal(current[0].id, await handleOf(laptop), "the current entry is this browser's X-Session-Id");
    for (const s of sessions) {
      assert.match(s.id, /^[A-Za-z0-9_-]{22}$/);
      assert.ok(s.created > 1.7e9 && s.last_seen >= s.created);
      assert.match(s.country ?? "", /^[A-Z]{2}$/, "the device's country, from request.cf");
    }
    assert.equal((await list(bob)).json.sessions.length, 1);
    const anonymous = await new Client(kc.url).get("/.keycard/sessions");
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.json.error, "session_required");
  });

  test("a request.cf country that is not two letters is left out of the device list, never a trap", async () => {
    for (const country of [["D", "E"], 49, "<script>"]) {
      const cf = { ...clientCf({ country }), "user-agent": FIREFOX };
      const c = new Client(kc.url);
      const r = await c.send(`/login?set=${q({ user: "cf-junk" })}&action=regenerate`, { method: "POST", headers: cf });
      assert.equal(r.status, 200, `signed in with cf.country ${JSON.stringify(country)}`);
      const listed = await c.get("/.keycard/sessions", { headers: cf });
      assert.equal(listed.status, 200);
      const mine = listed.json.sessions.filter((s) => s.current);
      assert.equal(mine.length, 1);
      assert.equal(mine[0].country ?? null, null, "no country rather than a made-up one");
    }
  });

  test("POST sessions/revoke ends one session of the same user; another user's handle is refused quietly", async () => {
    const a1 = await signedIn(kc, "ada");
    const a2 = await signedIn(kc, "ada");
    const bob = await signedIn(kc, "bob");
    const h2 = await handleOf(a2);
    // bob cannot end ada's session: it is not among his.
    assert.equal((await bob.send(`/.keycard/sessions/revoke?id=${h2}`, { method: "POST", headers: SAME })).status, 204);
    assert.equal(await statusOnPost(a2), "valid");
    const crossSite = await a1.send(`/.keycard/sessions/revoke?id=${h2}`, { method: "POST", headers: { "sec-fetch-site": "cross-site" } });
    assert.equal(crossSite.status, 403, "the logout rule: a cross-site revoke is refused");
    assert.equal(await statusOnPost(a2), "valid");
    const r = await a1.send(`/.keycard/sessions/revoke?id=${h2}`, { method: "POST", headers: SAME });
    assert.equal(r.status, 204);
    const after = await a2.send("/form", { method: "POST" });
    assert.equal(after.json.headers["x-session-status"], "invalid");
    assert.equal(after.json.headers["x-session"], undefined, "nothing forwarded as a session");
    assert.ok(after.cookies.some((c) => c.name === "keycard" && c.attrs["max-age"] === "0"), "the clearing cookie");
    assert.equal(await statusOnPost(a1), "valid");
    assert.equal(await statusOnPost(bob), "valid");
    assert.equal((await kc.waitForEvent("session_revoked"))?.level, "warn");
  });

  test("destroy-others keeps this session and ends every other one of the user, not another user's", async () => {
    const phone = await signedIn(kc, "eve", SAFARI);
    const laptop = await signedIn(kc, "eve", FIREFOX);
    const tablet = await signedIn(kc, "eve", EDGE);
    const other = await signedIn(kc, "mallory");
    const r = await phone.send("/devices?action=destroy-others", { method: "POST" });
    assert.equal(r.status, 200);
    assert.equal(await statusOnPost(phone), "valid");
    assert.equal(await statusOnPost(laptop), "invalid");
    assert.equal(await statusOnPost(tablet), "invalid");
    assert.equal(await statusOnPost(other), "valid");
    assert.equal((await list(phone)).json.sessions.length, 1);
  });

  test("destroy-all clears this cookie, and a replayed copy of it is refused afterwards", async () => {
    const c = await signedIn(kc, "trent");
    const other = await signedIn(kc, "trent");
    const copy = new Client(kc.url);
    copy.jar = new Map(c.jar);
    const r = await c.send("/everywhere?action=destroy-all", { method: "POST" });
    assert.ok(r.cookies.some((k) => k.name === "keycard" && k.attrs["max-age"] === "0"));
    assert.equal(c.jar.size, 0);
    const replay = await copy.send("/transfer", { method: "POST" });
    assert.equal(replay.json.headers["x-session-status"], "invalid", "a cookie-mode session, revoked");
    assert.equal(await statusOnPost(other), "invalid");
  });

  test("the origin's X-Session-Revoke ends the named sessions", async () => {
    const a = await signedIn(kc, "victor");
    const b = await signedIn(kc, "victor");
    const hb = await handleOf(b);
    await a.send(`/revoke?header=${encodeURIComponent(`x-session-revoke:${hb}`)}`, { method: "POST" });
    assert.equal(await statusOnPost(b), "invalid");
    assert.equal(await statusOnPost(a), "valid");
  });

  test("sign-out revokes: a copy of the signed-out cookie is refused", async () => {
    const c = await signedIn(kc, "wendy");
    const copy = new Client(kc.url);
    copy.jar = new Map(c.jar);
    const out = await c.send("/.keycard/logout", { method: "POST", headers: SAME });
    assert.equal(out.status, 204);
    assert.equal(await statusOnPost(copy), "invalid");
  });

  test("anonymous sessions never call the object; signed-in reads do not in writes mode, writes and refreshes do", async () => {
    const anon = new Client(kc.url);
    const n0 = await calls(kc);
    await anon.get(`/cart?set=${q({ cart: [1, 2] })}`);
    await anon.send("/cart", { method: "POST" });
    await anon.get("/cart");
    assert.equal(await calls(kc), n0, "no call for an anonymous session");
    const c = await signedIn(kc, "walter");
    const n1 = await calls(kc);
    assert.equal(n1 - n0, 1, "a sign-in is one call");
    for (let i = 0; i < 5; i++) assert.equal((await c.get("/read")).json.headers["x-session-status"], "valid");
    assert.equal(await calls(kc), n1, "reads of a signed-in session: no call");
    await statusOnPost(c);
    assert.equal(await calls(kc), n1 + 1, "an unsafe method: one call");
  });

  test("in writes mode a revoked session can still read a non-required page until its next check", async () => {
    const a = await signedIn(kc, "xavier");
    const b = await signedIn(kc, "xavier");
    await a.send("/x?action=destroy-others", { method: "POST" });
    assert.equal((await b.get("/read")).json.headers["x-session-status"], "valid", "the documented window");
    assert.equal(await statusOnPost(b), "invalid");
  });

  test("a checked request in flight while the session is regenerated leaves the new cookie alone", async () => {
    // A second sign-in step regenerates a signed-in session: its object revokes the old
    // id at once. The page's POST that left with the old cookie is checked, finds it
    // revoked, and must not clear the cookie: its answer arrives after the new one.
    const c = await signedIn(kc, "yvonne");
    const old = c.cookieHeader();
    const step = await c.send(`/step-up?set=${q({ mfa: true })}&action=regenerate`, { method: "POST" });
    assert.equal(step.cookies.length, 1);
    const late = await c.send(`/form?set=${q({ n: 1 })}`, { method: "POST", headers: { cookie: old } });
    assert.equal(late.json.headers["x-session-status"], "invalid", "the old id is no session");
    assert.equal(late.headers["set-cookie"], undefined, "nothing cleared or issued");
    const now = await c.send("/form", { method: "POST" });
    assert.equal(now.json.headers["x-session-status"], "valid", "still signed in");
  });

  test("no user name reaches a log line", async () => {
    await signedIn(kc, "ada-e2e-unique-name");
    assert.ok(!kc.logs.some((l) => l.includes("ada-e2e-unique-name")));
  });
});

describe("sign-out everywhere: a revocation that races a refresh", () => {
  let origin, kc;
  before(async () => {
    origin = await startOrigin();
    kc = await startKeycard({ ORIGIN_URL: origin.url, SESSION_STORE: "cookie", SESSION_REFRESH_AFTER: "2" }, { entry: WRAP, users: true });
  });
  after(async () => {
    await kc?.close();
    await origin?.close();
  });

  // Issue 22, finding 4: the refresh was checked before it was forwarded, and its fresh
  // cookie was issued without asking again, so it read on as valid.
  test("destroy-others while a refresh is at the origin: its fresh cookie is refused", async () => {
    const laptop = await signedIn(kc, "yara");
    const phone = await signedIn(kc, "yara", SAFARI);
    await sleep(2200); // the laptop's cookie is due for a refresh
    const slow = laptop.get("/slow?delay=1500");
    await sleep(500); // checked, not revoked yet, and waiting for the origin
    assert.equal((await phone.send("/x?action=destroy-others", { method: "POST", headers: { "user-agent": SAFARI } })).status, 200);
    const r = await slow;
    assert.equal(r.json.headers["x-session-status"], "valid", "it was checked before the revocation");
    const sc = r.cookies.find((c) => c.name === "keycard");
    assert.equal(sc?.attrs["max-age"], "0", `the re-issue is refused and the cookie cleared: ${JSON.stringify(sc?.attrs)}`);
    assert.notEqual((await laptop.get("/read")).json.headers["x-session-status"], "valid");
    assert.equal(await statusOnPost(phone), "valid", "the phone keeps its session");
  });
});

describe("sign-out everywhere, kv store, SESSION_REVOCATION_CHECK=always", () => {
  let origin, kc;
  before(async () => {
    origin = await startOrigin();
    kc = await startKeycard({ ORIGIN_URL: origin.url, SESSION_STORE: "kv", SESSION_REVOCATION_CHECK: "always" }, { entry: WRAP, users: true });
  });
  after(async () => {
    await kc?.close();
    await origin?.close();
  });

  test("every signed-in request is checked, so a revocation holds at once, even for reads", async () => {
    const a = await signedIn(kc, "yvonne");
    const b = await signedIn(kc, "yvonne");
    const n = await calls(kc);
    await b.get("/read");
    assert.equal(await calls(kc), n + 1, "one object call per signed-in read");
    await a.send("/x?action=destroy-others", { method: "POST" });
    const r = await b.get("/read");
    assert.equal(r.json.headers["x-session-status"], "invalid");
    assert.ok(r.cookies.some((k) => k.name === "keycard" && k.attrs["max-age"] === "0"));
    assert.equal((await a.get("/read")).json.headers["x-session-status"], "valid");
  });
});

describe("sign-out everywhere when the object cannot be reached", () => {
  let origin, closed, open;
  before(async () => {
    origin = await startOrigin();
    closed = await startKeycard({ ORIGIN_URL: origin.url, SESSION_STORE: "cookie" }, { entry: WRAP, users: true });
    open = await startKeycard({ ORIGIN_URL: origin.url, SESSION_STORE: "cookie", SESSION_KV_FAILURE: "open" }, { entry: WRAP, users: true });
  });
  after(async () => {
    await closed?.close();
    await open?.close();
    await origin?.close();
  });

  test("SESSION_KV_FAILURE=closed: a check gives a 503 and nothing reaches the origin", async () => {
    const c = await signedIn(closed, "zoe");
    await failObjects(closed, true);
    const seen = origin.requests.length;
    const r = await c.send("/form", { method: "POST" });
    await failObjects(closed, false);
    assert.equal(r.status, 503);
    assert.equal(r.headers["retry-after"], "5");
    assert.equal(origin.requests.length, seen);
    assert.equal((await closed.waitForEvent("users_unavailable"))?.level, "error");
  });

  test("SESSION_KV_FAILURE=open: forwarded with the session and a log line; a sign-out still fails closed", async () => {
    const c = await signedIn(open, "zoe");
    await failObjects(open, true);
    const r = await c.send("/form", { method: "POST" });
    const out = await c.send("/.keycard/logout", { method: "POST", headers: SAME });
    await failObjects(open, false);
    assert.equal(r.json.headers["x-session-status"], "valid");
    assert.ok(await open.waitForEvent("users_unavailable"));
    assert.equal(out.status, 503, "a sign-out that cannot revoke is not claimed");
    assert.equal(await statusOnPost(c), "valid", "and the session is still there");
  });
});

describe("sign-out everywhere without the binding (the default)", () => {
  let origin, kc, misconfigured;
  before(async () => {
    origin = await startOrigin();
    kc = await startKeycard({ ORIGIN_URL: origin.url, SESSION_STORE: "cookie" });
    misconfigured = await startKeycard({ ORIGIN_URL: origin.url, SESSION_USERS_BINDING: "NOT_THERE" });
  });
  after(async () => {
    await kc?.close();
    await misconfigured?.close();
    await origin?.close();
  });

  test("keycard behaves as before: no endpoints, destroy-all ends this session only, and the log says why", async () => {
    const health = await request(kc.url + "/.keycard/health");
    assert.equal(health.json.users, false);
    const c = await signedIn(kc, "ada");
    const other = await signedIn(kc, "ada");
    assert.equal((await c.get("/.keycard/sessions")).status, 404);
    await c.send("/x?action=destroy-all", { method: "POST" });
    assert.equal(c.jar.size, 0, "this session is destroyed");
    assert.equal(await statusOnPost(other), "valid", "the others cannot be reached without the binding");
    assert.ok(await kc.waitForEvent("users_unbound"));
  });

  test("a SESSION_USERS_BINDING that names nothing fails closed, naming the variable", async () => {
    const r = await request(misconfigured.url + "/");
    assert.equal(r.status, 500);
    const ev = await misconfigured.waitForEvent("misconfigured");
    assert.equal(ev?.detail.var, "SESSION_USERS_BINDING");
  });
});
