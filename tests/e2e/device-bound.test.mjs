// Issue 27: device-bound sessions (KEYCARD_DEVICE_BOUND=on) in workerd with local KV and
// Durable Objects, in front of a real origin, driven by the DBSC client of
// lib/dbsc-client.mjs (which dbsc-tools.test.mjs holds to Chromium 150's own behaviour)
// and by Chromium 150 itself. A binding is kept in the session's KV record
// (SESSION_STORE=kv), or in the user's Durable Object with the key's thumbprint in the
// session cookie (the default store, with the users binding).
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { startOrigin, startKeycard, decodeSession, q, SECRET } from "./lib/harness.mjs";
import { mintShortLived } from "./lib/mint.mjs";
import { DbscClient } from "./lib/dbsc-client.mjs";
import { signInBound, onlyCookie } from "./lib/device-bound.mjs";
import { withDbscBrowser } from "./lib/dbsc-chromium.mjs";

const DEMO = fs.readFileSync(path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../www/src/index.js"), "utf8");

/** The session id in a `keycard=…` cookie (docs/formats.md: v1.<kid>.<iat>.<ctime>.<aexp>.<sid>.…). */
const sidOf = (cookie) => cookie.split(";")[0].split("=")[1].split(".")[5];

/** What the origin saw of the last request (its echo of the request's headers). */
const seen = async (res) => (await res.json()).headers;

describe("a device-bound session", () => {
  let origin, kc, base;
  before(async () => {
    origin = await startOrigin();
    kc = await startKeycard({ ORIGIN_URL: origin.url, SESSION_STORE: "kv", KEYCARD_DEVICE_BOUND: "on", KEYCARD_INSPECT: "true" });
    // DBSC is for secure contexts: the client, like Chromium, talks to localhost.
    base = kc.url.replace("127.0.0.1", "localhost");
  });
  after(async () => {
    await kc?.close();
    await origin?.close();
  });

  /** A client signed in as `user` whose session is bound; also the session cookie it
   * held before binding. */
  const bound = (user, algs) => signInBound(`${base}/login?set=${q({ user })}`, { algs });

  for (const alg of ["ES256", "RS256"]) {
    test(`${alg}: a device binds its session, and only the device is signed in`, async () => {
      const { client, session, before } = await bound("ada", [alg]);
      assert.equal(session.registration.status, 200);
      assert.equal(session.config.continue, true);
      assert.equal(session.config.refresh_url, "/.keycard/dbsc/refresh");
      assert.deepEqual(session.config.credentials.map((c) => c.name), ["__Host-keycard-bound"]);
      assert.equal(session.config.scope.origin, base);

      const inspected = await (await client.fetch(`${base}/.keycard/session`)).json();
      assert.equal(inspected.bound_alg, alg, "the inspector shows the binding");
      const left = inspected.bound_expires - inspected.now;
      assert.ok(left > 590 && left <= 600, `and when the short-lived cookie runs out: ${left} s`);

      const mine = await seen(await client.fetch(`${base}/page`));
      assert.equal(mine["x-session-status"], "valid");
      assert.equal(decodeSession(mine["x-session"]).user, "ada");
      assert.equal(mine["x-session-id"], session.id, "the configuration names the session by its handle");
      assert.ok(!(mine.cookie ?? "").includes("keycard"), `keycard's cookies reach no origin: ${mine.cookie}`);

      // A thief with the session cookie alone.
      const sessionOnly = await onlyCookie(client, base, "keycard");
      const thief = await seen(await fetch(`${base}/page`, { headers: { cookie: sessionOnly } }));
      assert.equal(thief["x-session-status"], "none");
      assert.equal(thief["x-session"], undefined);

      // Binding gave the session a new id: a copy of the cookie taken before binding
      // names the old one, which is no session any more (its record is a replaced
      // session's marker for a minute, then gone), short-lived cookie or not.
      assert.ok(before.startsWith("keycard="));
      const now = await onlyCookie(client, base, "keycard");
      assert.notEqual(sidOf(now), sidOf(before), "a new id");
      const old = await seen(await fetch(`${base}/page`, { headers: { cookie: before } }));
      assert.equal(old["x-session-status"], "invalid");
      assert.equal(old["x-session"], undefined);
      const shortToo = `${before}; ${(await client.jar.getCookieString(base)).split("; ").find((c) => c.startsWith("__Host-keycard-bound="))}`;
      assert.equal((await seen(await fetch(`${base}/page`, { headers: { cookie: shortToo } })))["x-session-status"], "invalid");
    });
  }

  test("a refresh asks for a proof, then renews the short-lived cookie", async () => {
    const { client, session } = await bound("grace");
    const r = await client.refresh(session);
    assert.deepEqual(r.steps.map((s) => s.status), [403, 200]);
    assert.ok(r.steps[0].challenge, "the 403 carries a challenge");
    const again = await client.refresh(session);
    assert.deepEqual(again.steps.map((s) => s.status), [403, 200], "a second refresh at once works too");
    const after = await seen(await client.fetch(`${base}/page`));
    assert.equal(after["x-session-status"], "valid");
  });

  test("a refresh is refused for every proof the bound key did not make for a fresh challenge", async () => {
    const { client, session } = await bound("mallory-target");
    const other = await bound("someone-else");
    const ok = await client.refresh(session);
    assert.equal(ok.status, 200);
    const used = session.proofs.at(-1);
    const foreign = (await other.client.refresh(other.session)).steps[0].challenge;
    for (const [what, misbehave] of [
      ["a replayed proof", { replay: used }],
      ["alg none", { algNone: true }],
      ["another key", { otherKey: true }],
      ["a jwk swapped in", { swapJwk: true }],
      ["another session's challenge", { challenge: foreign }],
      ["no Sec-Secure-Session-Id", { omitSessionId: true }],
      ["another session's id", { sessionId: other.session.id }],
    ]) {
      const r = await client.refresh(session, { misbehave });
      assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.steps)}`);
    }
    // wrangler passes the Worker's log lines on a little after each answer.
    const refusals = () => kc.events().filter((e) => e.keycard === "device_refused");
    for (let i = 0; i < 50 && refusals().length < 7; i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(refusals().length >= 7, `each refusal is logged with its reason: ${JSON.stringify(refusals())}`);
    const still = await seen(await client.fetch(`${base}/page`));
    assert.equal(still["x-session-status"], "valid", "the device keeps its session");
  });

  test("signing out ends the bound session: its next refresh is told to stop", async () => {
    const { client, session } = await bound("ada");
    const out = await client.fetch(`${base}/.keycard/logout`, { method: "POST" });
    assert.equal(out.status, 204);
    const r = await client.refresh(session);
    assert.deepEqual(r.steps.map((s) => s.status), [200]);
    assert.equal(session.ended, true, "continue: false");
    const after = await seen(await client.fetch(`${base}/page`));
    assert.equal(after["x-session-status"], "none");
  });

  test("a registration is refused without a fresh challenge of its own session", async () => {
    const { client } = await bound("ada");
    const again = await client.register({ algs: ["ES256"], path: "/.keycard/dbsc/register", challenge: "1.AAAA.AAAA" }, `${base}/`);
    assert.equal(again.registration.status, 400, "already bound, and not a challenge keycard gave");
    const fresh = new DbscClient();
    await fresh.fetch(`${base}/login?set=${q({ user: "eve" })}`);
    const none = await fresh.register({ algs: ["ES256"], path: "/.keycard/dbsc/register", challenge: "1.AAAA.AAAA" }, `${base}/`);
    assert.equal(none.registration.status, 400);
    const anonymous = new DbscClient();
    const gone = await anonymous.register({ algs: ["ES256"], path: "/.keycard/dbsc/register", challenge: "x" }, `${base}/`);
    assert.equal(gone.registration.status, 200, "no session at all: the browser is told to stop");
    assert.equal(gone.config.continue, false);
  });
});

describe("a device-bound session kept in the users' objects", () => {
  let origin, kc, base;
  before(async () => {
    origin = await startOrigin();
    kc = await startKeycard({ ORIGIN_URL: origin.url, KEYCARD_DEVICE_BOUND: "on", KEYCARD_INSPECT: "true" }, { users: true });
    base = kc.url.replace("127.0.0.1", "localhost");
  });
  after(async () => {
    await kc?.close();
    await origin?.close();
  });

  const bound = (user) => signInBound(`${base}/login?set=${q({ user })}`);
  /** The session cookie's value in a `Cookie` header. */
  const sessionCookie = (header) => header.split("; ").find((c) => c.startsWith("keycard="));

  test("a signed-in session binds, its cookie names the key, and a copy from before binding is no session", async () => {
    const { client, session, before } = await bound("ada");
    assert.equal(session.registration.status, 200);
    assert.equal(session.config.continue, true);
    const now = await client.jar.getCookieString(base);
    const marked = sessionCookie(now);
    assert.notEqual(marked, sessionCookie(before), "the registration re-issued the session cookie");
    assert.equal(marked.split(".").length, sessionCookie(before).split(".").length + 1, "with the key's thumbprint in it");

    const mine = await seen(await client.fetch(`${base}/page`));
    assert.equal(mine["x-session-status"], "valid");
    assert.equal(decodeSession(mine["x-session"]).user, "ada");
    assert.equal(mine["x-session-id"], session.id);
    assert.ok(!(mine.cookie ?? "").includes("keycard"), `keycard's cookies reach no origin: ${mine.cookie}`);

    const thief = await seen(await fetch(`${base}/page`, { headers: { cookie: marked } }));
    assert.equal(thief["x-session-status"], "none", "the session cookie alone");
    assert.notEqual(sidOf(marked), sidOf(sessionCookie(before)), "binding gave the session a new id");
    const old = await seen(await fetch(`${base}/page`, { headers: { cookie: before } }));
    assert.equal(old["x-session-status"], "none", "the copy taken before binding: its object says a new id replaced it");
    assert.equal(old["x-session"], undefined);

    const inspected = await (await client.fetch(`${base}/.keycard/session`)).json();
    assert.equal(inspected.bound_alg, "ES256", "the inspector shows the binding the object keeps");
    const devices = await (await client.fetch(`${base}/.keycard/sessions`)).json();
    assert.deepEqual(devices.sessions.map((d) => d.device_bound), [true], "and so does the device list");
    assert.ok(inspected.bound_expires > Date.now() / 1000, JSON.stringify(inspected));
    assert.equal(devices.sessions[0].bound_expires, inspected.bound_expires, "with when the short-lived cookie expires, as the inspector reads it from the cookie");
  });

  test("the short-lived cookie is what docs/formats.md says, and an expired one signs nothing in", async () => {
    const { client } = await bound("ada");
    const marked = sessionCookie(await client.jar.getCookieString(base));
    // v1.<kid>.<iat>.<ctime>.<aexp>.<sid>.<body>.<bound>.<mac>
    const [, , , , , sid, , thumb] = marked.slice("keycard=".length).split(".");
    const now = Math.floor(Date.now() / 1000);
    const as = async (exp) => {
      const cookie = `${marked}; __Host-keycard-bound=${mintShortLived({ secret: SECRET, sid, thumb, exp })}`;
      return (await seen(await fetch(`${base}/page`, { headers: { cookie } })))["x-session-status"];
    };
    assert.equal(await as(now + 60), "valid", "one minted from the documented format is accepted");
    assert.equal(await as(now - 1), "none", "an expired one is not");
  });

  test("refreshes go through the user's object, once per challenge; signing out ends them", async () => {
    const { client, session } = await bound("grace");
    const r = await client.refresh(session);
    assert.deepEqual(r.steps.map((s) => s.status), [403, 200]);
    const used = session.proofs.at(-1);
    const replay = await client.refresh(session, { misbehave: { replay: used } });
    assert.equal(replay.status, 400, `a replayed proof: ${JSON.stringify(replay.steps)}`);
    const other = await client.refresh(session, { misbehave: { otherKey: true } });
    assert.equal(other.status, 400, "another key");
    const again = await client.refresh(session);
    assert.deepEqual(again.steps.map((s) => s.status), [403, 200]);
    assert.equal((await seen(await client.fetch(`${base}/page`)))["x-session-status"], "valid");

    assert.equal((await client.fetch(`${base}/.keycard/logout`, { method: "POST" })).status, 204);
    const ended = await client.refresh(session);
    assert.deepEqual(ended.steps.map((s) => s.status), [200]);
    assert.equal(session.ended, true, "continue: false");
  });

  test("an anonymous session is not offered binding", async () => {
    const client = new DbscClient();
    const res = await client.fetch(`${base}/login?set=${q({ cart: [1] })}`);
    assert.equal(res.status, 200);
    assert.match(await client.jar.getCookieString(base), /keycard=/, "it has a session");
    assert.equal(res.headers.get("secure-session-registration"), null);
  });
});

