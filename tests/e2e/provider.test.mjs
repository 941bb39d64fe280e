// The sign-in tests' own helpers, checked without keycard: the real provider
// (lib/provider.mjs) carries a whole code flow signed in by the browser-less driver
// (lib/browserless.mjs), and the rogue provider (lib/rogue-provider.mjs) hands out the
// tokens each of its modes promises. A relying party test that fails should fail because
// of the relying party, not because its provider was not what the test believed.
import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { CookieJar } from "tough-cookie";
import { createRemoteJWKSet, jwtVerify, decodeJwt, decodeProtectedHeader } from "jose";
import { startProvider } from "./lib/provider.mjs";
import { loginAtProvider, logoutAtProvider, pkcePair } from "./lib/browserless.mjs";
import { startRogueProvider, parseBasicAuth, MODES } from "./lib/rogue-provider.mjs";

const CLIENT = { client_id: "keycard-e2e", client_secret: "s3cret:with/odd+chars", redirect_uris: ["http://127.0.0.1:9/auth/callback"], post_logout_redirect_uris: ["http://127.0.0.1:9/signed-out"] };
const REDIRECT = CLIENT.redirect_uris[0];
const ACCOUNTS = { ada: { email: "ada@corp.example", email_verified: true, name: "Ada", groups: ["eng"] } };
const SCOPE = "openid email profile groups";

// client_secret_basic as RFC 6749 section 2.3.1 has it: id and secret form-urlencoded, then base64.
const basic = (id, secret) => {
  const f = (s) => new URLSearchParams({ s }).toString().slice(2);
  return `Basic ${Buffer.from(`${f(id)}:${f(secret)}`).toString("base64")}`;
};

const discover = async (issuer) => (await fetch(`${issuer}/.well-known/openid-configuration`)).json();

function authorizeUrl(endpoint, extra = {}) {
  const pkce = pkcePair();
  const state = Math.random().toString(36).slice(2);
  const nonce = Math.random().toString(36).slice(2);
  const u = new URL(endpoint);
  const params = { client_id: CLIENT.client_id, redirect_uri: REDIRECT, response_type: "code", scope: SCOPE, state, nonce, code_challenge: pkce.challenge, code_challenge_method: "S256", ...extra };
  for (const [k, v] of Object.entries(params)) if (v !== undefined) u.searchParams.set(k, v);
  return { url: u.href, state, nonce, verifier: pkce.verifier };
}

