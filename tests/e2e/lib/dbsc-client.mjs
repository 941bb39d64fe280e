// A small device-bound session (DBSC) "browser" for tests that drive a server over real
// HTTP: what Chromium does, on Node's WebCrypto, and, on request, what a thief or a
// broken client would do instead.
//
// It models the W3C webappsec-dbsc Editor's Draft where Chromium 150 agrees with it, and
// Chromium 150 where they differ (dbsc-tools.test.mjs holds the two side by side):
//
// - Registration. A response's `Secure-Session-Registration` is an RFC 8941 list; each
//   member is an inner list of algorithm tokens (`(ES256 RS256)`) with a `path` string
//   and optional `challenge` and `authorization` strings. Each member is one
//   registration: a key pair of the first algorithm the client supports, then a POST to
//   `path` resolved against the response's URL, with an empty body, the cookies, and
//   `Secure-Session-Response: <JWT>` (the bare JWT, not a structured-field string).
// - The JWT. Header `{"alg","jwk","typ":"dbsc+jwt"}`, payload `{"jti":challenge}` plus
//   `"authorization"` only when the registration had one, and nothing else (no `aud`,
//   `iat`). Chromium writes every JSON object with its members sorted by name, the jwk
//   too (`{"crv","kty","x","y"}`, `{"e","kty","n"}`); so does this client. ES256 is a raw
//   r||s signature (64 bytes), RS256 RSASSA-PKCS1-v1_5 with SHA-256 over a 2048-bit key.
// - The answer: the session configuration JSON (`session_identifier`, `refresh_url`,
//   `scope`, `credentials`, `continue`, which defaults to true) and the cookies.
// - Refresh. A POST to `refresh_url` with `Sec-Secure-Session-Id` and no proof first; on
//   `403` with `Secure-Session-Challenge: "<c>";id="<id>"`, a second POST with a proof:
//   header `{"alg","typ"}`, with no jwk, payload `{"jti":c}`, signed by the bound key.
//
// Where Chromium 150 differs from the draft:
// - `Sec-Secure-Session-Id` carries the session identifier's bytes as they are, not as a
//   structured-field string: `es 1`, not `"es 1"` (seen with an identifier that is not a
//   token). `idFormat: "sf-string"` sends the draft's form instead.
// - A refresh proof's header has no `jwk`, and neither JWT has `aud` or `iat`.
//
// Misbehaviour, for negative tests (the `misbehave` option of `register` and `refresh`):
//   otherKey: true       sign with a fresh key, not the registered one (the jwk in a
//                        registration stays the honest key's)
//   algNone: true        `"alg":"none"` and an empty signature
//   swapJwk: true        a refresh proof carrying the jwk of a fresh key, signed with it
//   replay: "<jwt>"      send this proof as it is, signing nothing (`session.proofs` keeps
//                        every proof sent)
//   challenge: "<c>"     sign this challenge, straight away, rather than ask for one: a
//                        used one, or one issued to another session
//   omitSessionId: true  no `Sec-Secure-Session-Id`
//   sessionId: "<id>"    another identifier in `Sec-Secure-Session-Id`
import { webcrypto as crypto } from "node:crypto";

import { CookieJar } from "tough-cookie";

