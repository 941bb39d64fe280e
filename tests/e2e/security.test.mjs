// Issue 4: key rotation, encrypted cookies, the verifiable `jwt` origin header, and
// the origin examples of docs/origin.md running for real behind the Worker. The JWT is checked
// with three JWT libraries nobody here wrote: `jose` and `jsonwebtoken` (npm) and PyJWT
// (Python, pinned by `scripts/setup.sh pyjwt` in .tools/pyjwt).
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { jwtVerify, decodeJwt, decodeProtectedHeader, SignJWT } from "jose";
import jsonwebtoken from "jsonwebtoken";
import { startOrigin, startKeycard, startExample, Client, request, decodeSession, q } from "./lib/harness.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const SECRET_A = "rotation-secret-A-0123456789abcdef0123456789abcdef";
const SECRET_B = "rotation-secret-B-fedcba9876543210fedcba9876543210";
const ORIGIN_SECRET = "origin-shared-secret-0123456789abcdef0123456789";
const enc = (s) => new TextEncoder().encode(s);
const OTHER_SECRET = "another-secret-0123456789abcdef0123456789";
const PYJWT = path.join(ROOT, ".tools/pyjwt");

// Verifies each { token, secret } with PyJWT: HS256 only, `iss` must be keycard. Tokens
// and secrets go through stdin, never argv. Returns PyJWT's claims or its error's name.
const PYJWT_VERIFY = `
import json, sys
import jwt
out = []
for c in json.load(sys.stdin):
    try:
        claims = jwt.decode(c["token"], c["secret"], algorithms=["HS256"], issuer="keycard",
                            options={"require": ["iss", "sub", "iat", "exp"]})
        out.append({"ok": True, "claims": claims})
    except jwt.InvalidTokenError as e:
        out.append({"ok": False, "error": type(e).__name__})
print(json.dumps({"file": jwt.__file__, "results": out}))
`;
function pyjwtVerify(cases) {
  const r = spawnSync("python3", ["-c", PYJWT_VERIFY], {
    input: JSON.stringify(cases),
    env: { ...process.env, PYTHONPATH: PYJWT },
    encoding: "utf8",
  });
  assert.equal(r.status, 0, `PyJWT could not run (run \`scripts/setup.sh pyjwt\`; make test does): ${(r.stderr ?? String(r.error)).split("\n").filter(Boolean).at(-1)}`);
  const { file, results } = JSON.parse(r.stdout);
  assert.ok(file.startsWith(PYJWT + path.sep), "the pinned PyJWT from .tools/pyjwt, not another");
  return results;
}
const jsonwebtokenVerify = (token, secret) =>
  jsonwebtoken.verify(token, secret, { algorithms: ["HS256"], issuer: "keycard", complete: true });

