// Issue 11: the findings of a review that tried keycard the way an attacker would, each
// proven against the real Worker in workerd in front of real origins (the PHP and Python
// examples of docs/origin.md among them). Every test here failed before its fix.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startOrigin, startKeycard, startExample, Client, request, decodeSession, q, SECRET } from "./lib/harness.mjs";
import { mint } from "./lib/mint.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const WRAP = path.join(ROOT, "tests/e2e/fixtures/kv-wrap.mjs");
const ROOT_SESSION = Buffer.from('{"user":"root"}').toString("base64url");
const now = () => Math.floor(Date.now() / 1000);

describe("reserved-header aliases", () => {
  const php = spawnSync("php", ["--version"]).status === 0;
  for (const stack of ["php", "python"]) {
    test(`${stack}: no alias of X-Session forges a session`, async () => {
      assert.ok(stack !== "php" || php, "php-cli must be installed (make test installs it)");
      const app = await startExample(stack, { ORIGIN_SECRET: "" });
      const kc = await startKeycard({ ORIGIN_URL: app.url });
      try {
        // The gateway reads each of these as HTTP_X_SESSION / HTTP_X_SESSION_STATUS.
        for (const headers of [
          { X_Session: ROOT_SESSION },
          { "X.Session": ROOT_SESSION },
          { X_Session: ROOT_SESSION, X_Session_Status: "valid" },
          { "x-session": ROOT_SESSION, X_Session: ROOT_SESSION, "X.Session": ROOT_SESSION },
        ]) {
          const r = await request(kc.url + "/", { headers });
          assert.equal(r.text.trim(), `user=anonymous stack=${stack}`, JSON.stringify(headers));
        }
        // A signed-in user cannot be turned into someone else either.
        const c = new Client(kc.url);
        await c.send("/login", { method: "POST", body: "name=ada", headers: { "content-type": "application/x-www-form-urlencoded" } });
        const r = await c.get("/", { headers: { X_Session: ROOT_SESSION } });
        assert.match(r.text, /^user=ada /);
      } finally {
        await kc.close();
        app.close();
      }
    });
  }

  test("forwarding headers are keycard's own, whatever their spelling", async () => {
    const origin = await startOrigin();
    const kc = await startKeycard({ ORIGIN_URL: origin.url });
    try {
      const r = await request(kc.url + "/fwd", {
        headers: {
          X_Forwarded_Host: "evil.example",
          "x-forwarded-host": "evil.example",
          "X.Forwarded.Proto": "gopher",
          "X-Forwarded-User": "root",
          X_Forwarded_User: "root",
          Forwarded: "for=6.6.6.6;host=evil.example",
          "X-Real-IP": "6.6.6.6",
          X_Real_IP: "6.6.6.6",
          "X-Sessions": "not-reserved",
        },
      });
      assert.equal(r.status, 200);
      const raw = origin.last().rawHeaders;
      const names = raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
      for (const gone of ["x_forwarded_host", "x.forwarded.proto", "x-forwarded-user", "x_forwarded_user", "forwarded", "x_real_ip"]) {
        assert.ok(!names.includes(gone), `${gone} reached the origin: ${names}`);
      }
      const h = origin.last().headers;
      assert.equal(h["x-forwarded-host"], new URL(kc.url).host);
      assert.equal(h["x-forwarded-proto"], "http");
      assert.notEqual(h["x-real-ip"], "6.6.6.6");
      assert.equal(h["x-sessions"], "not-reserved", "only the reserved names go");
    } finally {
      await kc.close();
      await origin.close();
    }
  });

  test("the client never sees an alias of a control header, and aliases are never obeyed", async () => {
    const origin = await startOrigin((req, res) => {
      res.writeHead(200, [
        "content-type", "text/plain",
        "X_Session_Set", '{"user":"mallory"}',
        "X.Session.Action", "regenerate",
        "x-session-debug", "internal",
        "X-Sessions", "kept",
      ]);
      res.end("ok");
      return true;
    });
    const kc = await startKeycard({ ORIGIN_URL: origin.url });
    try {
      const r = await request(kc.url + "/");
      const names = r.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
      for (const gone of ["x_session_set", "x.session.action", "x-session-debug"]) assert.ok(!names.includes(gone), `${gone}: ${names}`);
      assert.equal(r.headers["x-sessions"], "kept");
      assert.equal(r.headers["set-cookie"], undefined, "an alias is not a control header");
    } finally {
      await kc.close();
      await origin.close();
    }
  });
});

