// Signs in at an OpenID Provider without a browser: Node's fetch with redirects taken by
// hand and a tough-cookie jar, through oidc-provider's development login form. It stops
// at the redirect back to the relying party and hands that URL to the test unfetched, so
// the test decides how (and whether) the callback reaches keycard.
import crypto from "node:crypto";
import { CookieJar } from "tough-cookie";

const MAX_STEPS = 20;

/** A PKCE pair: `verifier` (43 url-safe characters) and its S256 `challenge`. */
export function pkcePair() {
  const verifier = crypto.randomBytes(32).toString("base64url");
  return { verifier, challenge: crypto.createHash("sha256").update(verifier).digest("base64url") };
}

const decodeEntities = (s) =>
  s.replace(/&(#x[0-9a-f]+|#[0-9]+|amp|lt|gt|quot|apos|#39);/gi, (m, e) => {
    const l = e.toLowerCase();
    if (l === "amp") return "&";
    if (l === "lt") return "<";
    if (l === "gt") return ">";
    if (l === "quot") return '"';
    if (l === "apos") return "'";
    if (l.startsWith("#x")) return String.fromCodePoint(parseInt(l.slice(2), 16));
    return String.fromCodePoint(parseInt(l.slice(1), 10));
  });

const attr = (tag, name) => {
  const m = tag.match(new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s>]+))`, "i"));
  return m ? decodeEntities(m[1] ?? m[2] ?? m[3]) : undefined;
};

/**
 * The first <form> of a page: its method, action and fields (name -> value): its inputs,
 * and the first named submit button, inside it or tied to it by a `form` attribute (as
 * oidc-provider's sign-out page does).
 */
export function parseForm(html) {
  const m = html.match(/<form\b[^>]*>([\s\S]*?)<\/form>/i);
  if (!m) return undefined;
  const open = m[0].match(/<form\b[^>]*>/i)[0];
  const id = attr(open, "id");
  const inputs = {};
  for (const [tag] of m[1].matchAll(/<input\b[^>]*>/gi)) {
    const name = attr(tag, "name");
    if (name !== undefined && !(name in inputs)) inputs[name] = attr(tag, "value") ?? "";
  }
  for (const [tag] of html.matchAll(/<button\b[^>]*>/gi)) {
    const name = attr(tag, "name");
    const owner = attr(tag, "form");
    const inside = m[1].includes(tag);
    if (name === undefined || (attr(tag, "type") ?? "submit").toLowerCase() !== "submit") continue;
    if (inside || (id !== undefined && owner === id)) {
      inputs[name] ??= attr(tag, "value") ?? "";
      break;
    }
  }
  return { method: (attr(open, "method") ?? "get").toUpperCase(), action: attr(open, "action"), inputs };
}

async function step(url, jar, init = {}) {
  const headers = { ...(init.headers ?? {}) };
  const cookie = await jar.getCookieString(url);
  if (cookie) headers.cookie = cookie;
  const res = await fetch(url, { ...init, headers, redirect: "manual" });
  for (const c of res.headers.getSetCookie()) await jar.setCookie(c, url, { ignoreError: true });
  return res;
}

/**
 * Follows `authorizeUrl` through the provider's login form as user `login` and returns
 * the redirect back to the relying party (its redirect_uri with code, state and iss, or
 * an error) as a string, without requesting it. The form's action and hidden fields
 * come from the page itself. `jar` carries the provider's cookies, so a second call
 * with the same jar finds the provider's session and sees no form.
 * Options: password ("any"; the dev form takes any), redirectUri (where to stop when
 * the URL has no redirect_uri parameter; otherwise the first redirect off the
 * provider's origin).
 */
export async function loginAtProvider(authorizeUrl, login, jar = new CookieJar(), options = {}) {
  const start = new URL(authorizeUrl);
  const stopAt = options.redirectUri ?? start.searchParams.get("redirect_uri");
  const found = await walk(start, jar, stopAt, (fields) => {
    if ("login" in fields) fields.login = login;
    if ("password" in fields) fields.password = options.password ?? "any";
  });
  if (found.location === undefined) throw new Error(`loginAtProvider: ${found.status} at ${found.url}, not a redirect or a form:\n${found.text.slice(0, 600)}\nsteps:\n${found.trail.join("\n")}`);
  return found.location;
}

/**
 * Signs out at the provider's end_session_endpoint (`endSessionUrl`, with whatever
 * id_token_hint, post_logout_redirect_uri and state the relying party put on it),
 * confirming its "sign me out?" form. Returns the redirect to post_logout_redirect_uri
 * unfetched, or null when the provider ends on its own "signed out" page.
 */
export async function logoutAtProvider(endSessionUrl, jar) {
  const start = new URL(endSessionUrl);
  const found = await walk(start, jar, start.searchParams.get("post_logout_redirect_uri"), () => {});
  if (found.location !== undefined) return found.location;
  if (found.status === 200) return null;
  throw new Error(`logoutAtProvider: ${found.status} at ${found.url}:\n${found.text.slice(0, 600)}`);
}

/**
 * Requests `start` and on, taking redirects and submitting forms (`fill` may change
 * their fields), until a redirect to `stopAt` (or, without it, off the start's origin):
 * { location }. A page that is neither: { status, url, text, trail }.
 */
async function walk(start, jar, stopAt, fill) {
  const isBack = (u) => {
    if (stopAt) return u.href === stopAt || u.href.startsWith(stopAt.includes("?") ? `${stopAt}&` : `${stopAt}?`) || u.href.startsWith(`${stopAt}#`);
    return u.origin !== start.origin;
  };
  let url = start;
  let init = {};
  const trail = [];
  for (let i = 0; i < MAX_STEPS; i++) {
    trail.push(`${init.method ?? "GET"} ${url.href}`);
    const res = await step(url.href, jar, init);
    init = {};
    if (res.status >= 300 && res.status < 400) {
      await res.body?.cancel();
      const next = new URL(res.headers.get("location"), url);
      if (isBack(next)) return { location: next.href };
      url = next;
      continue;
    }
    const text = await res.text();
    const form = res.status === 200 && /html/i.test(res.headers.get("content-type") ?? "") ? parseForm(text) : undefined;
    if (!form) return { status: res.status, url: url.href, text, trail };
    const fields = { ...form.inputs };
    fill(fields);
    const action = new URL(form.action ?? url.href, url);
    if (form.method === "POST") {
      init = { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(fields).toString() };
    } else {
      for (const [k, v] of Object.entries(fields)) action.searchParams.set(k, v);
    }
    url = action;
  }
  throw new Error(`no way back after ${MAX_STEPS} steps:\n${trail.join("\n")}`);
}