describe("jwt header format", () => {
  test("the origin's X-Session verifies with jose, jsonwebtoken and PyJWT under ORIGIN_SECRET and matches the request", async () => {
    const origin = await startOrigin();
    const kc = await startKeycard({ ORIGIN_URL: origin.url, SESSION_HEADER_FORMAT: "jwt", ORIGIN_SECRET });
    try {
      const c = new Client(kc.url);
      await c.get(`/login?set=${q({ user: "ada", roles: ["admin"] })}`);
      const r = await c.send("/orders/42?page=2&sort=asc", { method: "POST", body: "x=1" });
      const token = r.json.headers["x-session"];
      assert.equal(token.split(".").length, 3);
      assert.deepEqual(decodeProtectedHeader(token), { alg: "HS256", typ: "JWT" });
      const { payload } = await jwtVerify(token, enc(ORIGIN_SECRET), { issuer: "keycard", algorithms: ["HS256"] });
      assert.equal(payload.sub, r.json.headers["x-session-id"]);
      assert.deepEqual(payload.session, { user: "ada", roles: ["admin"] });
      assert.equal(payload.htm, "POST");
      assert.equal(payload.htu, `${kc.url}/orders/42`);
      const now = Math.floor(Date.now() / 1000);
      assert.ok(Math.abs(payload.iat - now) <= 5, `iat ${payload.iat}`);
      assert.ok(payload.exp > now && payload.exp - payload.iat <= 60, "a short lifetime");

      await assert.rejects(jwtVerify(token, enc(OTHER_SECRET)), /signature/i);
      const [h, , s] = token.split(".");
      const forgedClaims = { ...decodeJwt(token), session: { user: "admin" } };
      const forged = `${h}.${Buffer.from(JSON.stringify(forgedClaims)).toString("base64url")}.${s}`;
      await assert.rejects(jwtVerify(forged, enc(ORIGIN_SECRET)), /signature/i);
      const flipped = token.slice(0, -2) + (token.at(-2) === "A" ? "B" : "A") + token.at(-1);
      await assert.rejects(jwtVerify(flipped, enc(ORIGIN_SECRET)));

      // Signed right, but not by keycard's rules: another issuer, another algorithm, none.
      const signed = (alg, iss) => new SignJWT(decodeJwt(token)).setProtectedHeader({ alg, typ: "JWT" }).setIssuer(iss).sign(enc(ORIGIN_SECRET));
      const otherIssuer = await signed("HS256", "someone-else");
      const hs512 = await signed("HS512", "keycard");
      const unsigned = `${Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url")}.${token.split(".")[1]}.`;
      await assert.rejects(jwtVerify(otherIssuer, enc(ORIGIN_SECRET), { issuer: "keycard" }), /iss/);

      // The same token under jsonwebtoken.
      const jw = jsonwebtokenVerify(token, ORIGIN_SECRET);
      assert.deepEqual(jw.header, { alg: "HS256", typ: "JWT" });
      assert.deepEqual(jw.payload, payload);
      assert.throws(() => jsonwebtokenVerify(token, OTHER_SECRET), /invalid signature/);
      assert.throws(() => jsonwebtokenVerify(forged, ORIGIN_SECRET), /invalid signature/);
      assert.throws(() => jsonwebtokenVerify(flipped, ORIGIN_SECRET), /invalid signature/);
      assert.throws(() => jsonwebtokenVerify(otherIssuer, ORIGIN_SECRET), /jwt issuer invalid/);
      assert.throws(() => jsonwebtokenVerify(hs512, ORIGIN_SECRET), /invalid algorithm/);
      assert.throws(() => jsonwebtokenVerify(unsigned, ORIGIN_SECRET), /jwt signature is required|invalid algorithm/);

      // And under PyJWT.
      const py = pyjwtVerify([
        { token, secret: ORIGIN_SECRET },
        { token, secret: OTHER_SECRET },
        { token: forged, secret: ORIGIN_SECRET },
        { token: flipped, secret: ORIGIN_SECRET },
        { token: otherIssuer, secret: ORIGIN_SECRET },
        { token: hs512, secret: ORIGIN_SECRET },
        { token: unsigned, secret: ORIGIN_SECRET },
      ]);
      assert.deepEqual(py[0], { ok: true, claims: payload });
      assert.deepEqual(py.slice(1).map((r) => r.error), [
        "InvalidSignatureError",
        "InvalidSignatureError",
        "InvalidSignatureError",
        "InvalidIssuerError",
        "InvalidAlgorithmError",
        "InvalidAlgorithmError",
      ]);

      const anon = await request(kc.url + "/anon");
      assert.equal(anon.json.headers["x-session"], undefined, "no session, no token");
    } finally {
      await kc.close();
      await origin.close();
    }
  });

  test("jwt without ORIGIN_SECRET is refused at config time", async () => {
    const kc = await startKeycard({ SESSION_HEADER_FORMAT: "jwt" });
    try {
      const r = await request(kc.url + "/");
      assert.equal(r.status, 500);
      assert.equal((await kc.waitForEvent("misconfigured")).detail.var, "ORIGIN_SECRET");
    } finally {
      await kc.close();
    }
  });
});

async function rotation(extraVars, opts = {}) {
  const origin = await startOrigin();
  const persist = opts.kv ? path.join(fs.mkdtempSync(path.join(os.tmpdir(), "keycard-rot-")), "state") : undefined;
  const start = (vars) => startKeycard({ ORIGIN_URL: origin.url, ...extraVars, ...vars }, { persist });
  try {
    // 1. Issue a cookie under A.
    let kc = await start({ SESSION_SECRET: SECRET_A });
    const c = new Client(kc.url);
    await c.get(`/login?set=${q({ user: "ada" })}`);
    const oldCookie = c.cookieHeader();
    const oldKid = c.jar.get("keycard").split(".")[1];
    await kc.close();

    // 2. Rotate: B current, A previous. The cookie is valid and re-issued under B.
    kc = await start({ SESSION_SECRET: SECRET_B, SESSION_SECRET_PREVIOUS: SECRET_A });
    c.base = kc.url;
    const r = await c.get("/after-rotation");
    assert.equal(r.json.headers["x-session-status"], "valid");
    assert.deepEqual(decodeSession(r.json.headers["x-session"]), { user: "ada" });
    assert.equal(r.cookies.length, 1, "re-issued in the same response");
    const newKid = c.jar.get("keycard").split(".")[1];
    assert.notEqual(newKid, oldKid);
    const again = await c.get("/again");
    assert.equal(again.headers["set-cookie"], undefined, "the re-issued cookie needs nothing more");
    await kc.close();

    // 3. Drop A: the old cookie is invalid, the re-issued one still valid.
    kc = await start({ SESSION_SECRET: SECRET_B });
    c.base = kc.url;
    const stale = await request(kc.url + "/stale", { headers: { cookie: oldCookie } });
    assert.equal(stale.json.headers["x-session-status"], "invalid");
    assert.ok(stale.headers["set-cookie"][0].includes("Max-Age=0"));
    const fresh = await c.get("/fresh");
    assert.equal(fresh.json.headers["x-session-status"], "valid");
    assert.deepEqual(decodeSession(fresh.json.headers["x-session"]), { user: "ada" });
    await kc.close();
  } finally {
    await origin.close();
  }
}

