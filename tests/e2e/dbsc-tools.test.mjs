// The device-bound session (DBSC) test tools, checked against real parts rather than
// against each other: Chromium 150 (tests/e2e/lib/dbsc-chromium.mjs) registers with and
// refreshes at a small recording server on 127.0.0.1, whose every JWT npm `jose` checks;
// then the test client (tests/e2e/lib/dbsc-client.mjs) does the same at the same server,
// and must send JWTs with exactly Chromium's header and payload members, in Chromium's
// order; then each of its misbehaviours must send what it says, and jose must refuse it.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";

import { EmbeddedJWK, importJWK, jwtVerify } from "jose";

import { withDbscBrowser } from "./lib/dbsc-chromium.mjs";
import { DbscClient, decodeJwt, parseChallenges, parseRegistrations, parseSfList, sfString } from "./lib/dbsc-client.mjs";

/** The short-lived cookie's lifetime, in seconds: short, so a refresh after expiry comes soon. */
const COOKIE_TTL = 4;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Does jose accept `jwt` under `key` (a KeyLike, or EmbeddedJWK for the header's own)? */
async function joseAccepts(jwt, key) {
  try {
    await jwtVerify(jwt, key, { typ: "dbsc+jwt", algorithms: ["ES256", "RS256"] });
    return true;
  } catch {
    return false;
  }
}

/**
 * A DBSC server cut to what the tests need, on 127.0.0.1, reached as localhost. GET /login
 * offers two registrations in one header: ES256-or-RS256 at /reg/es, with an
 * authorization, and RS256 alone at /reg/rs. Registration and refresh check every JWT
 * with jose and every challenge against the ones issued (to which session, used or not),
 * and answer 200 only when all is well. Session ids hold a space (`es 1`), so a client
 * that quotes or mangles `Sec-Secure-Session-Id` shows. Every request is recorded.
 */
async function startDbscServer() {
  const requests = [];
  const challenges = new Map(); // challenge -> { id, used }; registration ones have id `reg:<kind>`
  const sessions = new Map(); // id -> { kind, jwk, alg }
  let n = 0;
  let origin;

  const mint = (id) => {
    const c = `c${++n}-${id.replace(/\W/g, "")}`;
    challenges.set(c, { id, used: false });
    return c;
  };
  const take = (c, id) => {
    const known = challenges.get(c);
    if (!known || known.id !== id || known.used) return false;
    known.used = true;
    return true;
  };
  const config = (id) => ({
    session_identifier: id,
    refresh_url: "/refresh",
    scope: {
      origin,
      include_site: false,
      scope_specification: [
        { type: "exclude", domain: "localhost", path: "/login" },
        { type: "exclude", domain: "localhost", path: "/favicon.ico" },
      ],
    },
    credentials: [{ type: "cookie", name: `bound_${sessions.get(id).kind}`, attributes: "Path=/; Secure; HttpOnly; SameSite=Lax" }],
    continue: true,
  });
  const grant = (res, rec, id) => {
    const value = `v${++n}`;
    rec.status = 200;
    rec.cookie = value;
    res.writeHead(200, {
      "content-type": "application/json",
      "cache-control": "no-store",
      "set-cookie": `bound_${sessions.get(id).kind}=${value}; Max-Age=${COOKIE_TTL}; Path=/; Secure; HttpOnly; SameSite=Lax`,
    });
    res.end(JSON.stringify(config(id)));
  };
  const refuse = (res, rec, status, why, headers = {}) => {
    rec.status = status;
    rec.why = why;
    res.writeHead(status, { "cache-control": "no-store", ...headers });
    res.end(why);
  };

  async function register(req, res, rec, kind) {
    const jwt = req.headers["secure-session-response"];
    if (!jwt) return refuse(res, rec, 400, "no proof");
    rec.jwt = jwt;
    rec.verified = await joseAccepts(jwt, EmbeddedJWK);
    const { header, payload } = decodeJwt(jwt);
    if (!rec.verified) return refuse(res, rec, 400, "bad signature");
    if (!take(payload.jti, `reg:${kind}`)) return refuse(res, rec, 400, "bad challenge");
    const id = `${kind} ${++n}`;
    sessions.set(id, { kind, jwk: header.jwk, alg: header.alg });
    rec.id = id;
    grant(res, rec, id);
  }

  async function refresh(req, res, rec) {
    const id = req.headers["sec-secure-session-id"];
    const session = sessions.get(id);
    if (!session) return refuse(res, rec, 400, "unknown session");
    rec.id = id;
    const jwt = req.headers["secure-session-response"];
    if (!jwt) return refuse(res, rec, 403, "challenge", { "secure-session-challenge": `${sfString(mint(id))};id=${sfString(id)}` });
    rec.jwt = jwt;
    rec.verified = await joseAccepts(jwt, await importJWK(session.jwk, session.alg));
    if (!rec.verified) return refuse(res, rec, 403, "bad signature");
    if (!take(decodeJwt(jwt).payload.jti, id)) return refuse(res, rec, 403, "bad challenge");
    grant(res, rec, id);
  }

  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", async () => {
      const path = new URL(req.url, "http://localhost").pathname;
      const rec = { t: Date.now(), method: req.method, path, headers: req.headers, chrome: /HeadlessChrome/.test(req.headers["user-agent"] ?? "") };
      requests.push(rec);
      if (path === "/login") {
        rec.status = 200;
        const reg = `(ES256 RS256);path="/reg/es";challenge="${mint("reg:es")}";authorization="auth es", (RS256);path="/reg/rs";challenge="${mint("reg:rs")}"`;
        res.writeHead(200, { "content-type": "text/html", "cache-control": "no-store", "secure-session-registration": reg });
        return res.end("<p>signed in</p>");
      }
      if (req.method === "POST" && path.startsWith("/reg/")) return register(req, res, rec, path.slice(5));
      if (req.method === "POST" && path === "/refresh") return refresh(req, res, rec);
      rec.status = path === "/favicon.ico" ? 404 : 200;
      res.writeHead(rec.status, { "content-type": "text/html", "cache-control": "no-store" });
      res.end(`<p>${path}</p>`);
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  origin = `http://localhost:${server.address().port}`;
  return { origin, requests, challenges, sessions, close: () => new Promise((r) => server.close(r)) };
}

/** A JWT's header and payload member names in the order they were written, the jwk's
 * too, and its signature's length (64 bytes of raw r||s for ES256). */
function shape(jwt) {
  const { header, payload, signature } = decodeJwt(jwt);
  return {
    header: Object.keys(header), jwk: header.jwk && Object.keys(header.jwk), payload: Object.keys(payload),
    alg: header.alg, typ: header.typ, signature: signature.length,
  };
}

/** What Chromium sent in test (a), for (b) to hold the client to. */
const chrome = {};

describe("DBSC tools", () => {
  let server;
  before(async () => {
    server = await startDbscServer();
  });
  after(() => server?.close());

  const posts = (who, path) => server.requests.filter((r) => r.method === "POST" && r.path.startsWith(path) && r.chrome === (who === "chrome"));
  const cookieOf = (rec, name) => (rec.headers.cookie ?? "").split(/;\s*/).find((c) => c.startsWith(`${name}=`))?.slice(name.length + 1);

  test("(a) Chromium 150 registers both sessions, with JWTs jose verifies, and refreshes after the cookie expires", async () => {
    await withDbscBrowser(async ({ page, events }) => {
      await page.goto(`${server.origin}/login`);
      await events.waitFor("creationEventDetails", (e) => e.sessionId.startsWith("es "));
      await events.waitFor("creationEventDetails", (e) => e.sessionId.startsWith("rs "));
      for (const kind of ["es", "rs"]) {
        const [reg, ...more] = posts("chrome", `/reg/${kind}`);
        assert.equal(more.length, 0);
        assert.equal(reg.status, 200, `registration ${kind}: ${reg.why}`);
        assert.equal(reg.verified, true, "jose verifies the registration JWT against its own jwk");
        assert.equal(reg.headers["content-length"], "0");
        chrome[`reg_${kind}`] = reg;
      }
      assert.deepEqual(decodeJwt(chrome.reg_es.jwt).payload, { authorization: "auth es", jti: "c1-reges" });
      assert.equal(decodeJwt(chrome.reg_rs.jwt).header.alg, "RS256", "a registration offering RS256 alone gets an RSA key");

      // Idle past the cookies' lifetime: no request, so no proactive refresh either.
      await sleep((COOKIE_TTL + 1.5) * 1000);
      const t0 = Date.now();
      await page.goto(`${server.origin}/page2`);
      const page2 = server.requests.find((r) => r.t >= t0 && r.path === "/page2");
      for (const kind of ["es", "rs"]) {
        const id = chrome[`reg_${kind}`].id;
        // With cookies this short, Chromium also refreshes proactively on every request,
        // so more rounds may follow; the first is the one after expiry.
        const rounds = server.requests.filter((r) => r.t >= t0 && r.t <= page2.t && r.path === "/refresh" && r.id === id);
        assert.deepEqual(rounds.slice(0, 2).map((r) => [r.status, Boolean(r.jwt)]), [[403, false], [200, true]], `${kind}: a challenge, then a proof`);
        assert.equal(cookieOf(rounds[0], `bound_${kind}`), undefined, `${kind}: the refresh came after the cookie expired`);
        assert.ok(rounds.filter((r) => r.jwt).every((r) => r.verified), "jose verifies every refresh proof against the registered key");
        assert.ok(rounds.some((r) => r.cookie === cookieOf(page2, `bound_${kind}`)), `${kind}: /page2 waited for a refresh and carries its cookie`);
        assert.equal(rounds[0].headers["sec-secure-session-id"], id, "the session id as it is: no quotes");
        chrome[`challenge_${kind}`] = rounds[0];
        chrome[`refresh_${kind}`] = rounds[1];
        const refreshed = await events.waitFor("refreshEventDetails", (e) => e.sessionId === id && !e.refreshEventDetails.wasFullyProactiveRefresh);
        assert.equal(refreshed.refreshEventDetails.refreshResult, "Refreshed");
      }
      assert.ok(posts("chrome", "/reg/").every((r) => r.headers["sec-secure-session-id"] === undefined));
    });
  });

  test("(b) the client's registrations and refreshes match Chromium's member for member, and jose verifies them", async () => {
    assert.ok(chrome.refresh_rs, "needs Chromium's requests from (a)");
    const client = new DbscClient();
    const { sessions } = await client.visit(`${server.origin}/login`);
    assert.deepEqual(sessions.map((s) => s.key.alg), ["ES256", "RS256"], "the first algorithm each registration offers");
    for (const [kind, session] of [["es", sessions[0]], ["rs", sessions[1]]]) {
      const [reg] = posts("client", `/reg/${kind}`);
      assert.equal(reg.status, 200, `registration ${kind}: ${reg.why}`);
      assert.equal(reg.verified, true);
      assert.equal(reg.headers["content-length"], "0");
      assert.deepEqual(shape(reg.jwt), shape(chrome[`reg_${kind}`].jwt), `registration ${kind}: the same members as Chromium's`);
      assert.deepEqual(Object.keys(decodeJwt(reg.jwt).payload), Object.keys(decodeJwt(chrome[`reg_${kind}`].jwt).payload));
      assert.equal(session.id, reg.id);
      assert.equal(session.refreshUrl, `${server.origin}/refresh`);

      const t0 = Date.now();
      const { status, steps } = await client.refresh(session);
      assert.equal(status, 200);
      assert.deepEqual(steps.map((s) => s.status), [403, 200], "no proof first, then one on the challenge");
      const [ask, proof] = server.requests.filter((r) => r.t >= t0 && r.path === "/refresh");
      for (const [mine, theirs] of [[ask, chrome[`challenge_${kind}`]], [proof, chrome[`refresh_${kind}`]]]) {
        assert.equal(mine.headers["sec-secure-session-id"], session.id, "the id as it is, as Chromium sends it");
        assert.equal(theirs.headers["sec-secure-session-id"], theirs.id);
        assert.equal(mine.headers["content-length"], theirs.headers["content-length"]);
      }
      assert.equal(proof.verified, true, "jose verifies the client's refresh proof against the registered key");
      assert.deepEqual(shape(proof.jwt), shape(chrome[`refresh_${kind}`].jwt), `refresh ${kind}: the same members as Chromium's`);
      assert.equal(decodeJwt(proof.jwt).payload.jti, steps[0].challenge);
    }
    const t1 = Date.now();
    await client.fetch(`${server.origin}/page3`);
    const page3 = server.requests.find((r) => r.t >= t1 && r.path === "/page3");
    assert.ok(cookieOf(page3, "bound_es") && cookieOf(page3, "bound_rs"), "the jar sends both refreshed cookies");
  });

  test("(c) each misbehaviour sends what it says, and jose or the challenge check refuses it", async () => {
    const client = new DbscClient();
    // This visit's registrations, by their place in the log: by time, the last one of
    // the visit before could fall in the same millisecond and be counted here.
    const regs = async (misbehave) => {
      const from = server.requests.length;
      await client.visit(`${server.origin}/login`, { misbehave });
      return server.requests.slice(from).filter((r) => r.path.startsWith("/reg/"));
    };
    const last = () => server.requests.at(-1);

    for (const reg of await regs({ algNone: true })) {
      assert.equal(reg.jwt.split(".")[2], "", "alg none: no signature");
      assert.equal(decodeJwt(reg.jwt).header.alg, "none");
      assert.deepEqual([reg.status, reg.verified], [400, false]);
    }
    for (const reg of await regs({ otherKey: true })) {
      assert.equal(decodeJwt(reg.jwt).signature.length > 0, true);
      assert.deepEqual([reg.status, reg.verified], [400, false], "the signature is not by the jwk's key");
    }

    const { sessions: [es, rs] } = await client.visit(`${server.origin}/login`);
    const bound = await importJWK(es.key.jwk, "ES256");

    assert.equal((await client.refresh(es, { misbehave: { otherKey: true } })).status, 403);
    assert.equal(decodeJwt(last().jwt).header.jwk, undefined);
    assert.equal(await joseAccepts(last().jwt, bound), false, "another key: not the bound key's signature");

    assert.equal((await client.refresh(es, { misbehave: { algNone: true } })).status, 403);
    assert.equal(last().jwt.split(".")[2], "");

    assert.equal((await client.refresh(es, { misbehave: { swapJwk: true } })).status, 403);
    const swapped = decodeJwt(last().jwt).header.jwk;
    assert.ok(swapped && swapped.x !== es.key.jwk.x, "a jwk other than the bound key");
    assert.equal(await joseAccepts(last().jwt, EmbeddedJWK), true, "signed by the swapped-in key");
    assert.equal(await joseAccepts(last().jwt, bound), false);

    const honest = await client.refresh(es);
    assert.equal(honest.status, 200);
    const used = honest.steps[1].proof;
    const usedChallenge = decodeJwt(used).payload.jti;

    const replay = await client.refresh(es, { misbehave: { replay: used } });
    assert.deepEqual(replay.steps.map((s) => s.status), [403], "one POST, with the old proof");
    assert.equal(last().headers["secure-session-response"], used, "the same proof, byte for byte");
    assert.deepEqual([last().verified, last().why], [true, "bad challenge"]);

    const reuse = await client.refresh(es, { misbehave: { challenge: usedChallenge } });
    assert.equal(reuse.steps.length, 1);
    assert.equal(decodeJwt(last().jwt).payload.jti, usedChallenge);
    assert.notEqual(last().jwt, used, "a new proof on an old challenge");
    assert.deepEqual([last().verified, last().why], [true, "bad challenge"]);

    // A fresh challenge of the other session, asked for and left unused.
    const ask = await client.fetch(rs.refreshUrl, { method: "POST", headers: { "sec-secure-session-id": rs.id } });
    const [{ challenge: foreign, id: issuedTo }] = parseChallenges(ask.headers.get("secure-session-challenge"));
    assert.equal(issuedTo, rs.id);
    await client.refresh(es, { misbehave: { challenge: foreign } });
    assert.equal(last().headers["sec-secure-session-id"], es.id, "its own session id");
    assert.equal(decodeJwt(last().jwt).payload.jti, foreign, "another session's challenge");
    assert.deepEqual([last().status, last().verified, last().why], [403, true, "bad challenge"]);

    await client.refresh(es, { misbehave: { omitSessionId: true } });
    assert.equal(last().headers["sec-secure-session-id"], undefined);
    assert.equal(last().status, 400);

    await client.refresh(es, { misbehave: { sessionId: rs.id } });
    assert.equal(last().headers["sec-secure-session-id"], rs.id);

    const draft = new DbscClient({ idFormat: "sf-string" });
    draft.jar = client.jar;
    await draft.refresh(es);
    assert.equal(last().headers["sec-secure-session-id"], `"${es.id}"`, "the draft's structured-field string");
  });

  test("the header parsers read RFC 8941 as the registration and challenge headers use it", () => {
    assert.deepEqual(parseRegistrations('(ES256 RS256);path="/reg";challenge="a\\"b";authorization="x y", (RS256);path="r2", (ES256)'), [
      { algs: ["ES256", "RS256"], path: "/reg", challenge: 'a"b', authorization: "x y" },
      { algs: ["RS256"], path: "r2", challenge: undefined, authorization: undefined },
    ]);
    assert.deepEqual(parseChallenges('"c1";id="es 1", "c2", token;id="x"'), [
      { challenge: "c1", id: "es 1" },
      { challenge: "c2", id: undefined },
      { challenge: "token", id: "x" },
    ]);
    for (const bad of ['(ES256', '"open', "(a b),", 'a;B=1']) assert.throws(() => parseSfList(bad), SyntaxError, bad);
    assert.equal(sfString('a"b\\c'), '"a\\"b\\\\c"');
  });
});
