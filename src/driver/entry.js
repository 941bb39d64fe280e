// keycard's Worker entry: the driver of the Rust core's exchange (src/exchange/mod.rs).
//
// For each request the core is asked, through synchronous wasm calls (the static methods
// of `Exchange`, each given the request's handle from `Exchange.start`), what to do next:
// read or write a KV record, call a user's Durable Object (sign-out everywhere), forward
// to the origin, ask an identity provider or check its signature (sign-in), serve an
// inspector asset, or answer. This file does exactly that I/O
// and hands each result back. All decisions (sessions, cookies, policies, errors, and
// every header name set or removed) are made in Rust; header edits arrive as lines
// that src/driver/wire.js applies without reading them (the wire form is documented in
// src/exchange/wire.rs). The awaits live here, so no Rust future or promise plumbing runs
// per request (BENCHMARKS.md has the numbers).
// scripts/build.sh bundles it with the wasm-bindgen glue into build/index.js.
import { DurableObject } from "cloudflare:workers";
import { Do, Exchange, usersAnswer, __wbg_reset_state } from "./index.js";
import { applyEdits, readPlan } from "./wire.js";

const TEXT = { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" };

const message = (e) => (e instanceof Error ? e.message : String(e));

/** Every header as `name:value` lines, the form the core reads. `forEach` gives the
 * same pairs in the same order as iterating, without an iterator result and a [k, v]
 * array per header: 7.8% to 4.5% of the isolate's time (BENCHMARKS.md). */
function lines(headers) {
  let out = "";
  headers.forEach((v, k) => {
    out += `${k}:${v}\n`;
  });
  return out;
}

/** Whether any header name holds `text`. With a plan's `Q` line, a response for which
 * this is false would be passed as it is: the core is not asked (its `pass_unless`). */
function namesHold(headers, text) {
  for (const name of headers.keys()) if (name.includes(text)) return true;
  return false;
}

/** The request's country (`request.cf.country`) for a call to a user's object, read
 * only then: reading `request.cf` makes the runtime parse the whole `cf` object, about
 * 1 KB of JSON on Cloudflare (BENCHMARKS.md). */
function country(request) {
  const c = request.cf?.country;
  return typeof c === "string" ? c : undefined;
}

/** The origin's response with the core's edits applied to its headers. The new
 * Response copies the origin's headers once, and the edits go to that copy. */
function rewrap(origin, wire) {
  const init = { status: origin.status, statusText: origin.statusText, headers: origin.headers };
  // A WebSocket upgrade: hand the socket through.
  if (origin.status === 101) init.webSocket = origin.webSocket;
  const out = new Response(origin.body, init);
  applyEdits(out.headers, wire);
  return out;
}

/** How long an identity provider has to answer, and the most of its answer read. */
const PROVIDER_TIMEOUT_MS = 10000;
const PROVIDER_MAX_BYTES = 1 << 20;

/** A sign-in's request to its identity provider, as the core built it; resolves to
 * what `fetched` takes. */
async function askProvider(ex) {
  const headers = new Headers();
  applyEdits(headers, Exchange.edits(ex));
  const res = await fetch(Exchange.url(ex), {
    method: Exchange.method(ex),
    headers,
    body: Exchange.body(ex),
    redirect: "manual",
    signal: AbortSignal.timeout(PROVIDER_TIMEOUT_MS),
  });
  const type = res.headers.get("content-type") ?? undefined;
  const cache = res.headers.get("cache-control") ?? undefined;
  return [res.status, type, cache, await readCapped(res)];
}

/** The body as text, read as it streams in and given up past PROVIDER_MAX_BYTES,
 * whatever `Content-Length` said (a chunked or compressed answer has none). */
async function readCapped(res) {
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > PROVIDER_MAX_BYTES) {
      await reader.cancel();
      throw new Error("the answer is too long");
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return new TextDecoder().decode(all);
}

/** The ID token's signature, checked with the key and algorithm the core chose. */
async function verifySignature(ex) {
  const key = await crypto.subtle.importKey(
    "jwk",
    JSON.parse(Exchange.jwk(ex)),
    JSON.parse(Exchange.import_params(ex)),
    false,
    ["verify"],
  );
  const data = new TextEncoder().encode(Exchange.signing_input(ex));
  return crypto.subtle.verify(JSON.parse(Exchange.verify_params(ex)), key, Exchange.signature(ex), data);
}

const TIMED_OUT = Symbol("timed out");

/** Sends the client's request to the origin as the plan (`readPlan`'s) says. Resolves
 * to the origin's response, or to TIMED_OUT when the plan's timeout passes first. */
async function forward(request, env, { wire, rest, edits }) {
  const { U: url, S: service, T: timeout, B: dropBody } = rest;
  const init = { method: request.method, headers: request.headers, redirect: "manual" };
  if (dropBody === undefined) init.body = request.body;
  let timer, expired;
  if (timeout !== undefined) {
    const abort = new AbortController();
    init.signal = abort.signal;
    expired = new Promise((resolve) => {
      timer = setTimeout(() => {
        abort.abort();
        resolve(TIMED_OUT);
      }, Number(timeout));
    });
  }
  // The new Request copies the client's headers once; the edits go to that copy.
  const out = new Request(url, init);
  applyEdits(out.headers, wire, edits);
  const sent = service !== undefined ? env[service].fetch(out) : fetch(out);
  try {
    return await (expired ? Promise.race([sent, expired]) : sent);
  } finally {
    clearTimeout(timer);
  }
}

async function drive(ex, request, env) {
  let origin; // the origin's response, once there is one
  // After an await, hands a result to `ex`, unless the wasm instance was replaced
  // meanwhile (another request trapped): `ex` would then name nothing, or another
  // request, in the new one.
  const gen = generation;
  const settle = (hand) => {
    if (gen !== generation) throw new Error("the wasm instance was replaced during the request");
    hand();
  };
  for (;;) {
    switch (Exchange.step(ex)) {
      case Do.Reply:
        return Exchange.reply(ex);
      case Do.KvGet: {
        let value;
        try {
          value = await env[Exchange.binding(ex)].get(Exchange.key(ex), { cacheTtl: Exchange.cache_ttl(ex) });
        } catch (e) {
          settle(() => Exchange.kv_read(ex, undefined, message(e)));
          break;
        }
        settle(() => Exchange.kv_read(ex, value ?? undefined, undefined));
        break;
      }
      case Do.KvPut:
      case Do.KvDelete: {
        const kv = env[Exchange.binding(ex)];
        try {
          if (Exchange.step(ex) === Do.KvPut) await kv.put(Exchange.key(ex), Exchange.value(ex), { expirationTtl: Exchange.ttl(ex) });
          else await kv.delete(Exchange.key(ex));
        } catch (e) {
          settle(() => Exchange.written(ex, message(e)));
          break;
        }
        settle(() => Exchange.written(ex, undefined));
        break;
      }
      case Do.Forward: {
        const plan = readPlan(Exchange.plan(ex));
        try {
          origin = await forward(request, env, plan);
        } catch (e) {
          settle(() => Exchange.unreachable(ex, message(e)));
          break;
        }
        if (origin === TIMED_OUT) settle(() => Exchange.timed_out(ex));
        else if (plan.rest.Q !== undefined && !namesHold(origin.headers, plan.rest.Q)) return origin;
        else settle(() => Exchange.answered(ex, origin.status, lines(origin.headers)));
        break;
      }
      case Do.Users: {
        let answer;
        try {
          const ns = env[Exchange.binding(ex)];
          answer = await ns.get(ns.idFromName(Exchange.object(ex))).answer(Exchange.call(ex, country(request)));
        } catch (e) {
          settle(() => Exchange.users_answered(ex, undefined, message(e)));
          break;
        }
        settle(() => Exchange.users_answered(ex, typeof answer === "string" ? answer : undefined, undefined));
        break;
      }
      case Do.Fetch: {
        let answer;
        try {
          answer = await askProvider(ex);
        } catch (e) {
          settle(() => Exchange.fetched(ex, undefined, undefined, undefined, undefined, message(e)));
          break;
        }
        settle(() => Exchange.fetched(ex, ...answer, undefined));
        break;
      }
      case Do.Verify: {
        let ok;
        try {
          ok = await verifySignature(ex);
        } catch (e) {
          settle(() => Exchange.verified(ex, undefined, message(e)));
          break;
        }
        settle(() => Exchange.verified(ex, ok, undefined));
        break;
      }
      case Do.Asset:
        return env.ASSETS.fetch(Exchange.url(ex));
      case Do.Pass:
        return origin;
      case Do.Rewrap:
        return rewrap(origin, Exchange.edits(ex));
      default:
        throw new Error(`unknown step ${Exchange.step(ex)}`);
    }
  }
}

// After a trap (a bug: a Rust panic aborts), the instance's state cannot be trusted:
// the next request starts from a fresh one. `generation` counts the instances, so
// that a request still in flight from before cannot use the new one.
let broken = false;
let generation = 0;

/** Replaces a trapped wasm instance before it is used again. */
function fresh() {
  if (broken) {
    __wbg_reset_state();
    broken = false;
    generation++;
  }
}

/** Notes a trap, so that `fresh` replaces the instance. */
function noteTrap(e) {
  if (e instanceof WebAssembly.RuntimeError || message(e) === "Module terminated") broken = true;
}

/**
 * One signed-in user's sessions, for sign-out everywhere (src/users/mod.rs). The object's
 * whole state is one JSON value in its storage; what a call does with it is decided in
 * Rust (`usersAnswer`), so this class only loads, stores and answers. Calls come from
 * keycard's exchange alone: an object has no route of its own.
 */
export class KeycardUsers extends DurableObject {
  /** Carries out `request` (JSON); returns the answer's JSON. (An RPC method: not
   * `call`, which a stub, being callable, already has.) */
  answer(request) {
    fresh();
    const kv = this.ctx.storage.kv;
    try {
      const [answer, state] = usersAnswer(kv.get("state"), request);
      if (state !== undefined) kv.put("state", state);
      return answer;
    } catch (e) {
      noteTrap(e);
      throw e;
    }
  }
}

export default {
  async fetch(request, env) {
    fresh();
    const gen = generation;
    let ex;
    try {
      ex = Exchange.start(env, request.method, request.url, lines(request.headers), Date.now());
      return await drive(ex, request, env);
    } catch (e) {
      noteTrap(e);
      console.error(JSON.stringify({ keycard: "internal", level: "error", detail: { error: message(e) } }));
      return new Response("keycard: internal error", { status: 500, headers: TEXT });
    } finally {
      try {
        // Never into an instance that replaced the one `ex` lives in.
        if (gen === generation && ex !== undefined) Exchange.end(ex);
      } catch {
        // A trapped instance cannot free; it is replaced before the next request.
      }
    }
  },
};