/** What `generateKey` and `sign` use for each JWS algorithm the client speaks. */
const ALGS = {
  ES256: { gen: { name: "ECDSA", namedCurve: "P-256" }, sign: { name: "ECDSA", hash: "SHA-256" }, jwk: ["crv", "kty", "x", "y"] },
  RS256: {
    gen: { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
    sign: { name: "RSASSA-PKCS1-v1_5" },
    jwk: ["e", "kty", "n"],
  },
};
export const SUPPORTED_ALGS = Object.keys(ALGS);

// ------------------------------------------------------------ structured fields --
// RFC 8941 by hand, the part DBSC uses: lists, inner lists, tokens, strings, integers,
// booleans and parameters (no npm package of it is in the project).

/** An RFC 8941 list: `[{ value, params }]`, where an inner list's value is an array of
 * `{ value, params }`. Throws on anything malformed. */
export function parseSfList(text) {
  const s = { text, i: 0 };
  const out = [];
  skip(s, " \t");
  while (s.i < text.length) {
    out.push(peek(s) === "(" ? parseInnerList(s) : parseItem(s));
    skip(s, " \t");
    if (s.i >= text.length) break;
    expect(s, ",");
    skip(s, " \t");
    if (s.i >= text.length) throw new SyntaxError("a structured-field list ends with a comma");
  }
  return out;
}

const peek = (s) => s.text[s.i];
const skip = (s, chars) => {
  while (s.i < s.text.length && chars.includes(s.text[s.i])) s.i++;
};
function expect(s, ch) {
  if (s.text[s.i] !== ch) throw new SyntaxError(`expected ${ch} at ${s.i} of ${JSON.stringify(s.text)}`);
  s.i++;
}

function parseInnerList(s) {
  expect(s, "(");
  const value = [];
  for (;;) {
    skip(s, " ");
    if (peek(s) === ")") break;
    value.push(parseItem(s));
    if (peek(s) !== " " && peek(s) !== ")") throw new SyntaxError(`bad inner list at ${s.i}`);
  }
  s.i++;
  return { value, params: parseParams(s) };
}

function parseItem(s) {
  return { value: parseBare(s), params: parseParams(s) };
}

function parseParams(s) {
  const params = {};
  while (peek(s) === ";") {
    s.i++;
    skip(s, " ");
    const key = /^[a-z*][a-z0-9_\-.*]*/.exec(s.text.slice(s.i))?.[0];
    if (!key) throw new SyntaxError(`bad parameter key at ${s.i}`);
    s.i += key.length;
    if (peek(s) === "=") {
      s.i++;
      params[key] = parseBare(s);
    } else {
      params[key] = true;
    }
  }
  return params;
}

function parseBare(s) {
  const rest = s.text.slice(s.i);
  let m;
  if (rest[0] === '"') {
    let out = "";
    for (let j = 1; j < rest.length; j++) {
      const c = rest[j];
      if (c === "\\" && (rest[j + 1] === '"' || rest[j + 1] === "\\")) out += rest[++j];
      else if (c === '"') {
        s.i += j + 1;
        return out;
      } else if (c < " " || c > "~" || c === "\\") throw new SyntaxError(`bad string character at ${s.i + j}`);
      else out += c;
    }
    throw new SyntaxError("unterminated string");
  }
  if ((m = /^\?[01]/.exec(rest))) {
    s.i += 2;
    return m[0] === "?1";
  }
  if ((m = /^-?[0-9]{1,15}(?![0-9.])/.exec(rest))) {
    s.i += m[0].length;
    return Number(m[0]);
  }
  if ((m = /^[A-Za-z*][A-Za-z0-9!#$%&'*+\-.^_`|~:/]*/.exec(rest))) {
    s.i += m[0].length;
    return m[0];
  }
  throw new SyntaxError(`unsupported structured-field item at ${s.i} of ${JSON.stringify(s.text)}`);
}

/** An RFC 8941 string, quoted and escaped. */
export const sfString = (v) => `"${String(v).replace(/[\\"]/g, "\\$&")}"`;

// -------------------------------------------------------------------- headers --

/** Each registration a `Secure-Session-Registration` value offers: `{ algs, path,
 * challenge, authorization }` (the last two undefined when absent). Members that are not
 * inner lists of tokens with a `path` string are skipped, as Chromium skips them. */
export function parseRegistrations(header) {
  return parseSfList(header)
    .filter((m) => Array.isArray(m.value) && typeof m.params.path === "string")
    .map((m) => ({
      algs: m.value.map((i) => i.value).filter((v) => typeof v === "string"),
      path: m.params.path,
      challenge: typeof m.params.challenge === "string" ? m.params.challenge : undefined,
      authorization: typeof m.params.authorization === "string" ? m.params.authorization : undefined,
    }));
}

/** The challenges of a `Secure-Session-Challenge` value: `[{ challenge, id }]`, `id`
 * undefined when the member names no session. */
export function parseChallenges(header) {
  return parseSfList(header)
    .filter((m) => typeof m.value === "string" && !Array.isArray(m.value))
    .map((m) => ({ challenge: m.value, id: typeof m.params.id === "string" ? m.params.id : undefined }));
}

// ------------------------------------------------------------------------ JWS --

/** JSON with every object's members sorted by name, as Chromium's JSON writer has them
 * (members whose value is undefined left out, as JSON.stringify does). */
export function sortedJson(value) {
  if (Array.isArray(value)) return `[${value.map(sortedJson).join(",")}]`;
  if (value && typeof value === "object") {
    const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${sortedJson(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

const b64url = (bytes) => Buffer.from(bytes).toString("base64url");

/** A fresh key pair for `alg` (ES256 or RS256): `{ alg, privateKey, publicKey, jwk }`,
 * `jwk` holding only the public members Chromium sends. */
export async function generateKey(alg) {
  const spec = ALGS[alg];
  if (!spec) throw new Error(`unsupported algorithm ${alg}`);
  const { privateKey, publicKey } = await crypto.subtle.generateKey(spec.gen, true, ["sign", "verify"]);
  const full = await crypto.subtle.exportKey("jwk", publicKey);
  const jwk = Object.fromEntries(spec.jwk.map((k) => [k, full[k]]));
  return { alg, privateKey, publicKey, jwk };
}

/** A compact JWS of `header` and `payload` signed by `key` (from `generateKey`);
 * `alg: "none"` in the header gives an empty signature. */
export async function signJwt(header, payload, key) {
  const input = `${b64url(sortedJson(header))}.${b64url(sortedJson(payload))}`;
  if (header.alg === "none") return `${input}.`;
  const sig = await crypto.subtle.sign(ALGS[key.alg].sign, key.privateKey, new TextEncoder().encode(input));
  return `${input}.${b64url(new Uint8Array(sig))}`;
}

/** A JWT's header and payload, decoded, and its signature's bytes; no check at all. */
export function decodeJwt(jwt) {
  const [h, p, s] = jwt.split(".");
  const json = (x) => JSON.parse(Buffer.from(x, "base64url").toString("utf8"));
  return { header: json(h), payload: json(p), signature: Buffer.from(s ?? "", "base64url") };
}

// --------------------------------------------------------------------- client --

/** A DBSC session as registered: `{ id, refreshUrl, config, key, proofs, ended }`. */
export class DbscClient {
  /** `algs`: the algorithms this client will use, in its order of preference (a
   * registration's own order decides between those it offers, as in Chromium). */
  constructor({ algs = SUPPORTED_ALGS, idFormat = "chrome" } = {}) {
    this.algs = algs;
    this.idFormat = idFormat;
    this.jar = new CookieJar();
    this.sessions = new Map();
  }

  /** A fetch through the cookie jar, redirects not followed; `url` absolute. */
  async fetch(url, { method = "GET", headers = {}, body } = {}) {
    const cookie = await this.jar.getCookieString(url);
    const res = await fetch(url, {
      method,
      body,
      redirect: "manual",
      headers: { ...(cookie ? { cookie } : {}), ...headers },
    });
    for (const sc of res.headers.getSetCookie()) await this.jar.setCookie(sc, url, { ignoreError: true });
    return res;
  }

  /** GETs `url`, then registers every session its response offers; `{ response,
   * sessions }`. `misbehave` applies to every registration. */
  async visit(url, { misbehave = {} } = {}) {
    const response = await this.fetch(url);
    const header = response.headers.get("secure-session-registration");
    const sessions = [];
    for (const reg of header ? parseRegistrations(header) : []) sessions.push(await this.register(reg, url, { misbehave }));
    return { response, sessions };
  }

  /** One registration (from `parseRegistrations`) of a response to `pageUrl`. Returns the
   * session, with `registration: { url, jwt, status }`; `id` is undefined unless the
   * server answered 200 with a configuration. */
  async register(reg, pageUrl, { misbehave = {} } = {}) {
    const alg = reg.algs.find((a) => this.algs.includes(a));
    if (!alg) throw new Error(`no algorithm in common with ${JSON.stringify(reg.algs)}`);
    const key = await generateKey(alg);
    const payload = { jti: reg.challenge, ...(reg.authorization !== undefined ? { authorization: reg.authorization } : {}) };
    const jwt = await this.#prove({ alg, jwk: key.jwk, typ: "dbsc+jwt" }, payload, key, misbehave);
    const url = new URL(reg.path, pageUrl).href;
    const res = await this.fetch(url, { method: "POST", headers: { "secure-session-response": jwt } });
    const session = { key, proofs: [jwt], registration: { url, jwt, status: res.status }, ended: false };
    if (res.status === 200) this.#configure(session, await res.json(), url);
    return session;
  }

  /** A refresh of `session` as Chromium does it; `{ status, steps: [{ proof, status,
   * challenge }] }`, one step per POST. The session's configuration and cookies follow
   * a 200. */
  async refresh(session, { misbehave = {} } = {}) {
    const id = misbehave.sessionId ?? session.id;
    const headers = misbehave.omitSessionId ? {} : { "sec-secure-session-id": this.idFormat === "sf-string" ? sfString(id) : id };
    const steps = [];
    const post = async (proof) => {
      const res = await this.fetch(session.refreshUrl, {
        method: "POST",
        headers: { ...headers, ...(proof ? { "secure-session-response": proof } : {}) },
      });
      const raw = res.headers.get("secure-session-challenge");
      const challenge = raw ? parseChallenges(raw).find((c) => c.id === undefined || c.id === id)?.challenge : undefined;
      steps.push({ proof, status: res.status, challenge });
      return { res, challenge };
    };
    let last;
    if (misbehave.replay !== undefined || misbehave.challenge !== undefined) {
      last = await post(misbehave.replay ?? (await this.#refreshProof(session, misbehave.challenge, misbehave)));
    } else {
      last = await post(undefined);
      if (last.res.status === 403 && last.challenge !== undefined) {
        last = await post(await this.#refreshProof(session, last.challenge, misbehave));
      }
    }
    if (last.res.status === 200) this.#configure(session, await last.res.json(), session.refreshUrl);
    return { status: last.res.status, steps };
  }

  async #refreshProof(session, challenge, misbehave) {
    const header = { alg: session.key.alg, typ: "dbsc+jwt" };
    let key = session.key;
    if (misbehave.swapJwk) {
      key = await generateKey(session.key.alg);
      header.jwk = key.jwk;
    }
    const jwt = await this.#prove(header, { jti: challenge }, key, misbehave);
    session.proofs.push(jwt);
    return jwt;
  }

  async #prove(header, payload, key, misbehave) {
    if (misbehave.algNone) return signJwt({ ...header, alg: "none" }, payload, key);
    if (misbehave.otherKey) return signJwt(header, payload, await generateKey(key.alg));
    return signJwt(header, payload, key);
  }

  #configure(session, config, baseUrl) {
    session.config = config;
    session.id = config.session_identifier ?? session.id;
    if (config.refresh_url) session.refreshUrl = new URL(config.refresh_url, baseUrl).href;
    session.ended = config.continue === false;
    if (session.id !== undefined) this.sessions.set(session.id, session);
  }
}
