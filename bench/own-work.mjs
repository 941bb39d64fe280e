#!/usr/bin/env node
// keycard's own work per request, hot and cold, without the noise of a shared machine.
//
// `make bench` measures whole requests in workerd, where one round differs from the next
// by ±5–8%: too coarse to see a lever worth 2%. This runs only the Worker's own code per
// request, in Node's V8 (the engine workerd embeds), with no socket, no other process and
// no origin: its `fetch` handler, given K-cookie's request, with `Headers`, `Request`,
// `Response` and the origin's `fetch` replaced by the lightest stand-ins that behave
// alike (a `Map` of lower-cased names; an answer with nginx's headers, at once). What is
// left is the Worker's JS and wasm, and the header edits it asks for. Each build runs
// twice per round:
//   hot   many requests in a row, as a micro-benchmark sees them;
//   cold  each request after 4 MB of memory is written, so that it finds its code and
//         data out of the core's own caches (L1 and L2; 16 MB gives the same figures),
//         as a request in workerd does on a shared machine, where the runtime, the
//         client and the origin run in between (there keycard's wasm costs several
//         times its hot figure: BENCHMARKS.md).
// The floor (bench/workers/floor.mjs, F-hdr's header work in plain JS) runs beside them
// in the same rounds. Each is reported by its median and, beside the first build, by
// the median and range of its per-round ratios.
//
// usage: node bench/own-work.mjs [build dir ...]   (default: build/)
// A build dir holds index.js and index_bg.wasm, as scripts/build.sh writes them with
// KEYCARD_BUILD_OUT. Knobs: OWN_ROUNDS (9), OWN_REQUESTS (2000 cold per round; hot runs
// four times as many).
//
// What it does not show: the runtime's cost, which is most of a request in workerd
// (the subrequest, copying `Headers` and `Request`); `make bench` measures that.
import { register } from "node:module";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { mint } from "../tests/e2e/lib/mint.mjs";
import { SECRET, SESSION_JSON } from "./session.mjs";

// The two imports a built Worker makes that Node lacks: the runtime's module (keycard
// takes only `DurableObject` from it, for the users' objects) and the wasm file, which
// Workers give as a compiled `WebAssembly.Module`.
register(
  "data:text/javascript," +
    encodeURIComponent(`
export async function resolve(spec, context, next) {
  if (spec === "cloudflare:workers") return { url: "data:text/javascript,export class DurableObject {}", shortCircuit: true };
  return next(spec, context);
}
export async function load(url, context, next) {
  if (!url.endsWith(".wasm")) return next(url, context);
  const source = "import fs from 'node:fs'; export default new WebAssembly.Module(fs.readFileSync(new URL(" + JSON.stringify(url) + ")));";
  return { format: "module", source, shortCircuit: true };
}`),
);

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const ROUNDS = Math.max(1, Number(process.env.OWN_ROUNDS ?? 9));
const COLD = Math.max(1, Number(process.env.OWN_REQUESTS ?? 2000));
const HOT = COLD * 4;

// K-cookie's request in bench/run.mjs: the same secret and the same session.
const env = { SESSION_SECRET: SECRET, SESSION_COOKIE_SECURE: "false", SESSION_STORE: "cookie", ORIGIN_URL: "http://127.0.0.1:9999" };
const cookie = `keycard=${mint({ secret: SECRET, iat: Math.floor(Date.now() / 1000) - 10, data: JSON.parse(SESSION_JSON) })}`;
const request = () => new Request("http://127.0.0.1:8787/verify", { headers: { host: "127.0.0.1:8787", cookie } });

/** `Headers` as the Workers runtime keeps them, minus validation: lower-cased names. */
class LightHeaders {
  constructor(init) {
    this.map = new Map();
    if (init instanceof LightHeaders) for (const [k, v] of init.map) this.map.set(k, v);
    else if (init) for (const [k, v] of Object.entries(init)) this.map.set(k.toLowerCase(), String(v));
  }
  get(name) {
    return this.map.get(name.toLowerCase()) ?? null;
  }
  has(name) {
    return this.map.has(name.toLowerCase());
  }
  set(name, value) {
    this.map.set(name.toLowerCase(), value);
  }
  append(name, value) {
    const k = name.toLowerCase(), old = this.map.get(k);
    this.map.set(k, old === undefined ? value : `${old}, ${value}`);
  }
  delete(name) {
    this.map.delete(name.toLowerCase());
  }
  forEach(each) {
    for (const [k, v] of this.map) each(v, k, this);
  }
  keys() {
    return this.map.keys();
  }
  [Symbol.iterator]() {
    return this.map.entries();
  }
}
class LightRequest {
  constructor(url, init = {}) {
    this.url = url;
    this.method = init.method ?? "GET";
    this.headers = new LightHeaders(init.headers);
    this.body = init.body ?? null;
  }
}
class LightResponse {
  constructor(body, init = {}) {
    this.body = body ?? null;
    this.status = init.status ?? 200;
    this.statusText = init.statusText ?? "";
    this.headers = new LightHeaders(init.headers);
  }
}
Object.assign(globalThis, { Headers: LightHeaders, Request: LightRequest, Response: LightResponse });

