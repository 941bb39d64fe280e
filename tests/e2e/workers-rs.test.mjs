// Issue 14: keycard inside a Rust Worker (the `worker` cargo feature), end to end. The
// example examples/workers-rs, built with worker-build by `make example-rs`, runs in
// workerd with local KV; the standalone Worker (build/index.js) runs next to it under
// the same secret and cookie name, in front of a real origin. With the KEYCARD_USERS
// binding, the users' objects are the example's own KeycardUsers class (keycard::worker).
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startOrigin, startKeycard, Client, request, decodeSession, q, clientCf } from "./lib/harness.mjs";
import { signInBound, onlyCookie, BOUND_COOKIE } from "./lib/device-bound.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const EXAMPLE = path.join(ROOT, "examples/workers-rs/build/index.js");
const NAME = "shared_session";

const session = async (c) => (await c.get("/.keycard/session")).json;
const login = (c, user) => c.send(`/login?user=${encodeURIComponent(user)}`, { method: "POST" });
const logout = (c) => c.send("/logout", { method: "POST" });
const handleOf = async (c) => (await session(c)).handle;
const keycardCookie = (r) => r.cookies.find((sc) => sc.name === NAME);
// No response header that reads as a control header (any spelling) reaches the client.
const noControlHeaders = (r) => {
  const names = Object.keys(r.headers).map((n) => n.toLowerCase().replace(/[^a-z0-9]/g, "-"));
  assert.deepEqual(names.filter((n) => n === "x-session" || n.startsWith("x-session-")), []);
};

