// Issue 3: server-side sessions in Workers KV (`kv` and `auto`), end to end in workerd
// with local KV, in front of a real origin.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startOrigin, startKeycard, Client, request, decodeSession, q } from "./lib/harness.mjs";
import { withBrowser } from "./lib/chromium.mjs";

const WRAP = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures/kv-wrap.mjs");
const kvState = async (kc) => (await request(kc.url + "/__test/kv")).json;
const bigValue = (n) => "x".repeat(n);
/** Waits until `origin` has received a request for `path`: keycard has read its session. */
async function reachedOrigin(origin, path) {
  for (let i = 0; i < 250 && !origin.requests.some((r) => r.url.startsWith(path)); i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(origin.requests.some((r) => r.url.startsWith(path)), `${path} never reached the origin`);
}

describe("auto mode (the default)", () => {
  let origin, kc;
  before(async () => {
    origin = await startOrigin();
    kc = await startKeycard({ ORIGIN_URL: origin.url }, { entry: WRAP });
  });
  after(async () => {
    await kc?.close();
    await origin?.close();
  });

  test("small data stays in the cookie and touches no KV", async () => {
    const c = new Client(kc.url);
    const before = await kvState(kc);
    await c.get(`/a?set=${q({ user: "ada" })}`);
    for (let i = 0; i < 5; i++) await c.get("/b");
    const afterState = await kvState(kc);
    assert.equal(afterState.counts.put, before.counts.put);
    assert.equal(afterState.counts.get, before.counts.get);
  });

  test("more than 6 KB survives many requests, the cookie stays small, and shrinks back", async () => {
    const c = new Client(kc.url);
    const blob = bigValue(6500);
    const r = await c.get(`/big?set=${q({ user: "ada", blob })}`);
    const sc = r.headers["set-cookie"].find((s) => s.startsWith("keycard="));
    assert.ok(sc.length < 4096, `Set-Cookie is ${sc.length} bytes`);
    assert.ok(!c.jar.get("keycard").includes(Buffer.from("xxxxxxxxx").toString("base64url")), "the data is not in the cookie");
    let st = await kvState(kc);
    const putsAfterSpill = st.counts.put;
    assert.equal(st.keys.length, 1);
    const key = st.keys[0];
    assert.match(key.name, /^keycard:[A-Za-z0-9_-]{43}$/);
    const now = Date.now() / 1000;
    assert.ok(key.expiration > now + 86000 && key.expiration <= now + 86401 + 5, `expiration ${key.expiration}`);
    for (let i = 0; i < 25; i++) {
      const rr = await c.get(`/page/${i}`);
      assert.equal(rr.json.headers["x-session-status"], "valid");
      assert.equal(decodeSession(rr.json.headers["x-session"]).blob.length, 6500);
      assert.equal(rr.headers["set-cookie"], undefined);
    }
    st = await kvState(kc);
    assert.equal(st.counts.put, putsAfterSpill, "25 requests that change nothing write nothing");
    // Shrink: the data moves back to the cookie and the record is deleted.
    const small = await c.get(`/shrink?set=${q({ blob: null })}`);
    assert.ok(small.cookies.length === 1);
    st = await kvState(kc);
    assert.equal(st.keys.length, 0, "record deleted once the data fits again");
    assert.ok(c.jar.get("keycard").includes(Buffer.from(JSON.stringify({ user: "ada" })).toString("base64url")));
    const back = await c.get("/after");
    assert.deepEqual(decodeSession(back.json.headers["x-session"]), { user: "ada" });
  });
});

describe("auto mode, a session past 4 KB signed out while another tab's request is at the origin", () => {
  let origin, kc;
  before(async () => {
    origin = await startOrigin();
    kc = await startKeycard({ ORIGIN_URL: origin.url }, { entry: WRAP });
  });
  after(async () => {
    await kc?.close();
    await origin?.close();
  });

  test("the other tab's answer, which shrinks it into the cookie, does not sign it back in", async () => {
    const tab1 = new Client(kc.url);
    await tab1.get(`/a?set=${q({ user: "ada", blob: bigValue(6500) })}`);
    assert.equal((await kvState(kc)).keys.length, 1, "in KV");
    const tab2 = new Client(kc.url);
    tab2.jar = new Map(tab1.jar);
    const shrinking = tab2.get(`/slow?delay=1500&set=${q({ blob: null })}`);
    await reachedOrigin(origin, "/slow");
    const out = await tab1.get("/bye?action=destroy");
    assert.ok(out.headers["set-cookie"][0].includes("Max-Age=0"), "signed out");
    await shrinking;
    const r = await tab2.get("/after");
    assert.notEqual(r.json.headers["x-session-status"], "valid", "signed back in by a request in flight");
    assert.equal(r.json.headers["x-session"], undefined);
  });
});

describe("kv mode", () => {
  let origin, kc;
  before(async () => {
    origin = await startOrigin();
    kc = await startKeycard({ ORIGIN_URL: origin.url, SESSION_STORE: "kv", SESSION_IDLE_TIMEOUT: "2h" }, { entry: WRAP });
  });
  after(async () => {
    await kc?.close();
    await origin?.close();
  });

  test("the cookie holds only a signed id; the record has an expiration", async () => {
    const c = new Client(kc.url);
    await c.get(`/a?set=${q({ user: "grace" })}`);
    const v = c.jar.get("keycard");
    assert.match(v, /^v1\.[^.]{8}\.\d+\.\d+\.\d+\.[A-Za-z0-9_-]{43}\.-\.[A-Za-z0-9_-]{43}$/);
    const st = await kvState(kc);
    const sid = v.split(".")[5];
    assert.ok(!st.keys.some((k) => k.name.includes(sid)), "KV keys hold no usable id");
    const now = Date.now() / 1000;
    assert.ok(st.keys.every((k) => k.expiration > now + 7000 && k.expiration <= now + 7201 + 5));
    const r = await c.get("/b");
    assert.deepEqual(decodeSession(r.json.headers["x-session"]), { user: "grace" });
  });

  test("requests that change nothing cause no KV write", async () => {
    const c = new Client(kc.url);
    await c.get(`/a?set=${q({ n: 1 })}`);
    const before = await kvState(kc);
    for (let i = 0; i < 20; i++) await c.get("/read");
    const afterState = await kvState(kc);
    assert.equal(afterState.counts.put, before.counts.put);
    assert.equal(afterState.counts.get, before.counts.get + 20, "each request reads its record");
    await c.get(`/w?set=${q({ n: 2 })}`);
    assert.equal((await kvState(kc)).counts.put, before.counts.put + 1, "a change writes once");
  });

  test("logout, then a replay of the saved cookie, gives invalid", async () => {
    const c = new Client(kc.url);
    await c.get(`/a?set=${q({ user: "ada" })}`);
    const saved = c.cookieHeader();
    const out = await c.send("/.keycard/logout", { method: "POST" });
    assert.equal(out.status, 204);
    const replay = await request(kc.url + "/replay", { headers: { cookie: saved } });
    assert.equal(replay.json.headers["x-session-status"], "invalid");
    assert.equal(replay.json.headers["x-session"], undefined);
    assert.ok(replay.headers["set-cookie"][0].includes("Max-Age=0"), "and it is cleared");
  });

  test("destroy from the origin revokes too", async () => {
    const c = new Client(kc.url);
    await c.get(`/a?set=${q({ user: "ada" })}`);
    const saved = c.cookieHeader();
    await c.get("/bye?action=destroy");
    const replay = await request(kc.url + "/replay", { headers: { cookie: saved } });
    assert.equal(replay.json.headers["x-session-status"], "invalid");
  });

  test("after regenerate the old cookie is invalid and the new one valid", async () => {
    const c = new Client(kc.url);
    await c.get(`/a?set=${q({ cart: [1, 2] })}`);
    const old = c.cookieHeader();
    const r = await c.get(`/login?set=${q({ user: "ada" })}&action=regenerate`);
    assert.equal(r.cookies.length, 1);
    assert.notEqual(c.cookieHeader(), old);
    const oldR = await request(kc.url + "/x", { headers: { cookie: old } });
    assert.equal(oldR.json.headers["x-session-status"], "invalid");
    const newR = await c.get("/y");
    assert.equal(newR.json.headers["x-session-status"], "valid");
    assert.deepEqual(decodeSession(newR.json.headers["x-session"]), { cart: [1, 2], user: "ada" });
  });

  test("the page's requests in flight while it signs in leave the new cookie alone", async () => {
    // Their answers arrive after the sign-in's, and a browser applies each Set-Cookie
    // as it arrives: a clearing one from either would sign the user out at once.
    const c = new Client(kc.url);
    await c.get(`/a?set=${q({ cart: [1] })}`);
    const guest = c.cookieHeader();
    // Read before the sign-in, and answered after it with a change to write.
    const early = c.get(`/poll-http?delay=1500&set=${q({ seen: 1 })}`);
    await reachedOrigin(origin, "/poll-http");
    const login = await c.get(`/login?set=${q({ user: "ada" })}&action=regenerate`);
    assert.equal(login.cookies.length, 1);
    // Sent before the sign-in's answer arrived, so with the old cookie, and read after.
    const late = await c.get(`/cart?set=${q({ cart: [1, 2] })}`, { headers: { cookie: guest } });
    assert.equal(late.json.headers["x-session-status"], "invalid", "the old id is no session");
    assert.equal(late.headers["set-cookie"], undefined, "nothing cleared or issued");
    const polled = await early;
    assert.equal(polled.json.headers["x-session-status"], "valid", "read before the sign-in");
    assert.equal(polled.headers["set-cookie"], undefined, "nothing cleared or issued");
    const now = await c.get("/after");
    assert.equal(now.json.headers["x-session-status"], "valid", "still signed in");
    assert.deepEqual(decodeSession(now.json.headers["x-session"]), { cart: [1], user: "ada" });
    // wrangler passes the Worker's log lines on a moment later.
    const logged = async (event, reason) => {
      for (let i = 0; i < 60 && !kc.events().some((e) => e.keycard === event && e.detail?.reason === reason); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      return kc.events().some((e) => e.keycard === event && e.detail?.reason === reason);
    };
    assert.ok(await logged("control_ignored", "the session was regenerated moments ago"), kc.logs.join("\n"));
    assert.ok(await logged("session_revoked", "a new id replaced this session"), kc.logs.join("\n"));
  });

  test("in Chromium: a request of the page answered after its sign-in keeps it signed in", async () => {
    await withBrowser(async (context, page) => {
      const sessionCookie = async () => (await context.cookies()).find((c) => c.name.endsWith("keycard"));
      await page.goto(`${kc.url}/shop?set=${q({ cart: [1] })}`);
      const guest = await sessionCookie();
      assert.ok(guest, "a guest session");
      // A poll leaves with the guest cookie and is read at once; the app takes its
      // time and answers it with a change, after the sign-in below.
      await page.evaluate((path) => { window.poll = fetch(path).then((r) => r.status); },
        `/poll-chromium?delay=1500&set=${q({ seen: 1 })}`);
      await reachedOrigin(origin, "/poll-chromium");
      const signIn = `/login?set=${q({ user: "ada" })}&action=regenerate`;
      assert.equal(await page.evaluate((path) => fetch(path).then((r) => r.status), signIn), 200);
      const signedIn = await sessionCookie();
      assert.notEqual(signedIn.value, guest.value, "the sign-in's new cookie");
      assert.equal(await page.evaluate(() => window.poll), 200);
      const kept = await sessionCookie();
      assert.equal(kept?.value, signedIn.value, "the poll's answer left the new cookie alone");
      const seen = await page.evaluate(() => fetch("/whoami").then((r) => r.json()));
      assert.equal(seen.headers["x-session-status"], "valid");
      assert.deepEqual(decodeSession(seen.headers["x-session"]), { cart: [1], user: "ada" });
    });
  });

  test("KV failure with SESSION_KV_FAILURE=closed answers 503 with Retry-After", async () => {
    const c = new Client(kc.url);
    await c.get(`/a?set=${q({ user: "ada" })}`);
    await request(kc.url + "/__test/kv?fail=1", { method: "POST" });
    try {
      const before = origin.requests.length;
      const r = await c.get("/during-outage");
      assert.equal(r.status, 503);
      assert.ok(Number(r.headers["retry-after"]) > 0);
      assert.equal(r.text, "keycard: session store unavailable");
      assert.equal(origin.requests.length, before, "not forwarded");
      assert.ok(await kc.waitForEvent("kv_unavailable"));
    } finally {
      await request(kc.url + "/__test/kv?fail=0", { method: "POST" });
    }
    const ok = await c.get("/after-outage");
    assert.equal(ok.json.headers["x-session-status"], "valid", "the session survives the outage");
  });
});

describe("kv mode, SESSION_KV_FAILURE=open", () => {
  test("KV failure forwards with status invalid and keeps the cookie", async () => {
    const origin = await startOrigin();
    const kc = await startKeycard({ ORIGIN_URL: origin.url, SESSION_STORE: "kv", SESSION_KV_FAILURE: "open" }, { entry: WRAP });
    try {
      const c = new Client(kc.url);
      await c.get(`/a?set=${q({ user: "ada" })}`);
      const cookie = c.cookieHeader();
      await request(kc.url + "/__test/kv?fail=1", { method: "POST" });
      const r = await c.get("/during");
      assert.equal(r.status, 200);
      assert.equal(r.json.headers["x-session-status"], "invalid");
      assert.equal(r.json.headers["x-session"], undefined);
      assert.equal(r.headers["set-cookie"], undefined, "no clearing cookie for an outage");
      await request(kc.url + "/__test/kv?fail=0", { method: "POST" });
      const again = await request(kc.url + "/after", { headers: { cookie } });
      assert.equal(again.json.headers["x-session-status"], "valid");
    } finally {
      await kc.close();
      await origin.close();
    }
  });
});

describe("overflow and missing bindings", () => {
  test("cookie mode refuses overflow loudly: opaque 500 and a log line with the size", async () => {
    const origin = await startOrigin();
    const kc = await startKeycard({ ORIGIN_URL: origin.url, SESSION_STORE: "cookie" });
    try {
      const c = new Client(kc.url);
      const r = await c.get(`/big?set=${q({ blob: bigValue(6000) })}`);
      assert.equal(r.status, 500);
      assert.equal(r.text, "keycard: internal error");
      const ev = await kc.waitForEvent("session_too_large");
      assert.ok(ev.detail.cookie_bytes > 4096);
    } finally {
      await kc.close();
      await origin.close();
    }
  });

  test("auto without a KV binding behaves as cookie", async () => {
    const origin = await startOrigin();
    const kc = await startKeycard({ ORIGIN_URL: origin.url }, { kv: false });
    try {
      const h = await request(kc.url + "/.keycard/health");
      assert.equal(h.json.kv, false);
      const c = new Client(kc.url);
      await c.get(`/a?set=${q({ user: "ada" })}`);
      assert.deepEqual(decodeSession((await c.get("/b")).json.headers["x-session"]), { user: "ada" });
      const big = await c.get(`/big?set=${q({ blob: bigValue(6000) })}`);
      assert.equal(big.status, 500);
    } finally {
      await kc.close();
      await origin.close();
    }
  });

  test("a service binding named as the KV binding is a misconfiguration at the first request, in any store mode that uses KV", async () => {
    const origin = "export default { fetch: () => new Response('origin') };";
    const kc = await startKeycard({ ORIGIN_SERVICE: "ORIGIN", SESSION_KV_BINDING: "ORIGIN" }, { serviceOrigin: origin });
    try {
      const r = await request(kc.url + "/a");
      assert.equal(r.status, 500);
      assert.equal(r.text, "keycard: misconfigured");
      const ev = await kc.waitForEvent("misconfigured");
      assert.equal(ev.detail.var, "SESSION_KV_BINDING");
      assert.match(ev.detail.problem, /not a KV namespace/);
    } finally {
      await kc.close();
    }
  });

  test("kv mode without the binding is a misconfiguration naming SESSION_KV_BINDING", async () => {
    const origin = await startOrigin();
    const kc = await startKeycard({ ORIGIN_URL: origin.url, SESSION_STORE: "kv" }, { kv: false });
    try {
      const r = await request(kc.url + "/a");
      assert.equal(r.status, 500);
      assert.equal(r.text, "keycard: misconfigured");
      assert.equal((await kc.waitForEvent("misconfigured")).detail.var, "SESSION_KV_BINDING");
      assert.equal(origin.requests.length, 0);
    } finally {
      await kc.close();
      await origin.close();
    }
  });
});
