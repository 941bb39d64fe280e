// Signing users in with OpenID Connect (docs/signing-in.md): the real Worker in workerd
// as the relying party of a real OpenID Provider, npm `oidc-provider` (OpenID
// Certified), on 127.0.0.1, with PKCE required and RFC 9207's `iss`; and of a rogue
// provider of our own that signs what a misbehaving one would. Driven over real HTTP,
// with the provider's own login form.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import { CookieJar } from "tough-cookie";
import { startOrigin, startKeycard, Client, freePort, decodeSession } from "./lib/harness.mjs";
import { startProvider } from "./lib/provider.mjs";
import { startRogueProvider } from "./lib/rogue-provider.mjs";
import { loginAtProvider } from "./lib/browserless.mjs";

const PAGE = { accept: "text/html", "sec-fetch-mode": "navigate", "sec-fetch-site": "none" };
const ADA = { email: "ada@corp.example", email_verified: true, name: "Ada Lovelace", groups: ["eng"] };
const GRACE = { email: "grace@navy.example", email_verified: true, name: "Grace Hopper", groups: ["ops"] };

/** A path and query of `url` (keycard's own URLs are absolute at the provider). */
const local = (url) => {
  const u = new URL(url);
  return u.pathname + u.search;
};

/** keycard with one real provider on a port chosen before either starts: keycard reads
 * the issuer at start, and fetches it only when a sign-in needs it. */
async function stack(vars = {}, providerOpts = {}) {
  const origin = await startOrigin();
  const opPort = await freePort();
  const issuer = `http://127.0.0.1:${opPort}`;
  const kc = await startKeycard({
    ORIGIN_URL: origin.url,
    KEYCARD_OIDC_ISSUER: issuer,
    KEYCARD_OIDC_CLIENT_ID: "keycard",
    KEYCARD_OIDC_CLIENT_SECRET: "s3cr3t+/=%",
    KEYCARD_OIDC_SCOPES: "openid email profile groups",
    ...vars,
  });
  const op = await startProvider({
    port: opPort,
    clients: [{ client_id: "keycard", client_secret: "s3cr3t+/=%", redirect_uris: [`${kc.url}/.keycard/callback`] }],
    accounts: { ada: ADA, grace: GRACE },
    ...providerOpts,
  });
  return { origin, kc, op, close: async () => Promise.all([kc.close(), op.close(), origin.close()]) };
}

/** Signs `login` in from `client` (a fresh one when not given), starting at `path`:
 * every hop over real HTTP, the provider's form filled in. Returns the callback's
 * answer. */
async function signIn(s, login, path = "/.keycard/login", client = new Client(s.kc.url)) {
  let r = await client.get(path, { headers: PAGE });
  if (!r.headers.location?.startsWith(s.op.issuer)) {
    assert.equal(r.status, 303, r.text);
    r = await client.get(local(new URL(r.headers.location, s.kc.url).href), { headers: PAGE });
  }
  assert.equal(r.status, 303, r.text);
  const back = await loginAtProvider(r.headers.location, login, new CookieJar());
  const done = await client.get(local(back), { headers: PAGE });
  return { client, done };
}