/** Sends `lines` (the request head, CRLF-joined) over a raw socket; resolves to the
 * status line. For requests node's http client will not send (two Cookie lines). */
function rawRequest(url, lines) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const s = net.connect(Number(port), hostname, () => s.write(lines.join("\r\n") + "\r\n\r\n"));
    let data = "";
    s.on("data", (d) => {
      data += d;
      if (data.includes("\r\n\r\n")) {
        s.destroy();
        resolve(data.split("\r\n")[0]);
      }
    });
    s.on("error", reject);
    s.setTimeout(30000, () => s.destroy(new Error("no answer")));
  });
}

describe("the session cookie", () => {
  let origin, kc, c, good;
  before(async () => {
    origin = await startOrigin();
    kc = await startKeycard({ ORIGIN_URL: origin.url });
    c = new Client(kc.url);
    await c.get(`/login?set=${q({ user: "victim" })}`);
    good = c.jar.get("keycard");
  });
  after(async () => {
    await kc?.close();
    await origin?.close();
  });

  test("a look-alike name is never the session cookie, and reaches the origin untouched", async () => {
    // A sibling subdomain can set these; the cookie crate's parser trimmed the Unicode
    // space and read them as `keycard`. Browsers send cookie bytes as UTF-8, and workerd
    // reads header bytes as UTF-8, so that is how they travel here too.
    const attacker = mint({ secret: SECRET, iat: now(), data: { user: "attacker" } });
    const utf8 = (s) => Buffer.from(s, "utf8").toString("latin1");
    const fromWire = (s) => Buffer.from(s, "latin1").toString("utf8");
    for (const space of ["\u00a0", "\u3000", "\u2000", "\u0085", "\ufeff"]) {
      const lookalike = `${space}keycard=${attacker}`;
      const r = await request(kc.url + "/lookalike", { headers: { cookie: utf8(`${lookalike}; keycard=${good}`) } });
      assert.equal(r.status, 200);
      const h = origin.last().headers;
      assert.deepEqual(decodeSession(h["x-session"]), { user: "victim" }, JSON.stringify(space));
      assert.equal(fromWire(h.cookie), lookalike, "forwarded as it came");
      assert.equal(r.headers["set-cookie"], undefined);
    }
  });

  test("junk cookies of the session's name do not hide the real one or log it out", async () => {
    const junk = Array.from({ length: 6 }, (_, i) => `keycard=junk${i}`).join("; ");
    const r = await request(kc.url + "/junk", { headers: { cookie: `${junk}; keycard=${good}` } });
    assert.equal(origin.last().headers["x-session-status"], "valid");
    assert.equal(r.headers["set-cookie"], undefined, "no clearing cookie while one candidate is valid");
  });

  test("two Cookie lines never carry the session cookie to the origin", async () => {
    // The status: the session cookie's own piece is read up to the comma; one behind
    // another cookie's comma is not read at all (it could be anyone's).
    for (const [lines, status] of [
      [["a=1", `keycard=${good}`], "none"],
      [[`keycard=${good}`, "b=2"], "valid"],
      [[`a=1; keycard=${good}`, "b=2"], "valid"],
      [["b=2", `a=1; keycard=${good}`], "valid"],
    ]) {
      const statusLine = await rawRequest(kc.url, [
        "GET /two-lines HTTP/1.1",
        `Host: ${new URL(kc.url).host}`,
        ...lines.map((l) => `Cookie: ${l}`),
        "Connection: close",
      ]);
      assert.match(statusLine, /^HTTP\/1\.1 200/);
      const h = origin.last().headers;
      assert.ok(!(h.cookie ?? "").includes("keycard="), `forwarded: ${h.cookie}`);
      assert.ok(!(h.cookie ?? "").includes(good.slice(0, 20)), "not even its value");
      assert.equal(h["x-session-status"], status, JSON.stringify(lines));
    }
  });

  test("a Cookie header with non-ASCII bytes is forwarded as it came, and logged nowhere", async () => {
    // workerd logs a warning with the whole value when a header is set to non-ASCII
    // text: a header keycard does not need to change is never set again.
    const latin1 = "pref=caf\u00e9-\u00ff-marker";
    await request(kc.url + "/latin1", { headers: { cookie: latin1 } });
    assert.equal(origin.last().headers.cookie, latin1, "byte for byte");
    // When the session cookie must come out, the rest is set again (as UTF-8: workerd
    // reads header bytes as UTF-8); the session cookie is not in what is left.
    const utf8 = Buffer.from(`pref=caf\u00e9-utf8; keycard=${good}`).toString("latin1");
    await request(kc.url + "/utf8", { headers: { cookie: utf8 } });
    assert.equal(Buffer.from(origin.last().headers.cookie, "latin1").toString("utf8"), "pref=caf\u00e9-utf8");
    await new Promise((r) => setTimeout(r, 300));
    const logs = kc.logs.join("\n");
    assert.ok(!logs.includes("marker"), "the unchanged header was logged");
    assert.ok(!logs.includes(good.slice(-20)), "the session cookie was logged");
  });
});