describe("the workers-rs example", () => {
  let rs;
  before(async () => {
    rs = await startKeycard({ SESSION_COOKIE_NAME: NAME, KEYCARD_INSPECT: "true" }, { entry: EXAMPLE, users: true });
  });
  after(async () => {
    await rs?.close();
  });

  test("visits are counted in a session created on the first visit", async () => {
    const c = new Client(rs.url);
    const first = await c.get("/");
    assert.equal(first.status, 200);
    assert.deepEqual(first.json, { user: null, visits: 1, status: "none" });
    const sc = keycardCookie(first);
    assert.ok(sc, "the first visit creates the session");
    assert.equal(sc.attrs.httponly, true);
    assert.equal(sc.attrs.samesite, "Lax");
    assert.equal(first.headers["cache-control"], "private");
    noControlHeaders(first);
    for (const n of [2, 3]) {
      const r = await c.get("/");
      assert.deepEqual(r.json, { user: null, visits: n, status: "valid" });
      noControlHeaders(r);
    }
    assert.equal((await session(c)).data.visits, 3);
  });

  // Issue 22, finding 7: the example matched on worker::Method, which reads a method it
  // does not know as Get, so PROPFIND / ran the GET branch and counted a visit.
  test("an unknown method is not a GET: PROPFIND / is a 404 and changes no session", async () => {
    const c = new Client(rs.url);
    await c.get("/");
    const r = await c.send("/", { method: "PROPFIND" });
    assert.equal(r.status, 404);
    assert.equal(keycardCookie(r), undefined, "no session change");
    assert.equal((await session(c)).data.visits, 1);
  });

  test("a request that changes nothing sends no session cookie, and the app's own cookie is kept", async () => {
    const c = new Client(rs.url);
    await c.get("/");
    const r = await c.get("/headers");
    assert.equal(r.status, 200);
    assert.equal(keycardCookie(r), undefined, "nothing changed: no cookie");
    assert.deepEqual(r.cookies.map((sc) => sc.name), ["theme"]);
    // The app's own X-Session-Set is removed and never applied.
    noControlHeaders(r);
    assert.deepEqual((await session(c)).data, { visits: 1 });
    assert.equal((await rs.waitForEvent("handler_control_header"))?.detail?.header, "x-session-set");
    // A bad session cookie is cleared, next to the app's own cookie.
    const bad = await request(rs.url + "/headers", { headers: { cookie: `${NAME}=v1.forged` } });
    const names = bad.headers["set-cookie"].map((s) => s.split("=")[0]).sort();
    assert.deepEqual(names, [NAME, "theme"]);
    assert.match(bad.headers["set-cookie"].find((s) => s.startsWith(NAME)), /Max-Age=0/);
    assert.equal(bad.json["x-session-status"], "invalid");
  });

  test("login sets the user, regenerates the session and answers 303 to /", async () => {
    const c = new Client(rs.url);
    await c.get("/");
    const before = await session(c);
    const r = await login(c, "ann");
    assert.equal(r.status, 303);
    assert.equal(r.headers.location, "/");
    assert.ok(keycardCookie(r), "the new session's cookie is issued");
    noControlHeaders(r);
    const after = await session(c);
    assert.notEqual(after.handle, before.handle, "a new session id (the handle changes)");
    assert.deepEqual(after.data, { visits: 1, user: "ann" }, "the data is kept");
    assert.deepEqual((await c.get("/")).json, { user: "ann", visits: 2, status: "valid" });
  });

  test("logout destroys the session, clears the cookie and answers 303 to /", async () => {
    const c = new Client(rs.url);
    await login(c, "ann");
    const r = await logout(c);
    assert.equal(r.status, 303);
    assert.equal(r.headers.location, "/");
    assert.equal(keycardCookie(r).value, "");
    assert.equal(keycardCookie(r).attrs["max-age"], "0");
    assert.equal(c.jar.has(NAME), false);
    assert.deepEqual((await c.get("/")).json, { user: null, visits: 1, status: "none" });
  });

  test("forged X-Session headers and their aliases are ignored; the app never sees the session cookie", async () => {
    const forged = Buffer.from(JSON.stringify({ user: "admin", visits: 99 })).toString("base64url");
    const headers = {
      "x-session": forged,
      X_Session: forged,
      "X.Session": forged,
      "x-session-status": "valid",
      X_Session_Id: "forged-handle",
      "x-forwarded-host": "evil.example",
      "x-real-ip": "6.6.6.6",
    };
    const anon = await request(rs.url + "/", { headers });
    assert.deepEqual(anon.json, { user: null, visits: 1, status: "none" });
    const seen = (await request(rs.url + "/headers", { headers })).json;
    for (const name of ["x-session", "x_session", "x.session", "x_session_id", "x-session-id"]) {
      assert.equal(seen[name], undefined, `${name} reached the app`);
    }
    assert.equal(seen["x-session-status"], "none");
    // keycard's own values replace the client's.
    assert.equal(seen["x-forwarded-host"], new URL(rs.url).host);
    assert.equal(seen["x-real-ip"], "127.0.0.1");

    const c = new Client(rs.url);
    await login(c, "ann");
    const signedIn = await c.get("/headers", { headers: { ...headers, cookie: `${c.cookieHeader()}; other=1` } });
    const h = signedIn.json;
    assert.equal(h.cookie, "other=1", "the session cookie is removed, other cookies stay");
    assert.equal(h["x-session-status"], "valid");
    assert.deepEqual(decodeSession(h["x-session"]), { user: "ann" });
    assert.equal(h["x-session-id"], (await session(c)).handle);
    assert.equal(h["x_session"], undefined);
    assert.deepEqual((await c.get("/", { headers })).json, { user: "ann", visits: 1, status: "valid" });
  });

  test("a request.cf country that is not a string is left out of the device list, never a trap", async () => {
    // worker's own Cf::country panics on a value that is not a string.
    const c = new Client(rs.url);
    const cf = clientCf({ country: ["D", "E"] });
    const r = await c.send("/login?user=cf-junk", { method: "POST", headers: cf });
    assert.equal(r.status, 303, "signed in");
    const listed = await c.get("/.keycard/sessions", { headers: cf });
    assert.equal(listed.status, 200);
    assert.equal(listed.json.sessions.length, 1);
    assert.equal(listed.json.sessions[0].country ?? null, null, "no country rather than a made-up one");
  });

  test("sign out everywhere else: POST /logout-others ends the user's other sessions, not this one or another user's", async () => {
    const laptop = new Client(rs.url);
    const phone = new Client(rs.url);
    const bob = new Client(rs.url);
    for (const [c, user] of [[laptop, "eve"], [phone, "eve"], [bob, "bob"]]) assert.equal((await login(c, user)).status, 303);
    const [laptopId, phoneId] = [await handleOf(laptop), await handleOf(phone)];
    const laptopCookie = laptop.cookieHeader();

    // Both of eve's sessions are listed, the current one marked; not bob's.
    const listed = await phone.get("/.keycard/sessions");
    assert.equal(listed.status, 200);
    assert.equal(listed.headers["cache-control"], "no-store");
    assert.deepEqual(listed.json.sessions.map((s) => s.id).sort(), [laptopId, phoneId].sort());
    assert.deepEqual(listed.json.sessions.filter((s) => s.current).map((s) => s.id), [phoneId]);
    for (const s of listed.json.sessions) {
      assert.match(s.country ?? "", /^[A-Z]{2}$/, "the device's country, from request.cf");
    }

    const r = await phone.send("/logout-others", { method: "POST" });
    assert.equal(r.status, 303);
    assert.equal(r.headers.location, "/");
    noControlHeaders(r);

    // The laptop's next unsafe request (always checked) finds its session revoked: the
    // cookie is cleared, and it reads as signed out from then on.
    const next = await laptop.send("/", { method: "POST" });
    assert.equal(keycardCookie(next)?.attrs["max-age"], "0", "the revoked session's cookie is cleared");
    assert.equal(laptop.jar.has(NAME), false);
    const after = (await laptop.get("/")).json;
    assert.notEqual(after.status, "valid");
    assert.equal(after.user, null);
    // A copy of its old cookie is refused too (the inspector checks it).
    const replay = (await request(rs.url + "/.keycard/session", { headers: { cookie: laptopCookie } })).json;
    assert.equal(replay.status, "invalid");
    assert.equal(replay.data, null);

    // The phone and bob are still signed in; the list now holds the phone alone.
    assert.deepEqual((await phone.get("/")).json, { user: "eve", visits: 1, status: "valid" });
    assert.deepEqual((await bob.get("/")).json, { user: "bob", visits: 1, status: "valid" });
    assert.deepEqual((await phone.get("/.keycard/sessions")).json.sessions.map((s) => s.id), [phoneId]);
  });

  test("a session past 4 KB spills to KV, and comes back from it", async () => {
    const c = new Client(rs.url);
    const user = "u".repeat(5000);
    const r = await login(c, user);
    assert.equal(r.status, 303);
    const sc = keycardCookie(r);
    assert.ok(sc.raw.length < 4096, `Set-Cookie is ${sc.raw.length} bytes`);
    assert.ok(!sc.value.includes(Buffer.from("uuuuuuuuu").toString("base64url")), "the data is not in the cookie");
    const s = await session(c);
    assert.equal(s.location, "kv");
    assert.equal(s.data.user.length, 5000);
    assert.deepEqual((await c.get("/")).json, { user, visits: 1, status: "valid" });
    await logout(c);
    assert.equal((await session(c)).status, "none");
  });
});