describe("a sign-in with a real OpenID provider", () => {
  let s;
  before(async () => {
    s = await stack({ KEYCARD_REQUIRE: "/app", KEYCARD_IDENTITY_HEADERS: "X-Forwarded-User=user, X-Forwarded-Groups=groups" });
  });
  after(() => s.close());

  test("an anonymous page load goes to the provider and comes back to the page, signed in", async () => {
    const c = new Client(s.kc.url);
    const first = await c.get("/app/report?q=1", { headers: PAGE });
    assert.equal(first.status, 303);
    assert.equal(first.headers.location, "/.keycard/login?next=%2Fapp%2Freport%3Fq%3D1");
    const { done } = await signIn(s, "ada", first.headers.location, c);
    assert.equal(done.status, 303, done.text);
    assert.equal(done.headers.location, "/app/report?q=1");
    assert.ok(c.jar.get("keycard"), "a session cookie");
    assert.equal([...c.jar.keys()].filter((n) => n.startsWith("keycard-flow-")).length, 0, "the flow's cookie is cleared");
    const page = await c.get("/app/report?q=1", { headers: PAGE });
    assert.equal(page.status, 200);
    const seen = page.json.headers;
    assert.equal(seen["x-forwarded-user"], "ada@corp.example");
    assert.equal(seen["x-forwarded-groups"], "eng");
    assert.deepEqual(decodeSession(seen["x-session"]), {
      user: "ada@corp.example", email: "ada@corp.example", name: "Ada Lovelace", groups: ["eng"], idp: s.op.issuer,
    });
    assert.ok(!(seen.cookie ?? "").includes("keycard"), "none of keycard's cookies reach the origin");
    // The code exchange: client_secret_basic with the id and secret form-encoded
    // (oidc-provider refuses "+" and "%" sent raw), and the PKCE verifier.
    const token = s.op.tokenRequests.at(-1);
    assert.equal(token.status, 200);
    assert.ok(token.authorization.startsWith("Basic "));
    assert.ok(token.params.code_verifier, "PKCE");
  });

  test("an API call on a required path gets a 401 that names the login URL", async () => {
    const r = await new Client(s.kc.url).get("/app/api", { headers: { accept: "application/json" } });
    assert.equal(r.status, 401);
    assert.equal(r.json.login, "/.keycard/login?next=%2Fapp%2Fapi");
  });

  test("sign-ins started in several tabs all finish", async () => {
    const c = new Client(s.kc.url);
    const starts = [];
    for (const next of ["/app/a", "/app/b", "/app/c"]) {
      const r = await c.get(`/.keycard/login?next=${encodeURIComponent(next)}`, { headers: PAGE });
      assert.equal(r.status, 303);
      starts.push({ next, to: r.headers.location });
    }
    const backs = [];
    for (const { next, to } of starts) backs.push({ next, back: await loginAtProvider(to, "grace", new CookieJar()) });
    for (const { next, back } of backs.reverse()) {
      const done = await c.get(local(back), { headers: PAGE });
      assert.equal(done.status, 303, done.text);
      assert.equal(done.headers.location, next);
    }
  });

  test("a callback in a browser that did not start the sign-in exchanges no code", async () => {
    const victim = new Client(s.kc.url);
    const r = await victim.get("/.keycard/login", { headers: PAGE });
    const back = await loginAtProvider(r.headers.location, "grace", new CookieJar());
    const before = s.op.tokenRequests.length;
    const attacker = new Client(s.kc.url);
    const refused = await attacker.get(local(back), { headers: PAGE });
    assert.equal(refused.status, 400);
    assert.match(refused.text, /expired/);
    assert.equal(s.op.tokenRequests.length, before, "no code exchange");
    assert.equal(attacker.jar.get("keycard"), undefined);
    // A callback whose iss is another provider's: refused before any exchange too.
    const mixedUp = local(back).replace(/iss=[^&]*/, `iss=${encodeURIComponent("http://127.0.0.1:1/evil")}`);
    assert.equal((await victim.get(mixedUp, { headers: PAGE })).status, 400);
    assert.equal(s.op.tokenRequests.length, before);
  });

  test("Back onto a used callback goes home once signed in", async () => {
    const c = new Client(s.kc.url);
    const r = await c.get("/.keycard/login?next=%2Fapp%2Fx", { headers: PAGE });
    const back = await loginAtProvider(r.headers.location, "ada", new CookieJar());
    assert.equal((await c.get(local(back), { headers: PAGE })).status, 303);
    const again = await c.get(local(back), { headers: PAGE });
    assert.equal(again.status, 303);
    assert.equal(again.headers.location, "/");
  });

  test("a provider that is down gets a 503, and public pages and sessions go on", async () => {
    const { client } = await signIn(s, "ada");
    s.op.setDown(true);
    try {
      const r = await new Client(s.kc.url).get("/.keycard/login", { headers: PAGE });
      // The metadata is cached from the sign-ins above, so the redirect still works;
      // the callback is where the provider is needed.
      assert.equal(r.status, 303);
      assert.equal((await new Client(s.kc.url).get("/public")).status, 200);
      assert.equal((await client.get("/app/still-signed-in", { headers: PAGE })).status, 200);
    } finally {
      s.op.setDown(false);
    }
  });
});