describe("requests the origin must get right", () => {
  let origin, kc;
  before(async () => {
    origin = await startOrigin();
    kc = await startKeycard({ ORIGIN_URL: origin.url, ORIGIN_TIMEOUT: "1" });
  });
  after(async () => {
    await kc?.close();
    await origin?.close();
  });

  test("a GET or HEAD with a body is forwarded without it, never a 500", async () => {
    for (const method of ["GET", "HEAD"]) {
      const r = await request(kc.url + "/with-body", { method, headers: { "content-type": "text/plain", "content-length": "5" }, body: "hello" });
      assert.equal(r.status, 200, method);
      assert.equal(origin.last().method, method);
      assert.equal(origin.last().body, "");
    }
    const post = await request(kc.url + "/with-body", { method: "POST", headers: { "content-length": "5" }, body: "hello" });
    assert.equal(post.status, 200);
    assert.equal(origin.last().body, "hello", "other methods keep their body");
  });

  test("ORIGIN_TIMEOUT: an origin that never answers gets an opaque 504 and changes no session", async () => {
    const t0 = Date.now();
    const r = await request(kc.url + `/slow?delay=4000&set=${q({ user: "late" })}`);
    assert.equal(r.status, 504);
    assert.equal(r.text, "keycard: origin timeout");
    assert.equal(r.headers["set-cookie"], undefined);
    assert.ok(Date.now() - t0 < 3500, `answered after ${Date.now() - t0} ms`);
    assert.equal((await kc.waitForEvent("origin_timeout")).detail.after_ms, 1000);
  });

  test("a response that sets the session cookie is private; the origin's no-store stays", async () => {
    const c = new Client(kc.url);
    const hdr = (h) => `header=${encodeURIComponent(h)}`;
    const r = await c.get(`/cache?set=${q({ user: "ada" })}&${hdr("cache-control:public, max-age=600")}`);
    assert.ok(r.headers["set-cookie"]);
    assert.equal(r.headers["cache-control"], "private, max-age=600");
    const s = await c.get(`/cache?set=${q({ user: "bob" })}&${hdr("cache-control:no-store")}`);
    assert.equal(s.headers["cache-control"], "no-store");
    const plain = await c.get(`/cache?${hdr("cache-control:public, max-age=60")}`);
    assert.equal(plain.headers["cache-control"], "public, max-age=60", "nothing set, nothing changed");
  });

  test("control headers of a cached response are never applied", async () => {
    const c = new Client(kc.url);
    for (const h of ["age:120", "cf-cache-status:HIT"]) {
      const r = await c.get(`/cached?set=${q({ user: "someone-else" })}&header=${encodeURIComponent(h)}`);
      assert.equal(r.headers["set-cookie"], undefined, h);
      assert.equal(r.headers["x-session-set"], undefined);
    }
    assert.ok(await kc.waitForEvent("control_ignored"));
  });
});

describe("logout", () => {
  let origin, kc;
  before(async () => {
    origin = await startOrigin();
    kc = await startKeycard({ ORIGIN_URL: origin.url });
  });
  after(async () => {
    await kc?.close();
    await origin?.close();
  });

  test("only same-origin or a typed URL may sign a user out", async () => {
    const own = new URL(kc.url).origin;
    for (const [headers, want] of [
      [{ "sec-fetch-site": "cross-site" }, 403],
      [{ "sec-fetch-site": "same-site" }, 403],
      [{ origin: "https://evil.example" }, 403],
      [{ origin: "null" }, 403],
      [{ "sec-fetch-site": "same-origin" }, 204],
      [{ "sec-fetch-site": "none" }, 204],
      [{ origin: own }, 204],
      [{}, 204],
    ]) {
      const c = new Client(kc.url);
      await c.get(`/login?set=${q({ user: "ada" })}`);
      const r = await c.send("/.keycard/logout", { method: "POST", headers });
      assert.equal(r.status, want, JSON.stringify(headers));
      assert.equal(c.jar.has("keycard"), want === 403, "signed out only when allowed");
    }
  });

  test("next= goes out percent-encoded, exactly as decoded", async () => {
    const r = await request(kc.url + "/.keycard/logout?next=%2Fcaf%C3%A9%3Fq%3Da%2Bb", { method: "POST" });
    assert.equal(r.status, 303);
    assert.equal(r.headers.location, "/caf%C3%A9?q=a%2Bb");
  });
});

