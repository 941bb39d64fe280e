// A real OpenID Provider for the sign-in tests: `oidc-provider` (the certified Node
// implementation) on 127.0.0.1, in memory, with its development login form. keycard is
// the relying party; this is what it signs in against, so a test exercises a provider
// nobody here wrote rather than our own idea of one. The hand-written provider that
// misbehaves on purpose is rogue-provider.mjs.
import http from "node:http";
import crypto from "node:crypto";
import Provider from "oidc-provider";
import { generateKeyPair, exportJWK } from "jose";

/** Scope -> the claims it releases (each key also becomes a scope). `groups` is not a
 * standard scope or claim; it is declared here. */
const CLAIMS = {
  openid: ["sub"],
  email: ["email", "email_verified"],
  profile: ["name", "given_name", "family_name", "preferred_username"],
  groups: ["groups"],
};

// oidc-provider warns, for every instance, that its in-memory adapter and its login form
// are for development only: exactly what the tests want, so those two lines are dropped.
const DEV_ONLY = /^oidc-provider WARNING: a quick start development-only (in-memory adapter|feature devInteractions)/;
function quietly(make) {
  const warn = console.warn;
  console.warn = (...args) => { if (!DEV_ONLY.test(String(args[0]))) warn(...args); };
  try {
    return make();
  } finally {
    console.warn = warn;
  }
}

/**
 * Starts oidc-provider on a free port of 127.0.0.1 (issuer `http://127.0.0.1:<port>`).
 * Options:
 *   clients        [{ client_id, client_secret, redirect_uris, token_endpoint_auth_method?, ...metadata }]
 *                  (auth method defaults to client_secret_basic; other client metadata,
 *                  e.g. post_logout_redirect_uris, passes through)
 *   alg            "RS256" (default) | "ES256": the one signing key, and every client's
 *                  id_token_signed_response_alg
 *   accounts       { accountId: claims }: whatever login is typed into the form becomes
 *                  `sub`; a known id also gets its claims, an unknown one only `sub`
 *   conformIdTokenClaims  true (default): scope claims only at userinfo; false: in the ID
 *                  token too
 *   delayMs        delay before every request is handled (also `setDelay(ms)`)
 *   port           the port to listen on (default: a free one), for a relying party
 *                  configured with the issuer before the provider starts
 * PKCE (S256) is required of every client, consent is given by itself (one login form),
 * and RP-initiated logout is on. Endpoints are oidc-provider's own (/auth, /token, /me
 * for userinfo, /jwks, /session/end): read them from discovery. It decodes
 * client_secret_basic strictly as RFC 6749 section 2.3.1 says, so a secret with "+" or
 * "%" sent unencoded fails with invalid_client.
 * Returns { issuer, port, provider (the oidc-provider instance), jwks (public),
 * tokenRequests, errors, setDown(bool), setDelay(ms), close() }. `tokenRequests` gets one
 * { authorization, contentType, params, status } per request to the token endpoint, to
 * assert that a code exchange did (or did not) happen and how the client authenticated;
 * `errors` collects the provider's server_error events. setDown(true) makes every
 * request answer 503 until setDown(false).
 */
export async function startProvider(opts = {}) {
  const { clients = [], alg = "RS256", accounts = {}, conformIdTokenClaims = true } = opts;
  let delayMs = opts.delayMs ?? 0;
  let down = false;
  let handler = (req, res) => { res.writeHead(503); res.end(); };

  // Listen first: the issuer names the port, and oidc-provider needs the issuer up front.
  // The node server wraps the Koa callback so that a test can take the provider down.
  const server = http.createServer((req, res) => {
    if (down) {
      res.writeHead(503, { "content-type": "text/plain", "retry-after": "1" });
      res.end("provider unavailable (test)");
      return;
    }
    if (delayMs > 0) setTimeout(() => handler(req, res), delayMs);
    else handler(req, res);
  });
  await new Promise((r) => server.listen(opts.port ?? 0, "127.0.0.1", r));
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  if (alg !== "RS256" && alg !== "ES256") throw new Error(`startProvider: unsupported alg ${alg}`);
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const kid = `${alg.toLowerCase()}-${crypto.randomBytes(4).toString("hex")}`;
  const signingKey = { ...(await exportJWK(privateKey)), kid, use: "sig", alg };
  const publicJwk = { ...(await exportJWK(publicKey)), kid, use: "sig", alg };

  const provider = quietly(() => new Provider(issuer, {
    clients: clients.map((c) => ({
      grant_types: ["authorization_code"],
      response_types: ["code"],
      token_endpoint_auth_method: "client_secret_basic",
      ...c,
      id_token_signed_response_alg: alg,
    })),
    jwks: { keys: [signingKey] },
    cookies: { keys: [crypto.randomBytes(32).toString("base64url")] },
    claims: CLAIMS,
    conformIdTokenClaims,
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: true },
      // Pages of our own, plain, so that oidc-provider has no default of its own to
      // announce; logoutAtProvider confirms the form by its fields.
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          ctx.type = "html";
          ctx.body = `<!doctype html><title>Sign out</title>${form}<button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>`;
        },
        async postLogoutSuccessSource(ctx) {
          ctx.type = "html";
          ctx.body = "<!doctype html><title>Signed out</title><p>Signed out.</p>";
        },
      },
      userinfo: { enabled: true },
    },
    ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
    // A page that a failing test can print: the error and its description, nothing else.
    async renderError(ctx, out) {
      const esc = (v) => String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
      ctx.type = "html";
      ctx.body = `<!doctype html><title>Error</title><pre>${esc(JSON.stringify(out))}</pre>`;
    },
    async findAccount(ctx, id) {
      return { accountId: id, async claims() { return { ...(accounts[id] ?? {}), sub: id }; } };
    },
    // No consent screen: the grant holds whatever the request asks for, so a sign-in is
    // the login form alone, as with a company's own identity provider.
    async loadExistingGrant(ctx) {
      const { oidc } = ctx;
      const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
      const grant = (grantId && (await oidc.provider.Grant.find(grantId)))
        || new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
      grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(" "));
      grant.addOIDCClaims([...oidc.requestParamClaims]);
      await grant.save();
      return grant;
    },
  }));

  const errors = [];
  provider.on("server_error", (ctx, err) => errors.push(err));
  const tokenRequests = [];
  provider.use(async (ctx, next) => {
    try {
      await next();
    } finally {
      if (ctx.oidc?.route === "token") {
        tokenRequests.push({
          authorization: ctx.get("authorization") || undefined,
          contentType: ctx.get("content-type") || undefined,
          params: { ...(ctx.oidc.body ?? {}) },
          status: ctx.status,
        });
      }
    }
  });
  handler = provider.callback();

  return {
    issuer,
    port,
    provider,
    jwks: { keys: [publicJwk] },
    tokenRequests,
    errors,
    setDown: (v = true) => { down = Boolean(v); },
    setDelay: (ms) => { delayMs = ms; },
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }),
  };
}
