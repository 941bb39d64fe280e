// keycard's Worker entry: the driver of the Rust core's exchange (src/exchange.rs).
//
// For each request the core is asked, through synchronous wasm calls, what to do next:
// read or write a KV record, forward to the origin, serve an inspector asset, or
// answer. This file does exactly that I/O and hands each result back. All decisions
// (sessions, cookies, policies, errors) are made in Rust; the awaits live here, so no
// Rust future or promise plumbing runs per request (BENCHMARKS.md has the numbers).
// scripts/build.sh bundles it with the wasm-bindgen glue into build/index.js.
import { Do, Exchange, __wbg_reset_state } from "./index.js";

const TEXT = { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" };

const message = (e) => (e instanceof Error ? e.message : String(e));

/** The `X-Session*` names among `headers` (lower-cased, as Headers keeps them). */
function reservedNames(headers) {
  const out = [];
  for (const k of headers.keys()) {
    if (k.startsWith("x-session") && (k.length === 9 || k.charCodeAt(9) === 45)) out.push(k);
  }
  return out;
}

/** The origin's response without its reserved headers, with `setCookie` appended. */
function rewrap(origin, names, setCookie) {
  const headers = new Headers(origin.headers);
  for (const n of names) headers.delete(n);
  if (setCookie !== undefined) headers.append("set-cookie", setCookie);
  const init = { status: origin.status, statusText: origin.statusText, headers };
  // A WebSocket upgrade: hand the socket through.
  if (origin.status === 101) init.webSocket = origin.webSocket;
  return new Response(origin.body, init);
}

async function drive(ex, request, env) {
  let origin; // the origin's response, once there is one
  let names; // its reserved header names
  for (;;) {
    switch (ex.todo) {
      case Do.Reply:
        return ex.reply();
      case Do.KvGet: {
        let value;
        try {
          value = await env[ex.binding].get(ex.key);
        } catch (e) {
          ex.record(undefined, message(e));
          break;
        }
        ex.record(value ?? undefined, undefined);
        break;
      }
      case Do.KvPut:
      case Do.KvDelete: {
        const kv = env[ex.binding];
        try {
          if (ex.todo === Do.KvPut) await kv.put(ex.key, ex.value, { expirationTtl: ex.ttl });
          else await kv.delete(ex.key);
        } catch (e) {
          ex.written(message(e));
          break;
        }
        ex.written(undefined);
        break;
      }
      case Do.Forward: {
        const [url, service, cookieEdit, cookie, session, status, id, expires, xff, host, proto] =
          ex.plan.split("\n");
        const headers = new Headers(request.headers);
        for (const n of reservedNames(request.headers)) headers.delete(n);
        if (cookieEdit === "s") headers.set("cookie", cookie);
        else if (cookieEdit === "r") headers.delete("cookie");
        if (session) headers.set("x-session", session);
        headers.set("x-session-status", status);
        if (id) headers.set("x-session-id", id);
        if (expires) headers.set("x-session-expires", expires);
        if (xff) headers.set("x-forwarded-for", xff);
        headers.set("x-forwarded-host", host);
        headers.set("x-forwarded-proto", proto);
        const out = new Request(url, { method: request.method, headers, body: request.body, redirect: "manual" });
        try {
          origin = await (service ? env[service].fetch(out) : fetch(out));
        } catch (e) {
          ex.unreachable(message(e));
          break;
        }
        const h = origin.headers;
        names = reservedNames(h);
        if (names.length === 0) ex.answered(origin.status, false, undefined, undefined, undefined);
        else {
          ex.answered(origin.status, true, h.get("x-session-set") ?? undefined,
            h.get("x-session-action") ?? undefined, h.get("x-session-max-age") ?? undefined);
        }
        break;
      }
      case Do.Asset:
        return env.ASSETS.fetch(ex.url);
      case Do.Pass:
        return origin;
      case Do.Rewrap:
        return rewrap(origin, names, ex.set_cookie);
      default:
        throw new Error(`unknown step ${ex.todo}`);
    }
  }
}

// After a trap (a bug: a Rust panic aborts), the instance's state cannot be trusted:
// the next request starts from a fresh one.
let broken = false;

export default {
  async fetch(request, env) {
    if (broken) {
      __wbg_reset_state();
      broken = false;
    }
    let ex;
    try {
      const h = request.headers;
      ex = Exchange.start(env, request.method, request.url, h.get("cookie") ?? undefined,
        h.get("cf-connecting-ip") ?? undefined, h.get("x-forwarded-for") ?? undefined,
        h.get("sec-fetch-site") ?? undefined, Date.now());
      return await drive(ex, request, env);
    } catch (e) {
      if (e instanceof WebAssembly.RuntimeError || message(e) === "Module terminated") broken = true;
      console.error(JSON.stringify({ keycard: "internal", level: "error", detail: { error: message(e) } }));
      return new Response("keycard: internal error", { status: 500, headers: TEXT });
    } finally {
      try {
        ex?.free();
      } catch {
        // A trapped instance cannot free; it is replaced before the next request.
      }
    }
  },
};