describe("the workers-rs example with SESSION_STORE=kv", () => {
  let rs;
  before(async () => {
    rs = await startKeycard({ SESSION_COOKIE_NAME: NAME, SESSION_STORE: "kv" }, { entry: EXAMPLE });
  });
  after(async () => {
    await rs?.close();
  });

  test("login deletes the old session's record, and logout the new one's", async () => {
    const c = new Client(rs.url);
    await c.get("/");
    const old = c.cookieHeader();
    await login(c, "ann");
    const replayOld = await request(rs.url + "/", { headers: { cookie: old } });
    assert.equal(replayOld.json.status, "invalid", "the pre-login session is gone (fixation)");
    const current = c.cookieHeader();
    assert.deepEqual((await c.get("/")).json, { user: "ann", visits: 2, status: "valid" });
    await logout(c);
    const replay = await request(rs.url + "/", { headers: { cookie: current } });
    assert.equal(replay.json.status, "invalid", "a logged-out session cannot be replayed");
  });
});

// Device-bound sessions (docs/device-bound.md) inside a Rust Worker: the same endpoints
// as in device-bound.test.mjs, carried out by the Rust driver's own KV and WebCrypto
// steps (src/driver/worker.rs), with the DBSC client of lib/dbsc-client.mjs as the device.
describe("the workers-rs example with device-bound sessions", () => {
  let rs, base;
  before(async () => {
    // The default session cookie, keycard, whose short-lived cookie is BOUND_COOKIE.
    rs = await startKeycard({ SESSION_STORE: "kv", KEYCARD_DEVICE_BOUND: "on" }, { entry: EXAMPLE });
    // DBSC is for secure contexts: the client, like Chromium, talks to localhost.
    base = rs.url.replace("127.0.0.1", "localhost");
  });
  after(async () => {
    await rs?.close();
  });

  /** Signs `user` in through the example's POST /login and binds the session with `alg`. */
  const bound = (user, alg = "ES256", misbehave) =>
    signInBound(`${base}/login?user=${encodeURIComponent(user)}`, { method: "POST", status: 303, algs: [alg], misbehave });
  /** The headers the handler received (the example's GET /headers echoes them). */
  const seen = async (res) => {
    assert.equal(res.status, 200);
    return res.json();
  };
  const refusals = () => rs.events().filter((e) => e.keycard === "device_refused");
  /** Waits for wrangler to pass on the Worker's log lines, until there are `n` refusals. */
  const refused = async (n) => {
    for (let i = 0; i < 50 && refusals().length < n; i++) await new Promise((r) => setTimeout(r, 100));
    return refusals();
  };

  for (const alg of ["ES256", "RS256"]) {
    test(`${alg}: the device binds its session as it signs in, and only the device is signed in`, async () => {
      const { client, session, before } = await bound(`ada-${alg}`, alg);
      assert.equal(session.key.alg, alg);
      assert.equal(session.registration.status, 200, "the proof's signature verifies");
      assert.equal(session.config.continue, true);
      assert.equal(session.config.refresh_url, "/.keycard/dbsc/refresh");
      assert.equal(session.config.scope.origin, base);
      assert.deepEqual(session.config.credentials.map((c) => c.name), [BOUND_COOKIE]);
      const short = (await client.jar.getCookies(base)).find((c) => c.key === BOUND_COOKIE);
      assert.ok(short, "the registration's answer sets the short-lived cookie");
      assert.equal(short.secure, true);
      assert.equal(short.httpOnly, true);

      const mine = await seen(await client.fetch(`${base}/headers`));
      assert.equal(mine["x-session-status"], "valid");
      assert.deepEqual(decodeSession(mine["x-session"]), { user: `ada-${alg}` });
      assert.equal(mine["x-session-id"], session.id, "the configuration names the session by its handle");
      assert.ok(!(mine.cookie ?? "").includes("keycard"), `keycard's cookies reach no handler: ${mine.cookie}`);
      const home = await client.fetch(`${base}/`);
      assert.deepEqual(await home.json(), { user: `ada-${alg}`, visits: 1, status: "valid" });

      // A thief with the session cookie alone: no session, and nothing issued to it.
      const sessionOnly = await onlyCookie(client, base, "keycard");
      const thief = await seen(await fetch(`${base}/headers`, { headers: { cookie: sessionOnly } }));
      assert.equal(thief["x-session-status"], "none");
      assert.equal(thief["x-session"], undefined);
      assert.equal(thief["x-session-id"], undefined);
      const thiefHome = await fetch(`${base}/`, { headers: { cookie: sessionOnly } });
      assert.deepEqual(await thiefHome.json(), { user: null, visits: 1, status: "none" });
      assert.deepEqual(thiefHome.headers.getSetCookie(), [], "the handler's session change is not applied");

      // Binding gave the session a new id: a copy of the session cookie taken before
      // binding names the old one, which is no session any more.
      assert.match(before, /^keycard=/);
      assert.notEqual(sessionOnly, before.split("; ").find((c) => c.startsWith("keycard=")), "a new cookie");
      const old = await seen(await fetch(`${base}/headers`, { headers: { cookie: before } }));
      assert.equal(old["x-session-status"], "invalid");
      assert.equal(old["x-session"], undefined);

      // The device is still signed in, its visit counted once.
      const again = await client.fetch(`${base}/`);
      assert.deepEqual(await again.json(), { user: `ada-${alg}`, visits: 2, status: "valid" });
    });
  }

  test("a refresh asks for a proof, then sets a new short-lived cookie", async () => {
    const { client, session } = await bound("grace");
    // The short-lived cookie gone, as when it expires: the device is signed out until
    // it refreshes.
    await client.jar.store.removeCookie("localhost", "/", BOUND_COOKIE);
    assert.ok(!(await client.jar.getCookieString(base)).includes(BOUND_COOKIE));
    assert.equal((await seen(await client.fetch(`${base}/headers`)))["x-session-status"], "none");

    const r = await client.refresh(session);
    assert.deepEqual(r.steps.map((s) => s.status), [403, 200]);
    assert.ok(r.steps[0].challenge, "the 403 carries a challenge");
    assert.equal(session.config.continue, true);
    assert.ok((await client.jar.getCookieString(base)).includes(`${BOUND_COOKIE}=`), "the 200 sets the short-lived cookie");
    const after = await seen(await client.fetch(`${base}/headers`));
    assert.equal(after["x-session-status"], "valid");
    assert.deepEqual(decodeSession(after["x-session"]), { user: "grace" });
  });

  test("a proof signed by another key is refused, at registration and at refresh", async () => {
    const from = refusals().length;
    const forged = await bound("mallory", "ES256", { otherKey: true });
    assert.equal(forged.session.registration.status, 400, "a registration signed by a key other than its jwk's");
    assert.equal(forged.session.config, undefined);

    const { client, session } = await bound("ada");
    const r = await client.refresh(session, { misbehave: { otherKey: true } });
    assert.deepEqual(r.steps.map((s) => s.status), [403, 400], JSON.stringify(r.steps));
    const reasons = (await refused(from + 2)).slice(from).map((e) => e.detail?.reason);
    assert.deepEqual(reasons, ["the proof's signature does not verify", "the proof's signature does not verify"], "WebCrypto checked each proof and said no");

    // The device keeps its session, and its next honest refresh works.
    assert.equal((await seen(await client.fetch(`${base}/headers`)))["x-session-status"], "valid");
    assert.equal((await client.refresh(session)).status, 200);
  });
});