describe("Chromium 150 and keycard", () => {
  let origin, kc, base;
  before(async () => {
    origin = await startOrigin();
    kc = await startKeycard({ ORIGIN_URL: origin.url, SESSION_STORE: "kv", KEYCARD_DEVICE_BOUND: "on" });
    base = kc.url.replace("127.0.0.1", "localhost");
  });
  after(async () => {
    await kc?.close();
    await origin?.close();
  });

  test("a real browser binds its session as it signs in, and refreshes when its short-lived cookie is gone", async () => {
    await withDbscBrowser(async ({ context, page, events }) => {
      const login = await page.goto(`${base}/login?set=${q({ user: "ada" })}`);
      const signedIn = (await login.headersArray()).find((h) => h.name.toLowerCase() === "set-cookie" && h.value.startsWith("keycard="));
      assert.ok(signedIn, "the sign-in sets the session cookie");
      const created = await events.waitFor("creationEventDetails");
      assert.equal(created.creationEventDetails.fetchResult, "Success", JSON.stringify(created));
      const names = (await context.cookies(base)).map((c) => c.name).sort();
      assert.deepEqual(names, ["__Host-keycard-bound", "keycard"]);

      await page.goto(`${base}/page`);
      let saw = JSON.parse(await page.innerText("body")).headers;
      assert.equal(saw["x-session-status"], "valid");
      assert.equal(decodeSession(saw["x-session"]).user, "ada");
      // Binding gave the session a new id, which the browser's binding names.
      assert.equal(saw["x-session-id"], created.sessionId, JSON.stringify(created));
      const now = (await context.cookies(base)).find((c) => c.name === "keycard");
      assert.notEqual(sidOf(`keycard=${now.value}`), sidOf(signedIn.value), "a new id");

      // The short-lived cookie gone, as when it expires: the browser refreshes before
      // it sends the next request, and is still signed in.
      await context.clearCookies({ name: "__Host-keycard-bound" });
      await page.goto(`${base}/page2`);
      const refreshed = await events.waitFor("refreshEventDetails", (e) => e.refreshEventDetails.refreshResult === "Refreshed");
      assert.ok(refreshed);
      saw = JSON.parse(await page.innerText("body")).headers;
      assert.equal(saw["x-session-status"], "valid", "the request waited for the refresh");
    });
  });
});