describe("what a provider sends decides the session", () => {
  test("ES256 keys and claims in the ID token itself", async () => {
    const s = await stack({}, { alg: "ES256", conformIdTokenClaims: false });
    try {
      const { client, done } = await signIn(s, "grace");
      assert.equal(done.status, 303, done.text);
      const page = await client.get("/");
      assert.equal(decodeSession(page.json.headers["x-session"]).user, "grace@navy.example");
    } finally {
      await s.close();
    }
  });

  test("the allow rules refuse before any session, naming the rule and the user", async () => {
    const s = await stack({ KEYCARD_ALLOW_EMAIL_DOMAINS: "corp.example", KEYCARD_ALLOW_GROUPS: "eng,admins" });
    try {
      const refused = await signIn(s, "grace");
      assert.equal(refused.done.status, 403);
      assert.match(refused.done.text, /KEYCARD_ALLOW_EMAIL_DOMAINS/);
      assert.match(refused.done.text, /grace@navy\.example/);
      assert.match(refused.done.text, /Sign in as someone else/);
      assert.equal(refused.client.jar.get("keycard"), undefined);
      const ok = await signIn(s, "ada");
      assert.equal(ok.done.status, 303);
      assert.ok(await s.kc.waitForEvent("sign_in_refused"));
    } finally {
      await s.close();
    }
  });
});

describe("two providers", () => {
  test("a chooser, and one provider's user is never another's", async () => {
    const origin = await startOrigin();
    const [p1, p2] = [await freePort(), await freePort()];
    const kc = await startKeycard({
      ORIGIN_URL: origin.url,
      KEYCARD_OIDC_PROVIDERS: "corp,lab",
      KEYCARD_OIDC_CORP_ISSUER: `http://127.0.0.1:${p1}`,
      KEYCARD_OIDC_CORP_CLIENT_ID: "keycard",
      KEYCARD_OIDC_CORP_CLIENT_SECRET: "one",
      KEYCARD_OIDC_LAB_ISSUER: `http://127.0.0.1:${p2}`,
      KEYCARD_OIDC_LAB_CLIENT_ID: "keycard",
      KEYCARD_OIDC_LAB_CLIENT_SECRET: "two",
      KEYCARD_OIDC_LAB_USER_CLAIM: "sub",
    });
    const redirect_uris = [`${kc.url}/.keycard/callback`];
    const corp = await startProvider({ port: p1, clients: [{ client_id: "keycard", client_secret: "one", redirect_uris }], accounts: { ada: ADA } });
    const lab = await startProvider({ port: p2, alg: "ES256", clients: [{ client_id: "keycard", client_secret: "two", redirect_uris }], accounts: { ada: GRACE } });
    try {
      const c = new Client(kc.url);
      const chooser = await c.get("/.keycard/login?next=%2Fx", { headers: PAGE });
      assert.equal(chooser.status, 200);
      assert.match(chooser.text, /Sign in with corp/);
      assert.match(chooser.text, /Sign in with lab/);
      const s = { kc, op: lab };
      const viaLab = await signIn(s, "ada", "/.keycard/login?next=%2Fx&provider=lab");
      assert.equal(viaLab.done.headers.location, "/x");
      const seen = decodeSession((await viaLab.client.get("/")).json.headers["x-session"]);
      assert.equal(seen.user, "lab:ada", "a sub is prefixed with its provider");
      assert.equal(seen.idp, "lab");
      const viaCorp = await signIn({ kc, op: corp }, "ada", "/.keycard/login?provider=corp");
      const corpSeen = decodeSession((await viaCorp.client.get("/")).json.headers["x-session"]);
      assert.equal(corpSeen.user, "ada@corp.example", "a verified email is a global name");
    } finally {
      await Promise.all([kc.close(), corp.close(), lab.close(), origin.close()]);
    }
  });
});