describe("a misconfigured workers-rs example", () => {
  let rs;
  before(async () => {
    rs = await startKeycard({ SESSION_SECRET: "short" }, { entry: EXAMPLE });
  });
  after(async () => {
    await rs?.close();
  });

  test("answers 500 keycard: misconfigured and logs the variable, never the app", async () => {
    const r = await request(rs.url + "/");
    assert.equal(r.status, 500);
    assert.equal(r.text, "keycard: misconfigured");
    const ev = await rs.waitForEvent("misconfigured");
    assert.equal(ev?.detail?.var, "SESSION_SECRET");
    assert.ok(!rs.logs.join("\n").includes("short"), "the secret is not logged");
  });
});

describe("cookies pass between the example and the standalone Worker", () => {
  let origin, rs, js;
  before(async () => {
    origin = await startOrigin();
    const vars = { SESSION_COOKIE_NAME: NAME };
    rs = await startKeycard(vars, { entry: EXAMPLE });
    js = await startKeycard({ ...vars, ORIGIN_URL: origin.url });
  });
  after(async () => {
    await rs?.close();
    await js?.close();
    await origin?.close();
  });

  test("a cookie the example issued is a valid session for the standalone Worker", async () => {
    const c = new Client(rs.url);
    await login(c, "ann");
    await c.get("/");
    const r = await request(js.url + "/page", { headers: { cookie: c.cookieHeader() } });
    assert.equal(r.status, 200);
    assert.equal(r.json.headers["x-session-status"], "valid");
    assert.deepEqual(decodeSession(r.json.headers["x-session"]), { user: "ann", visits: 1 });
  });

  test("a cookie the standalone Worker issued is a valid session for the example", async () => {
    const c = new Client(js.url);
    await c.get(`/a?set=${q({ user: "bob", visits: 41 })}`);
    assert.ok(c.jar.has(NAME));
    const r = await request(rs.url + "/", { headers: { cookie: c.cookieHeader() } });
    assert.deepEqual(r.json, { user: "bob", visits: 42, status: "valid" });
    const back = await request(js.url + "/b", { headers: { cookie: r.headers["set-cookie"].find((s) => s.startsWith(NAME)).split(";")[0] } });
    assert.deepEqual(decodeSession(back.json.headers["x-session"]), { user: "bob", visits: 42 }, "and the example's update reads back");
  });
});