// The origin: nginx's answer to the bench's /verify, at once.
const ORIGIN_HEADERS = { server: "nginx", date: new Date().toUTCString(), "content-type": "text/plain", "content-length": "2", connection: "keep-alive" };
let forwarded; // the last request the origin got
globalThis.fetch = async (req) => {
  forwarded = req;
  return new Response("ok", { headers: ORIGIN_HEADERS });
};

const junk = new Uint8Array(4 << 20);
let sink = 0;
/** Writes one byte per cache line of 4 MB: twice a core's L2 here. */
function evictCaches() {
  for (let i = 0; i < junk.length; i += 64) sink += junk[i]++;
}

async function serve({ worker, env }) {
  const res = await worker.fetch(request(), env);
  if (res.status !== 200) throw new Error(`the origin's answer did not come through: ${res.status}`);
}

const dirs = process.argv.slice(2);
const floorEnv = { ORIGIN_URL: env.ORIGIN_URL, FLOOR_SESSION: Buffer.from(SESSION_JSON).toString("base64url") };
const variants = [
  ...(dirs.length ? dirs : [path.join(ROOT, "build")]).map((dir) => ({ dir, label: path.relative(ROOT, path.resolve(dir)) || ".", env })),
  { dir: path.join(ROOT, "bench/workers/floor.mjs"), label: "F-hdr (bench/workers/floor.mjs)", env: floorEnv },
];
const builds = [];
for (const v of variants) {
  const file = v.dir.endsWith(".mjs") ? v.dir : path.resolve(v.dir, "index.js");
  const b = { ...v, worker: (await import(pathToFileURL(file).href)).default, hot: [], cold: [] };
  await serve(b);
  if (forwarded.headers.get("x-session-status") !== "valid") throw new Error(`${v.label}: the origin did not get a valid session`);
  for (let i = 0; i < HOT; i++) await serve(b); // tier up
  builds.push(b);
}

const now = () => process.hrtime.bigint();
const micros = (ns, n) => Number(ns) / 1000 / n;
for (let r = 0; r < ROUNDS; r++) {
  for (const b of r % 2 ? [...builds].reverse() : builds) {
    let t = now();
    for (let i = 0; i < HOT; i++) await serve(b);
    b.hot.push(micros(now() - t, HOT));
    let spent = 0n;
    for (let i = 0; i < COLD; i++) {
      evictCaches();
      t = now();
      await serve(b);
      spent += now() - t;
    }
    b.cold.push(micros(spent, COLD));
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const ratio = (xs, base) => {
  const rs = xs.map((x, i) => x / base[i]);
  return `${median(rs).toFixed(3)}× (${Math.min(...rs).toFixed(2)}–${Math.max(...rs).toFixed(2)})`;
};
console.log(`### keycard's own work, apart from the runtime (bench/own-work.mjs)

K-cookie's request through each Worker's \`fetch\` handler in Node ${process.versions.node}'s V8, with
stand-ins for \`Headers\`, \`Request\`, \`Response\` and the origin: ${ROUNDS} alternating rounds
of ${HOT} requests in a row (hot) and ${COLD} each after 4 MB of memory is written (cold, as in
workerd on a shared machine). µs per request, medians; ratios are medians of per-round
ratios to the first row, with their range. keycard's own work over the floor is the
cold K row minus the F-hdr row.
`);
console.log("| build | hot µs | vs the first | cold µs | vs the first |\n| --- | --- | --- | --- | --- |");
for (const b of builds) {
  const [first] = builds;
  console.log(`| ${b.label} | ${median(b.hot).toFixed(2)} | ${ratio(b.hot, first.hot)} | ${median(b.cold).toFixed(2)} | ${ratio(b.cold, first.cold)} |`);
}
if (sink === 0.5) console.log(sink); // keeps the eviction loop from being optimised away