describe("key rotation across restarts", () => {
  test("signed cookies", () => rotation({ SESSION_STORE: "cookie" }));
  test("encrypted cookies", () => rotation({ SESSION_STORE: "cookie", SESSION_COOKIE_ENCRYPT: "true" }));
  test("kv sessions", () => rotation({ SESSION_STORE: "kv" }, { kv: true }));
});

describe("encrypted cookies", () => {
  test("the cookie does not reveal the data; tampering gives invalid; nonces are fresh", async () => {
    const origin = await startOrigin();
    const kc = await startKeycard({ ORIGIN_URL: origin.url, SESSION_STORE: "cookie", SESSION_COOKIE_ENCRYPT: "true" });
    try {
      const data = { user: "ada.lovelace", card: "4111-1111-1111-1111" };
      const c = new Client(kc.url);
      await c.get(`/login?set=${q(data)}`);
      const v = c.jar.get("keycard");
      assert.match(v, /^e1\.[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]+$/);
      const json = JSON.stringify(data);
      for (const needle of ["ada.lovelace", "4111", Buffer.from(json).toString("base64url"), Buffer.from(json).toString("base64"),
        Buffer.from("lovelace").toString("base64url").slice(0, 8)]) {
        assert.ok(!v.includes(needle), `cookie contains ${needle}`);
      }
      const r = await c.get("/read");
      assert.deepEqual(decodeSession(r.json.headers["x-session"]), data);

      // Same data issued twice: different bytes (fresh random nonce per issue).
      const c2 = new Client(kc.url);
      await c2.get(`/login?set=${q(data)}`);
      assert.notEqual(c2.jar.get("keycard"), v);

      for (const i of [3, 12, 40, v.length - 1]) {
        const ch = v[i] === "A" ? "B" : "A";
        const t = v.slice(0, i) + ch + v.slice(i + 1);
        const rr = await request(kc.url + "/t", { headers: { cookie: `keycard=${t}` } });
        assert.equal(rr.json.headers["x-session-status"], "invalid", `byte ${i}`);
      }
      // A signed cookie from a keycard without encryption is not accepted as sealed data.
      const signed = v.replace(/^e1\./, "v1.");
      const rs = await request(kc.url + "/t", { headers: { cookie: `keycard=${signed}` } });
      assert.equal(rs.json.headers["x-session-status"], "invalid");
    } finally {
      await kc.close();
      await origin.close();
    }
  });
});

// ---------------------------------------------------------- origin examples --

describe("the origin examples of docs/origin.md, for real behind the Worker", () => {
  const php = spawnSync("php", ["--version"]).status === 0;
  if (!php) console.error("php-cli is missing: run `scripts/setup.sh php` (make test does)");
  for (const stack of ["php", "python", "node"]) {
    for (const format of ["base64", "jwt"]) {
      test(`${stack}, ${format} header`, async () => {
        assert.ok(stack !== "php" || php, "php-cli must be installed (make test installs it)");
        const env = format === "jwt" ? { ORIGIN_SECRET } : { ORIGIN_SECRET: "" };
        const app = await startExample(stack, env);
        const kc = await startKeycard({ ORIGIN_URL: app.url, SESSION_HEADER_FORMAT: format, ...(format === "jwt" ? { ORIGIN_SECRET } : {}) });
        try {
          const c = new Client(kc.url);
          assert.equal((await c.get("/")).text.trim(), `user=anonymous stack=${stack}`);
          const login = await c.send("/login", { method: "POST", body: "name=ada", headers: { "content-type": "application/x-www-form-urlencoded" } });
          assert.equal(login.status, 303, app.output());
          assert.ok(c.jar.has("keycard"), "signed in");
          assert.equal((await c.get("/")).text.trim(), `user=ada visits=1 stack=${stack}`);
          assert.equal((await c.get("/")).text.trim(), `user=ada visits=2 stack=${stack}`);
          // The example trusts only what the edge sent: a forged header from a client is stripped.
          const forged = await request(kc.url + "/", { headers: { "x-session": Buffer.from('{"user":"root"}').toString("base64url") } });
          assert.equal(forged.text.trim(), `user=anonymous stack=${stack}`);
          const out = await c.send("/logout", { method: "POST" });
          assert.equal(out.status, 303);
          assert.ok(!c.jar.has("keycard"), "signed out");
          assert.equal((await c.get("/")).text.trim(), `user=anonymous stack=${stack}`);
        } finally {
          await kc.close();
          app.close();
        }
      });
    }
  }
});