// Issue 25: signing in with a provider inside a Rust Worker, with the driver's own fetch
// and WebCrypto steps (src/driver/worker/provider.rs), against a real oidc-provider.
describe("the workers-rs example signs users in with a provider", () => {
  test("a sign-in with oidc-provider makes a session the handler reads", async () => {
    const { startProvider } = await import("./lib/provider.mjs");
    const { loginAtProvider } = await import("./lib/browserless.mjs");
    const { freePort } = await import("./lib/harness.mjs");
    const { CookieJar } = await import("tough-cookie");
    const opPort = await freePort();
    const rs = await startKeycard(
      {
        SESSION_COOKIE_NAME: NAME,
        KEYCARD_INSPECT: "true",
        KEYCARD_OIDC_ISSUER: `http://127.0.0.1:${opPort}`,
        KEYCARD_OIDC_CLIENT_ID: "rs",
        KEYCARD_OIDC_CLIENT_SECRET: "rs-secret",
      },
      { entry: EXAMPLE, users: true },
    );
    const op = await startProvider({
      port: opPort,
      alg: "ES256",
      clients: [{ client_id: "rs", client_secret: "rs-secret", redirect_uris: [`${rs.url}/.keycard/callback`] }],
      accounts: { ada: { email: "ada@corp.example", email_verified: true, name: "Ada" } },
    });
    try {
      const c = new Client(rs.url);
      const start = await c.get("/.keycard/login?next=%2F");
      assert.equal(start.status, 303);
      const back = new URL(await loginAtProvider(start.headers.location, "ada", new CookieJar()));
      const done = await c.get(back.pathname + back.search);
      assert.equal(done.status, 303, done.text);
      assert.equal(done.headers.location, "/");
      const home = await c.get("/");
      assert.equal(home.json.user, "ada@corp.example");
      assert.equal((await session(c)).data.idp, op.issuer);
    } finally {
      await Promise.all([rs.close(), op.close()]);
    }
  });
});

