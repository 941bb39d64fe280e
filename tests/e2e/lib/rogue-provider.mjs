// A hand-written OpenID Provider that lies on request. oidc-provider (provider.mjs) will
// not sign a token with alg "none", for the wrong audience or with a bad signature; this
// one does, so a test can show keycard refuses each. Everything else about it is as a
// real provider's: discovery, a JWKS, PKCE S256 checked at the token endpoint, codes
// that work once.
import http from "node:http";
import crypto from "node:crypto";
import { generateKeyPair, exportJWK, exportSPKI, SignJWT } from "jose";

/** Every mode setMode accepts; each shapes the next token endpoint answer. */
export const MODES = [
  "good", "alg-none", "hs256-with-public-key", "hs256-with-public-jwk", "wrong-aud", "wrong-nonce",
  "wrong-iss", "expired", "unknown-kid", "html", "error-500", "bad-signature", "es256",
  "no-email-verified", "azp-missing", "huge",
];

const b64json = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");

/**
 * The client id and secret of an `Authorization: Basic` header, each form-urlencoded
 * inside the base64 as RFC 6749 section 2.3.1 has it (so "a+b" is "a b", "%3A" is ":").
 * Undefined for anything else.
 */
export function parseBasicAuth(header) {
  const m = /^Basic ([A-Za-z0-9+/=]+)$/i.exec(header ?? "");
  if (!m) return undefined;
  const raw = Buffer.from(m[1], "base64").toString("utf8");
  const i = raw.indexOf(":");
  if (i < 0) return undefined;
  const dec = (s) => decodeURIComponent(s.replace(/\+/g, " "));
  try {
    return { id: dec(raw.slice(0, i)), secret: dec(raw.slice(i + 1)) };
  } catch {
    return undefined;
  }
}

/**
 * Starts the rogue provider on a free port of 127.0.0.1 (issuer `http://127.0.0.1:<port>`).
 * Options:
 *   clients  [{ client_id, client_secret }]: when given, the token endpoint checks the
 *            client (client_secret_basic, or client_secret_post) and answers 401
 *            invalid_client otherwise; when not, any client is taken
 *   claims   claims of the signed-in user (default sub "alice", a verified
 *            alice@corp.example, name "Alice", groups ["eng"])
 * The authorization endpoint signs nobody in: it redirects straight back to redirect_uri
 * with code, state and iss, remembering the request's nonce, PKCE challenge, client and
 * redirect_uri for that code. The token endpoint checks those as a real provider does
 * (400 invalid_grant for an unknown or used code, another redirect_uri, or a code_verifier
 * that is not the challenge's) and then answers as the mode says:
 *   good                   an RS256 ID token, right in every way
 *   alg-none               header alg "none", no signature
 *   hs256-with-public-key  HS256, keyed with the RSA public key's SPKI PEM text, kid of the RSA key
 *   hs256-with-public-jwk  the same, keyed with the public JWK's JSON text
 *   wrong-aud  wrong-nonce  wrong-iss  expired (exp and iat 10 and 20 minutes ago)
 *   unknown-kid            signed by an RSA key the JWKS does not publish, under its own kid
 *   html                   200 text/html, no JSON at all
 *   huge                   200 JSON of 32 MB, chunked (no Content-Length), in 64 KB writes
 *   error-500              500 {"error":"server_error"}
 *   bad-signature          the good token with the last byte of its signature flipped
 *   es256                  a right ES256 ID token (the JWKS holds an EC key too)
 *   no-email-verified      email present, email_verified absent
 *   azp-missing            aud [client_id, "other"] and no azp
 * Returns { issuer, port, jwks, setMode(mode), setClaims(claims), setIssParam(v),
 * tokenRequests (a count), lastTokenRequest { authorization, contentType, body, params },
 * authorizeRequests [params...], jwksRequests (a count), close() }.
 * setClaims merges into the claims (a key set to undefined removes it) and also sets
 * what userinfo answers. setIssParam(v) changes the authorization response's iss:
 * undefined (the issuer, default), null (left out) or any string.
 */