function exchange(tokenEndpoint, code, verifier, auth = basic(CLIENT.client_id, CLIENT.client_secret)) {
  const body = { grant_type: "authorization_code", code, redirect_uri: REDIRECT };
  if (verifier !== undefined) body.code_verifier = verifier;
  return fetch(tokenEndpoint, {
    method: "POST",
    headers: { authorization: auth, "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(body),
  });
}

describe("the real provider (oidc-provider)", () => {
  for (const alg of ["RS256", "ES256"]) {
    for (const conform of [true, false]) {
      test(`${alg}, conformIdTokenClaims ${conform}: a whole code flow`, async () => {
        const op = await startProvider({ clients: [CLIENT], alg, accounts: ACCOUNTS, conformIdTokenClaims: conform });
        try {
          const meta = await discover(op.issuer);
          assert.equal(meta.issuer, op.issuer);
          assert.equal(meta.authorization_response_iss_parameter_supported, true);
          assert.deepEqual(meta.code_challenge_methods_supported, ["S256"]);
          assert.ok(meta.end_session_endpoint);
          assert.deepEqual(meta.id_token_signing_alg_values_supported, [alg]);

          const req = authorizeUrl(meta.authorization_endpoint);
          const back = new URL(await loginAtProvider(req.url, "ada", new CookieJar()));
          assert.equal(`${back.origin}${back.pathname}`, REDIRECT);
          assert.equal(back.searchParams.get("state"), req.state);
          assert.equal(back.searchParams.get("iss"), op.issuer);
          assert.equal(op.tokenRequests.length, 0, "signing in alone exchanges no code");

          const res = await exchange(meta.token_endpoint, back.searchParams.get("code"), req.verifier);
          assert.equal(res.status, 200);
          const tokens = await res.json();
          assert.equal(op.tokenRequests.length, 1);
          assert.deepEqual(parseBasicAuth(op.tokenRequests[0].authorization), { id: CLIENT.client_id, secret: CLIENT.client_secret });
          assert.equal(op.tokenRequests[0].params.code_verifier, req.verifier);

          const { payload, protectedHeader } = await jwtVerify(tokens.id_token, createRemoteJWKSet(new URL(meta.jwks_uri)), { issuer: op.issuer, audience: CLIENT.client_id });
          assert.equal(protectedHeader.alg, alg);
          assert.equal(payload.sub, "ada");
          assert.equal(payload.nonce, req.nonce);
          const info = await (await fetch(meta.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens.access_token}` } })).json();
          assert.deepEqual(info, { sub: "ada", ...ACCOUNTS.ada });
          if (conform) {
            for (const k of ["email", "email_verified", "name", "groups"]) assert.equal(payload[k], undefined, k);
          } else {
            assert.equal(payload.email, "ada@corp.example");
            assert.equal(payload.email_verified, true);
            assert.equal(payload.name, "Ada");
            assert.deepEqual(payload.groups, ["eng"]);
          }
          assert.deepEqual(op.errors, []);
        } finally {
          await op.close();
        }
      });
    }
  }

  test("PKCE is required and checked; the session is reused until sign-out; the provider can go down", async () => {
    const op = await startProvider({ clients: [CLIENT], accounts: ACCOUNTS });
    try {
      const meta = await discover(op.issuer);
      const jar = new CookieJar();
      const noPkce = authorizeUrl(meta.authorization_endpoint, { code_challenge: undefined, code_challenge_method: undefined });
      const refused = new URL(await loginAtProvider(noPkce.url, "ada", jar));
      assert.equal(refused.searchParams.get("error"), "invalid_request");
      assert.equal(refused.searchParams.get("code"), null);

      const req = authorizeUrl(meta.authorization_endpoint);
      const back = new URL(await loginAtProvider(req.url, "ada", jar));
      const wrong = await exchange(meta.token_endpoint, back.searchParams.get("code"), pkcePair().verifier);
      assert.equal(wrong.status, 400);
      assert.equal((await wrong.json()).error, "invalid_grant");

      // The provider's session cookie is in the jar: no form this time, and another
      // login typed would not matter. A login unknown to `accounts` gets only `sub`.
      const again = authorizeUrl(meta.authorization_endpoint);
      const code = new URL(await loginAtProvider(again.url, "nobody", jar)).searchParams.get("code");
      const tokens = await (await exchange(meta.token_endpoint, code, again.verifier)).json();
      assert.equal(decodeJwt(tokens.id_token).sub, "ada");
      const fresh = authorizeUrl(meta.authorization_endpoint);
      const code2 = new URL(await loginAtProvider(fresh.url, "nobody", new CookieJar())).searchParams.get("code");
      const tokens2 = await (await exchange(meta.token_endpoint, code2, fresh.verifier)).json();
      const info = await (await fetch(meta.userinfo_endpoint, { headers: { authorization: `Bearer ${tokens2.access_token}` } })).json();
      assert.deepEqual(info, { sub: "nobody" });

      // RP-initiated sign-out ends the session in the jar: the next sign-in is a form again.
      const end = new URL(meta.end_session_endpoint);
      end.searchParams.set("id_token_hint", tokens.id_token);
      end.searchParams.set("post_logout_redirect_uri", CLIENT.post_logout_redirect_uris[0]);
      end.searchParams.set("state", "bye");
      assert.equal(await logoutAtProvider(end.href, jar), `${CLIENT.post_logout_redirect_uris[0]}?state=bye`);
      const after = authorizeUrl(meta.authorization_endpoint);
      const code3 = new URL(await loginAtProvider(after.url, "grace", jar)).searchParams.get("code");
      assert.equal(decodeJwt((await (await exchange(meta.token_endpoint, code3, after.verifier)).json()).id_token).sub, "grace");

      op.setDown(true);
      assert.equal((await fetch(`${op.issuer}/.well-known/openid-configuration`)).status, 503);
      op.setDown(false);
      assert.equal((await fetch(`${op.issuer}/.well-known/openid-configuration`)).status, 200);
      assert.deepEqual(op.errors, []);
    } finally {
      await op.close();
    }
  });
});

describe("the rogue provider", () => {
  test("modes give the tokens they promise; PKCE and the client are checked", async () => {
    const rogue = await startRogueProvider({ clients: [CLIENT] });
    try {
      const meta = await discover(rogue.issuer);
      assert.equal(meta.issuer, rogue.issuer);
      assert.equal(meta.authorization_response_iss_parameter_supported, true);
      const keys = createRemoteJWKSet(new URL(meta.jwks_uri));

      // One authorization and one exchange per mode, as keycard would do them.
      const flow = async (mode, verifierOverride) => {
        rogue.setMode(mode);
        const req = authorizeUrl(meta.authorization_endpoint);
        const back = new URL(await loginAtProvider(req.url, "ignored"));
        assert.equal(back.searchParams.get("state"), req.state);
        assert.equal(back.searchParams.get("iss"), rogue.issuer);
        const res = await exchange(meta.token_endpoint, back.searchParams.get("code"), verifierOverride ?? req.verifier);
        return { req, res };
      };
      const verify = (token) => jwtVerify(token, keys, { issuer: rogue.issuer, audience: CLIENT.client_id, algorithms: ["RS256", "ES256"] });

      const before = rogue.tokenRequests;
      const { req, res } = await flow("good");
      assert.equal(rogue.tokenRequests, before + 1);
      assert.deepEqual(parseBasicAuth(rogue.lastTokenRequest.authorization), { id: CLIENT.client_id, secret: CLIENT.client_secret });
      assert.equal(rogue.lastTokenRequest.params.code_verifier, req.verifier);
      const good = await verify((await res.json()).id_token);
      assert.equal(good.protectedHeader.alg, "RS256");
      assert.equal(good.payload.nonce, req.nonce);
      assert.equal(good.payload.email_verified, true);

      const badPkce = (await flow("good", pkcePair().verifier)).res;
      assert.equal(badPkce.status, 400);
      assert.equal((await badPkce.json()).error, "invalid_grant");
      const { res: badClient } = await (async () => {
        rogue.setMode("good");
        const r = authorizeUrl(meta.authorization_endpoint);
        const code = new URL(await loginAtProvider(r.url, "x")).searchParams.get("code");
        return { res: await exchange(meta.token_endpoint, code, r.verifier, basic(CLIENT.client_id, "wrong")) };
      })();
      assert.equal(badClient.status, 401);

      const refused = ["alg-none", "hs256-with-public-key", "hs256-with-public-jwk", "wrong-aud", "wrong-iss", "expired", "unknown-kid", "bad-signature"];
      for (const mode of refused) {
        const token = (await (await flow(mode)).res.json()).id_token;
        await assert.rejects(verify(token), `jose accepted ${mode}`);
      }
      assert.equal(decodeProtectedHeader((await (await flow("alg-none")).res.json()).id_token).alg, "none");

      const wrongNonce = await flow("wrong-nonce");
      assert.notEqual((await verify((await wrongNonce.res.json()).id_token)).payload.nonce, wrongNonce.req.nonce);
      assert.equal((await verify((await (await flow("es256")).res.json()).id_token)).protectedHeader.alg, "ES256");
      const noEv = (await verify((await (await flow("no-email-verified")).res.json()).id_token)).payload;
      assert.ok(noEv.email && !("email_verified" in noEv));
      const azp = (await verify((await (await flow("azp-missing")).res.json()).id_token)).payload;
      assert.deepEqual(azp.aud, [CLIENT.client_id, "other"]);
      assert.equal(azp.azp, undefined);

      const html = (await flow("html")).res;
      assert.equal(html.status, 200);
      assert.match(html.headers.get("content-type"), /text\/html/);
      assert.equal((await flow("error-500")).res.status, 500);
      const huge = (await flow("huge")).res;
      assert.equal(huge.headers.get("content-length"), null, "chunked");
      assert.ok((await huge.text()).length > 32 * 1024 * 1024, "32 MB");
      for (let i = 0; i < 50 && rogue.hugeSent === undefined; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(rogue.hugeSent, true, "read to its end, it says so");

      rogue.setClaims({ email: "eve@corp.example", groups: undefined });
      const claimed = (await verify((await (await flow("good")).res.json()).id_token)).payload;
      assert.equal(claimed.email, "eve@corp.example");
      assert.equal("groups" in claimed, false);
      rogue.setIssParam(null);
      assert.equal(new URL(await loginAtProvider(authorizeUrl(meta.authorization_endpoint).url, "x")).searchParams.has("iss"), false);

      assert.ok(MODES.every((m) => m === "good" || refused.includes(m) || ["wrong-nonce", "es256", "no-email-verified", "azp-missing", "html", "error-500", "huge"].includes(m)), "every mode is checked here");
    } finally {
      await rogue.close();
    }
  });

  test("parseBasicAuth decodes RFC 6749 2.3.1 form-urlencoding", () => {
    assert.deepEqual(parseBasicAuth(basic("my client", "p:a%ss+w")), { id: "my client", secret: "p:a%ss+w" });
    assert.equal(parseBasicAuth("Bearer x"), undefined);
  });
});