describe("a provider that misbehaves", () => {
  let origin, rogue, kc;
  before(async () => {
    origin = await startOrigin();
    rogue = await startRogueProvider({ clients: [{ client_id: "keycard", client_secret: "rogue-secret" }] });
    kc = await startKeycard({
      ORIGIN_URL: origin.url,
      KEYCARD_OIDC_ISSUER: rogue.issuer,
      KEYCARD_OIDC_CLIENT_ID: "keycard",
      KEYCARD_OIDC_CLIENT_SECRET: "rogue-secret",
    });
  });
  after(() => Promise.all([kc.close(), rogue.close(), origin.close()]));

  /** A sign-in against the rogue provider in `mode`: the callback's answer. */
  async function attempt(mode) {
    rogue.setMode(mode);
    const c = new Client(kc.url);
    const r = await c.get("/.keycard/login", { headers: PAGE });
    assert.equal(r.status, 303, r.text);
    const to = await fetch(r.headers.location, { redirect: "manual" });
    const done = await c.get(local(to.headers.get("location")), { headers: PAGE });
    return { c, done };
  }

  test("its good token signs in (the control)", async () => {
    for (const mode of ["good", "es256"]) {
      const { c, done } = await attempt(mode);
      assert.equal(done.status, 303, `${mode}: ${done.text}`);
      assert.ok(c.jar.get("keycard"), mode);
    }
  });

  for (const [mode, status] of [
    ["alg-none", 400], ["hs256-with-public-key", 400], ["hs256-with-public-jwk", 400],
    ["wrong-aud", 400], ["wrong-nonce", 400], ["wrong-iss", 400], ["expired", 400],
    ["unknown-kid", 400], ["bad-signature", 400], ["azp-missing", 400],
    ["html", 503], ["error-500", 503], ["huge", 503],
  ]) {
    test(`${mode}: no session, a clear ${status}`, async () => {
      const { c, done } = await attempt(mode);
      assert.equal(done.status, status, done.text);
      assert.match(done.headers["content-type"], /text\/html/);
      assert.equal(c.jar.get("keycard"), undefined, "no session");
      if (status === 503) assert.ok(done.headers["retry-after"]);
      if (mode === "huge") {
        for (let i = 0; i < 50 && rogue.hugeSent === undefined; i++) await new Promise((r) => setTimeout(r, 20));
        assert.equal(rogue.hugeSent, false, "keycard stops reading past its cap");
      }
    });
  }

  test("an email the provider never says it verified names no one", async () => {
    // Not in the ID token, and not at userinfo either (where keycard asks for it).
    rogue.setClaims({ email_verified: undefined });
    try {
      const { c, done } = await attempt("no-email-verified");
      assert.equal(done.status, 403, done.text);
      assert.match(done.text, /email_verified/);
      assert.equal(c.jar.get("keycard"), undefined);
    } finally {
      rogue.setClaims({ email_verified: true });
    }
  });

  test("no log line holds a token, a code or the client secret", async () => {
    const text = kc.logs.join("\n");
    assert.ok(!text.includes("rogue-secret"));
    assert.ok(!/eyJ[A-Za-z0-9_-]{10,}\./.test(text), "no JWT");
    assert.ok(!/code=[A-Za-z0-9_-]{8,}/.test(text), "no code");
  });
});
