// Variants J, J-refresh and J-kv: the session layer people write themselves instead of
// keycard, in about forty lines of plain JS on WebCrypto. It strips the reserved
// X-Session* headers, splits Cookie, verifies an HMAC-SHA256 cookie, checks its expiry,
// forwards the data as base64url JSON in X-Session (with X-Session-Status) without the
// session cookie, signs a new cookie when the origin sends X-Session-Set (shallow merge)
// or the cookie is older than REFRESH_AFTER seconds, and strips X-Session* from the
// answer. With SESSION_STORE=kv (J-kv) the cookie signs a random id instead, and the
// session is a KV record under it (SESSIONS): one KV read per request, a write per sign.
const MAX_AGE = 86400;
const enc = new TextEncoder();
const reserved = (k) => k.startsWith("x-session");
const b64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const unb64 = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
let key; // the imported HMAC key, once per isolate (the secret, not any session)
const hmac = (env) => (key ??= crypto.subtle.importKey("raw", enc.encode(env.SESSION_SECRET), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]));
const kv = (env) => (env.SESSION_STORE === "kv" ? env.SESSIONS : undefined);

async function read(env, value, now) {
  const [body, tag] = value.split(".");
  if (!tag || !(await crypto.subtle.verify("HMAC", await hmac(env), unb64(tag), enc.encode(body)))) return null;
  const store = kv(env);
  const s = JSON.parse(store ? await store.get(body) : new TextDecoder().decode(unb64(body)));
  if (store && s) s.id = body;
  return s?.exp > now ? s : null;
}

async function sign(env, data, now, id) {
  const json = JSON.stringify({ data, iat: now, exp: now + MAX_AGE });
  const store = kv(env);
  const body = store ? (id ?? b64(crypto.getRandomValues(new Uint8Array(16)))) : b64(enc.encode(json));
  if (store) await store.put(body, json, { expirationTtl: MAX_AGE });
  const tag = b64(await crypto.subtle.sign("HMAC", await hmac(env), enc.encode(body)));
  return `j=${body}.${tag}; Path=/; Max-Age=${MAX_AGE}; HttpOnly; SameSite=Lax`;
}

export default {
  async fetch(request, env) {
    const now = Math.floor(Date.now() / 1000);
    const headers = new Headers(request.headers);
    for (const k of request.headers.keys()) if (reserved(k)) headers.delete(k);
    let session = null;
    const others = [];
    for (const c of (request.headers.get("cookie") ?? "").split(";")) {
      const pair = c.trim();
      if (!pair.startsWith("j=")) { if (pair) others.push(pair); continue; }
      session ??= await read(env, pair.slice(2), now).catch(() => null);
    }
    if (others.length) headers.set("cookie", others.join("; "));
    else headers.delete("cookie");
    if (session) headers.set("x-session", b64(enc.encode(JSON.stringify(session.data))));
    headers.set("x-session-status", session ? "valid" : "none");
    const url = request.url;
    const target = env.ORIGIN_URL + url.slice(url.indexOf("/", url.indexOf("//") + 2));
    const origin = await fetch(new Request(target, { method: request.method, headers, body: request.body, redirect: "manual" }));
    const set = origin.headers.get("x-session-set");
    const refresh = session && now - session.iat >= Number(env.REFRESH_AFTER ?? MAX_AGE);
    let strip = false;
    for (const k of origin.headers.keys()) if (reserved(k)) strip = true;
    if (!set && !refresh && !strip) return origin;
    const out = new Response(origin.body, origin);
    for (const k of origin.headers.keys()) if (reserved(k)) out.headers.delete(k);
    if (set || refresh) out.headers.append("set-cookie", await sign(env, { ...session?.data, ...(set ? JSON.parse(set) : {}) }, now, session?.id));
    return out;
  },
};