describe("revocation in KV", () => {
  let origin, kc;
  const kvState = async () => (await request(kc.url + "/__test/kv")).json;
  const failKv = (ops) => request(kc.url + `/__test/kv?fail=${ops}`, { method: "POST" });
  before(async () => {
    origin = await startOrigin();
    kc = await startKeycard({ ORIGIN_URL: origin.url, SESSION_STORE: "kv", SESSION_KV_FAILURE: "open", SESSION_REFRESH_AFTER: "1" }, { entry: WRAP });
  });
  after(async () => {
    await kc?.close();
    await origin?.close();
  });

  test("a revoked session is never written again, even where KV still serves its record", async () => {
    const c = new Client(kc.url);
    await c.get(`/login?set=${q({ user: "ada", visits: 1 })}`);
    const stolen = c.cookieHeader();
    const [record] = (await kvState()).keys.map((k) => k.name);
    const value = await (await fetch(kc.url + `/__test/kv?key=${encodeURIComponent(record)}`)).text();
    const out = await c.get("/logout?action=destroy");
    assert.ok(out.cookies.some((sc) => sc.attrs["max-age"] === "0"));
    const keys = (await kvState()).keys.map((k) => k.name);
    const tombstone = keys.find((k) => k.includes("revoked."));
    assert.ok(tombstone && !keys.includes(record), `keys after logout: ${keys}`);

    // A location that has not seen the deletion yet still serves the record: put it
    // back, as such a location would, then replay the stolen cookie with a change and
    // a refresh due.
    await fetch(kc.url + `/__test/kv?key=${encodeURIComponent(record)}`, { method: "PUT", body: value });
    await new Promise((r) => setTimeout(r, 1100));
    const putsBefore = (await kvState()).counts.put;
    const replay = await request(kc.url + `/replay?set=${q({ visits: 2 })}`, { headers: { cookie: stolen } });
    assert.equal(replay.status, 200);
    assert.ok(replay.headers["set-cookie"][0].includes("Max-Age=0"), "the thief's cookie is cleared");
    const st = await kvState();
    assert.equal(st.counts.put, putsBefore, "nothing was written");
    assert.ok(!st.keys.some((k) => k.name === record), "and the stale record is deleted here too");
    assert.ok(await kc.waitForEvent("session_revoked"));
    const again = await request(kc.url + "/again", { headers: { cookie: stolen } });
    assert.equal(origin.last().headers["x-session-status"], "invalid");
    assert.ok(again.headers["set-cookie"][0].includes("Max-Age=0"));
  });

  test("a destroy whose delete fails is a 503, even under SESSION_KV_FAILURE=open", async () => {
    const c = new Client(kc.url);
    await c.get(`/login?set=${q({ user: "ada" })}`);
    await failKv("delete");
    try {
      const r = await c.get("/logout?action=destroy");
      assert.equal(r.status, 503);
      assert.equal(r.headers["set-cookie"], undefined, "the browser keeps its cookie: the session is not gone");
    } finally {
      await failKv("0");
    }
    assert.equal((await c.get("/still")).json.headers["x-session-status"], "valid");
  });
});

describe("auto mode with KV unreadable under the open policy", () => {
  test("nothing is created or issued: the user's KV-backed cookie survives", async () => {
    const origin = await startOrigin();
    const kc = await startKeycard({ ORIGIN_URL: origin.url, SESSION_KV_FAILURE: "open" }, { entry: WRAP });
    try {
      const c = new Client(kc.url);
      await c.get(`/login?set=${q({ user: "ada", blob: "x".repeat(6000) })}`);
      const cookie = c.jar.get("keycard");
      assert.ok(cookie.includes(".-."), "the data lives in KV");
      await request(kc.url + "/__test/kv?fail=get", { method: "POST" });
      const r = await c.get(`/theme?set=${q({ theme: "dark" })}`);
      assert.equal(r.status, 200);
      assert.equal(r.headers["set-cookie"], undefined);
      await request(kc.url + "/__test/kv?fail=0", { method: "POST" });
      assert.equal(c.jar.get("keycard"), cookie);
      const back = await c.get("/back");
      assert.equal(decodeSession(back.json.headers["x-session"]).user, "ada");
    } finally {
      await kc.close();
      await origin.close();
    }
  });
});