export async function startRogueProvider(opts = {}) {
  const clients = opts.clients ? new Map(opts.clients.map((c) => [c.client_id, c])) : undefined;
  let claims = opts.claims ?? { sub: "alice", email: "alice@corp.example", email_verified: true, name: "Alice", groups: ["eng"] };
  let mode = "good";
  let issParam;
  const codes = new Map();
  const accessTokens = new Set();

  const rsa = await generateKeyPair("RS256", { extractable: true });
  const ec = await generateKeyPair("ES256", { extractable: true });
  const stranger = await generateKeyPair("RS256", { extractable: true });
  const rsKid = "rogue-rs256";
  const esKid = "rogue-es256";
  const rsPublicJwk = { ...(await exportJWK(rsa.publicKey)), kid: rsKid, use: "sig", alg: "RS256" };
  const jwks = {
    keys: [rsPublicJwk, { ...(await exportJWK(ec.publicKey)), kid: esKid, use: "sig", alg: "ES256" }],
  };
  const rsPem = await exportSPKI(rsa.publicKey);

  const state = {
    tokenRequests: 0,
    lastTokenRequest: undefined,
    authorizeRequests: [],
    jwksRequests: 0,
  };

  let issuer;
  const json = (res, status, body, extra = {}) => {
    res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store", ...extra });
    res.end(JSON.stringify(body));
  };
  const hs256 = (header, payload, key) => {
    const input = `${b64json(header)}.${b64json(payload)}`;
    return `${input}.${crypto.createHmac("sha256", key).update(input).digest("base64url")}`;
  };
  const sign = (payload, alg, key, kid) => new SignJWT(payload).setProtectedHeader({ alg, kid, typ: "JWT" }).sign(key);

  async function idToken(grant) {
    const now = Math.floor(Date.now() / 1000);
    const payload = { iss: issuer, aud: grant.client_id, iat: now, exp: now + 300, nonce: grant.nonce, ...claims };
    if (grant.nonce === undefined) delete payload.nonce;
    for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
    switch (mode) {
      case "alg-none":
        return `${b64json({ alg: "none", typ: "JWT" })}.${b64json(payload)}.`;
      case "hs256-with-public-key":
        return hs256({ alg: "HS256", kid: rsKid, typ: "JWT" }, payload, rsPem);
      case "hs256-with-public-jwk":
        return hs256({ alg: "HS256", kid: rsKid, typ: "JWT" }, payload, JSON.stringify(rsPublicJwk));
      case "wrong-aud":
        return sign({ ...payload, aud: "someone-else" }, "RS256", rsa.privateKey, rsKid);
      case "wrong-nonce":
        return sign({ ...payload, nonce: "not-the-nonce-that-was-sent" }, "RS256", rsa.privateKey, rsKid);
      case "wrong-iss":
        return sign({ ...payload, iss: `${issuer}/evil` }, "RS256", rsa.privateKey, rsKid);
      case "expired":
        return sign({ ...payload, iat: now - 1200, exp: now - 600 }, "RS256", rsa.privateKey, rsKid);
      case "unknown-kid":
        return sign(payload, "RS256", stranger.privateKey, "not-in-the-jwks");
      case "bad-signature": {
        const [h, p, s] = (await sign(payload, "RS256", rsa.privateKey, rsKid)).split(".");
        const sig = Buffer.from(s, "base64url");
        sig[sig.length - 1] ^= 0x01;
        return `${h}.${p}.${sig.toString("base64url")}`;
      }
      case "es256":
        return sign(payload, "ES256", ec.privateKey, esKid);
      case "no-email-verified": {
        const { email_verified: _, ...rest } = payload;
        return sign({ email: "alice@corp.example", ...rest }, "RS256", rsa.privateKey, rsKid);
      }
      case "azp-missing": {
        const { azp: _, ...rest } = payload;
        return sign({ ...rest, aud: [grant.client_id, "other"] }, "RS256", rsa.privateKey, rsKid);
      }
      default:
        return sign(payload, "RS256", rsa.privateKey, rsKid);
    }
  }

  async function token(req, res, body) {
    state.tokenRequests++;
    const params = Object.fromEntries(new URLSearchParams(body));
    state.lastTokenRequest = {
      authorization: req.headers.authorization,
      contentType: req.headers["content-type"],
      body,
      params,
    };
    if (mode === "error-500") return json(res, 500, { error: "server_error" });
    if (mode === "huge") {
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"padding":"');
      const chunk = "x".repeat(64 * 1024);
      let left = 512;
      const more = () => {
        while (left > 0) {
          left--;
          if (!res.write(chunk)) return res.once("drain", more);
        }
        res.end('"}');
      };
      res.on("error", () => {});
      // Whether the client stopped reading before the end (keycard's cap).
      state.hugeSent = undefined;
      res.on("close", () => { state.hugeSent = res.writableFinished; });
      return more();
    }
    if (mode === "html") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      return res.end("<!doctype html><html><body><h1>Sign in</h1><p>Please log in to continue.</p></body></html>");
    }
    if (!/^application\/x-www-form-urlencoded\b/i.test(req.headers["content-type"] ?? "")) {
      return json(res, 400, { error: "invalid_request", error_description: "form-urlencoded body required" });
    }
    if (params.grant_type !== "authorization_code") return json(res, 400, { error: "unsupported_grant_type" });

    const basic = parseBasicAuth(req.headers.authorization);
    const clientId = basic?.id ?? params.client_id;
    if (clients) {
      const c = clients.get(clientId);
      const secret = basic ? basic.secret : params.client_secret;
      if (!c || secret === undefined || secret !== c.client_secret || (basic && params.client_secret !== undefined)) {
        return json(res, 401, { error: "invalid_client" }, { "www-authenticate": 'Basic realm="rogue"' });
      }
    }

    const grant = codes.get(params.code);
    codes.delete(params.code);
    if (!grant) return json(res, 400, { error: "invalid_grant", error_description: "unknown or used code" });
    if (clientId !== undefined && clientId !== grant.client_id) return json(res, 400, { error: "invalid_grant", error_description: "code issued to another client" });
    if (params.redirect_uri !== grant.redirect_uri) return json(res, 400, { error: "invalid_grant", error_description: "redirect_uri mismatch" });
    if (grant.code_challenge !== undefined || params.code_verifier !== undefined) {
      const ok = grant.code_challenge_method === "S256"
        && typeof params.code_verifier === "string"
        && /^[A-Za-z0-9\-._~]{43,128}$/.test(params.code_verifier)
        && crypto.createHash("sha256").update(params.code_verifier).digest("base64url") === grant.code_challenge;
      if (!ok) return json(res, 400, { error: "invalid_grant", error_description: "PKCE verification failed" });
    }

    const accessToken = crypto.randomBytes(24).toString("base64url");
    accessTokens.add(accessToken);
    return json(res, 200, {
      access_token: accessToken,
      token_type: "Bearer",
      expires_in: 300,
      scope: grant.scope,
      id_token: await idToken(grant),
    });
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      try {
        const body = Buffer.concat(chunks).toString("utf8");
        const u = new URL(req.url, issuer);
        if (u.pathname === "/.well-known/openid-configuration") {
          return json(res, 200, {
            issuer,
            authorization_endpoint: `${issuer}/authorize`,
            token_endpoint: `${issuer}/token`,
            jwks_uri: `${issuer}/jwks`,
            userinfo_endpoint: `${issuer}/userinfo`,
            response_types_supported: ["code"],
            subject_types_supported: ["public"],
            id_token_signing_alg_values_supported: ["RS256", "ES256"],
            scopes_supported: ["openid", "email", "profile", "groups"],
            code_challenge_methods_supported: ["S256"],
            token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
            authorization_response_iss_parameter_supported: true,
          });
        }
        if (u.pathname === "/jwks") {
          state.jwksRequests++;
          return json(res, 200, jwks, { "content-type": "application/jwk-set+json" });
        }
        if (u.pathname === "/authorize") {
          const p = Object.fromEntries(u.searchParams);
          state.authorizeRequests.push(p);
          if (!p.redirect_uri) return json(res, 400, { error: "invalid_request", error_description: "redirect_uri required" });
          const code = crypto.randomBytes(24).toString("base64url");
          codes.set(code, p);
          const back = new URL(p.redirect_uri);
          back.searchParams.set("code", code);
          if (p.state !== undefined) back.searchParams.set("state", p.state);
          if (issParam !== null) back.searchParams.set("iss", issParam ?? issuer);
          res.writeHead(302, { location: back.href, "cache-control": "no-store" });
          return res.end();
        }
        if (u.pathname === "/token" && req.method === "POST") return await token(req, res, body);
        if (u.pathname === "/userinfo") {
          const m = /^Bearer (.+)$/i.exec(req.headers.authorization ?? "");
          if (!m || !accessTokens.has(m[1])) return json(res, 401, { error: "invalid_token" }, { "www-authenticate": 'Bearer error="invalid_token"' });
          return json(res, 200, Object.fromEntries(Object.entries(claims).filter(([, v]) => v !== undefined)));
        }
        json(res, 404, { error: "not_found" });
      } catch (err) {
        json(res, 500, { error: "server_error", error_description: String(err) });
      }
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  issuer = `http://127.0.0.1:${port}`;

  return {
    issuer,
    port,
    jwks,
    get tokenRequests() { return state.tokenRequests; },
    get lastTokenRequest() { return state.lastTokenRequest; },
    get authorizeRequests() { return state.authorizeRequests; },
    get jwksRequests() { return state.jwksRequests; },
    /** After a `huge` answer: whether it was sent to its end (false: the client hung up). */
    get hugeSent() { return state.hugeSent; },
    setMode(m) {
      if (!MODES.includes(m)) throw new Error(`rogue provider: unknown mode ${m}`);
      mode = m;
    },
    setClaims(c) { claims = { ...claims, ...c }; },
    setIssParam(v) { issParam = v; },
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }),
  };
}