// The Rust driver reads a provider's answer with a cap, as it streams in (the attack
// review: an answer with no Content-Length was read whole).
describe("the workers-rs example and a provider that answers too much", () => {
  test("a 32 MB chunked token answer is a 503, not a session", async () => {
    const { startRogueProvider } = await import("./lib/rogue-provider.mjs");
    const rogue = await startRogueProvider({ clients: [{ client_id: "rs", client_secret: "rs-secret" }] });
    const rs = await startKeycard(
      { SESSION_COOKIE_NAME: NAME, KEYCARD_OIDC_ISSUER: rogue.issuer, KEYCARD_OIDC_CLIENT_ID: "rs", KEYCARD_OIDC_CLIENT_SECRET: "rs-secret" },
      { entry: EXAMPLE },
    );
    try {
      for (const [mode, status] of [["huge", 503], ["good", 303]]) {
        rogue.setMode(mode);
        const c = new Client(rs.url);
        const start = await c.get("/.keycard/login?next=%2F");
        const to = await fetch(start.headers.location, { redirect: "manual" });
        const back = new URL(to.headers.get("location"));
        const done = await c.get(back.pathname + back.search);
        assert.equal(done.status, status, `${mode}: ${done.text.slice(0, 200)}`);
        assert.equal(Boolean(c.jar.get(NAME)), status === 303, mode);
        if (mode === "huge") {
          for (let i = 0; i < 50 && rogue.hugeSent === undefined; i++) await new Promise((r) => setTimeout(r, 20));
          assert.equal(rogue.hugeSent, false, "keycard stops reading past its cap");
        }
      }
    } finally {
      await Promise.all([rs.close(), rogue.close()]);
    }
  });
});
