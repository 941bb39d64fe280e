// Variant H: what a user would write instead of keycard, with hono and hono-sessions
// at their defaults (CookieStore: an iron-sealed cookie, re-sealed on every request
// because autoExtendExpiration is on). It does keycard's job in the same shape: strip
// the reserved X-Session* headers, hand the session to the origin as base64url JSON
// in X-Session with X-Session-Status, forward, apply the origin's X-Session-Set, and
// strip X-Session* from the response. With HONO_KV_STORE=1 (the cost mix's H-kv) the
// session lives in the SESSIONS KV namespace instead, through hono-sessions' Store
// interface, and the cookie carries only its encrypted id.
import { Hono } from "hono";
import { CookieStore, sessionMiddleware } from "hono-sessions";

/** hono-sessions' Store interface over a Workers KV namespace. */
class KvStore {
  constructor(kv) { this.kv = kv; }
  async getSessionById(sid) { return JSON.parse((await this.kv.get(sid)) ?? "null"); }
  async createSession(sid, data) { await this.kv.put(sid, JSON.stringify(data), { expirationTtl: 86400 }); }
  async persistSessionData(sid, data) { await this.kv.put(sid, JSON.stringify(data), { expirationTtl: 86400 }); }
  async deleteSession(sid) { await this.kv.delete(sid); }
}

const RESERVED = /^x-session(-|$)/i;

function b64url(text) {
  let bin = "";
  for (const b of new TextEncoder().encode(text)) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

let sessions; // built once per isolate, from the first request's env
const app = new Hono();

app.use("*", (c, next) => {
  const kv = c.env.HONO_KV_STORE === "1";
  // With a server-side store, hono-sessions sets its cookie before the handler runs;
  // hono carries such a header over to the handler's own Response only once `c.res`
  // exists, so without this the id cookie is silently lost and every request creates
  // a new session.
  if (kv) void c.res;
  sessions ??= sessionMiddleware({
    store: kv ? new KvStore(c.env.SESSIONS) : new CookieStore(),
    encryptionKey: c.env.SESSION_SECRET,
    expireAfterSeconds: 86400,
    cookieOptions: { path: "/", httpOnly: true, sameSite: "Lax" },
  });
  return sessions(c, next);
});

app.all("*", async (c) => {
  const session = c.get("session");
  const data = {};
  for (const [k, entry] of Object.entries(session.getCache()._data)) data[k] = entry.value;
  const valid = Object.keys(data).length > 0;

  const headers = new Headers(c.req.raw.headers);
  for (const name of [...headers.keys()]) if (RESERVED.test(name)) headers.delete(name);
  if (valid) headers.set("x-session", b64url(JSON.stringify(data)));
  headers.set("x-session-status", valid ? "valid" : "none");

  const url = new URL(c.req.url);
  const origin = new URL(c.env.ORIGIN_URL);
  url.protocol = origin.protocol;
  url.host = origin.host;
  const res = await fetch(url, { method: c.req.method, headers, body: c.req.raw.body, redirect: "manual" });

  const set = res.headers.get("x-session-set");
  if (set) {
    try {
      for (const [k, v] of Object.entries(JSON.parse(set))) {
        if (v === null) session.forget(k);
        else session.set(k, v);
      }
    } catch {
      console.error("bad X-Session-Set");
    }
  }
  const out = new Response(res.body, res);
  for (const name of [...out.headers.keys()]) if (RESERVED.test(name)) out.headers.delete(name);
  return out;
});

export default app;