describe("the demo in Chromium 150", () => {
  let kc, base;
  before(async () => {
    // The settings of `make dev` ([env.dev] in wrangler.toml), as browser.test.mjs runs them.
    kc = await startKeycard({ ORIGIN_SERVICE: "ORIGIN", KEYCARD_INSPECT: "true", SESSION_COOKIE_SECURE: "false",
      KEYCARD_REQUIRE: "/account/", KEYCARD_LOGIN_URL: "/login", SESSION_REVOCATION_CHECK: "always",
      KEYCARD_DEVICE_BOUND: "on" }, { assets: true, serviceOrigin: DEMO, users: true });
    base = kc.url.replace("127.0.0.1", "localhost");
  });
  after(async () => {
    await kc?.close();
  });

  test("signing in to the demo binds the session, and the inspector and the device list show it", async () => {
    await withDbscBrowser(async ({ page, events }) => {
      await page.goto(`${base}/`);
      await page.fill("#login input[name=name]", "Ada Lovelace");
      await Promise.all([page.waitForURL(/\?m=welcome/), page.click("#login button")]);
      const created = await events.waitFor("creationEventDetails");
      assert.equal(created.creationEventDetails.fetchResult, "Success", JSON.stringify(created));

      await page.goto(`${base}/.keycard/`);
      await page.waitForSelector("body:not([data-status=loading])");
      await page.waitForFunction(() => /^yes/.test(document.getElementById("bound")?.textContent ?? ""));
      assert.match(await page.locator("#bound").textContent(), /^yes \(ES256\); short-lived cookie renewed within/);

      const devices = await page.evaluate(async () => (await fetch("/.keycard/sessions")).json());
      assert.deepEqual(devices.sessions.map((d) => d.device_bound), [true]);
      assert.ok(devices.sessions[0].bound_expires > Date.now() / 1000, JSON.stringify(devices));
      await page.waitForSelector("#panel-sessions:not([hidden]) #sessions tr");
      assert.match(await page.locator("#sessions tr td:nth-child(5)").textContent(), /^yes; proved, short-lived cookie for \d/);
      await page.goto(`${base}/account/`);
      assert.equal(new URL(page.url()).pathname, "/account/", "a required page: signed in");
    });
  });
});
