// The floor variants F-hdr and F-kv: what any Worker that forwards the way keycard does
// must spend, with no session logic at all. It strips the reserved X-Session* headers,
// drops the session cookie, sets the four session headers (constant values: the same
// bytes K-cookie forwards) and X-Forwarded-*, forwards with the body streamed and
// redirects not followed, and scans the answer for X-Session* headers to strip. With a
// SESSIONS binding (F-kv) it also reads one KV record per request, as K-kv does. keycard's
// cost is K-cookie over F-hdr and K-kv over F-kv; the floor itself is F over A.
const RECORD_KEY = "floor-record";
let seeded = false;

const reserved = (k) => k.startsWith("x-session") && (k.length === 9 || k.charCodeAt(9) === 45);

export default {
  async fetch(request, env) {
    if (env.SESSIONS) {
      if (!seeded) {
        await env.SESSIONS.put(RECORD_KEY, JSON.stringify({ v: 1, data: JSON.parse(env.FLOOR_DATA) }));
        seeded = true;
      }
      if ((await env.SESSIONS.get(RECORD_KEY)) === null) return new Response("floor: no record", { status: 500 });
    }
    const h = request.headers;
    const headers = new Headers(h);
    for (const k of h.keys()) if (reserved(k)) headers.delete(k);
    headers.delete("cookie");
    headers.set("x-session", env.FLOOR_SESSION);
    headers.set("x-session-status", "valid");
    headers.set("x-session-id", "k6hY1mN0bq0bYwYl0G7l7r8vQm3u1m5qU0lQyqDq3mE");
    headers.set("x-session-expires", "1800000000");
    headers.set("x-forwarded-host", "127.0.0.1");
    headers.set("x-forwarded-proto", "http");
    const url = request.url;
    const target = env.ORIGIN_URL + url.slice(url.indexOf("/", url.indexOf("//") + 2));
    const origin = await fetch(new Request(target, { method: request.method, headers, body: request.body, redirect: "manual" }));
    for (const k of origin.headers.keys()) if (reserved(k)) return new Response("floor: reserved header", { status: 500 });
    return origin;
  },
};
