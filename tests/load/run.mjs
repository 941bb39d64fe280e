// The load test that loses nothing: M distinct clients, each making N strictly
// sequential requests, C clients at a time, through the real Worker in workerd (wrangler
// dev, local KV) in front of a real origin on 127.0.0.1. Every request increments a
// counter in that client's session through X-Session-Set. Afterwards every counter must
// equal N exactly, with zero errors and zero cross-session leaks.
//
//   node tests/load/run.mjs            small run (what `make test` does)
//   node tests/load/run.mjs --full     M=200 N=50 C=50 in cookie and kv modes (`make loadtest`)
//   options: --clients M --requests N --concurrency C --modes cookie,kv --time-limit SECONDS
// Loopback only, bounded in requests (M*N per mode) and in time (--time-limit).
import http from "node:http";
import { fileURLToPath } from "node:url";
import { startKeycard } from "../e2e/lib/harness.mjs";

/** The origin: reads the session, checks it belongs to the client that sent it, increments. */
export async function startCountingOrigin() {
  const stats = { leaks: 0, requests: 0 };
  const server = http.createServer((req, res) => {
    stats.requests++;
    const client = req.headers["x-load-client"];
    const raw = req.headers["x-session"];
    const data = raw ? JSON.parse(Buffer.from(raw, "base64url").toString("utf8")) : {};
    if (data.client !== undefined && data.client !== client) stats.leaks++;
    if (req.url.startsWith("/peek")) {
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify({ client: data.client ?? null, n: data.n ?? 0, status: req.headers["x-session-status"] }));
    }
    const n = (data.n ?? 0) + 1;
    res.writeHead(200, { "content-type": "application/json", "x-session-set": JSON.stringify({ client, n }) });
    res.end(JSON.stringify({ client, n }));
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${server.address().port}`, stats, close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) };
}

function get(agent, url, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent, headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.setTimeout(30000, () => req.destroy(new Error("request timed out")));
    req.on("error", reject);
    req.end();
  });
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

/** Runs the load against `url`; returns the measurements and every problem found. */
export async function runLoad({ url, clients, requests, concurrency, timeLimitMs }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const deadline = Date.now() + timeLimitMs;
  const latencies = [];
  const errors = [];
  const finals = new Map();
  let next = 0;
  const t0 = process.hrtime.bigint();
  async function runClient(id) {
    let cookie = "";
    for (let i = 1; i <= requests; i++) {
      if (Date.now() > deadline) throw new Error(`time limit of ${timeLimitMs} ms reached`);
      const start = process.hrtime.bigint();
      const r = await get(agent, `${url}/inc?i=${i}`, { "x-load-client": id, ...(cookie ? { cookie } : {}) });
      latencies.push(Number(process.hrtime.bigint() - start) / 1e6);
      if (r.status !== 200) {
        errors.push(`${id} #${i}: status ${r.status} ${r.body.slice(0, 80)}`);
        continue;
      }
      const body = JSON.parse(r.body);
      if (body.client !== id || body.n !== i) errors.push(`${id} #${i}: origin saw ${JSON.stringify(body)}`);
      for (const sc of r.headers["set-cookie"] ?? []) {
        const pair = sc.split(";")[0];
        if (/^(__Host-)?keycard=/.test(pair)) cookie = pair.endsWith("=") ? "" : pair;
      }
    }
    const peek = await get(agent, `${url}/peek`, { "x-load-client": id, ...(cookie ? { cookie } : {}) });
    finals.set(id, JSON.parse(peek.body));
  }
  async function worker() {
    for (;;) {
      const k = next++;
      if (k >= clients) return;
      await runClient(`client-${k}`);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, clients) }, worker));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  agent.destroy();
  for (const [id, f] of finals) {
    if (f.client !== id || f.n !== requests) errors.push(`${id}: final counter ${JSON.stringify(f)}, want ${requests}`);
  }
  if (finals.size !== clients) errors.push(`only ${finals.size} of ${clients} clients finished`);
  latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    seconds,
    rps: latencies.length / seconds,
    p50: pct(latencies, 50),
    p99: pct(latencies, 99),
    errors,
  };
}

/** Starts origin + keycard in `mode`, runs the load, tears down. */
export async function loadTest({ mode, clients, requests, concurrency, timeLimitMs }) {
  const origin = await startCountingOrigin();
  const kc = await startKeycard({ ORIGIN_URL: origin.url, SESSION_STORE: mode });
  try {
    const result = await runLoad({ url: kc.url, clients, requests, concurrency, timeLimitMs });
    return { mode, clients, requests: clients * requests, concurrency, ...result, leaks: origin.stats.leaks, serverErrors: kc.logs.filter((l) => / 5\d\d /.test(l)).length };
  } finally {
    await kc.close();
    await origin.close();
  }
}

export function format(r) {
  return `${r.mode.padEnd(6)} ${String(r.clients).padStart(4)} clients x ${r.requests / r.clients} req, concurrency ${r.concurrency}: ` +
    `${r.rps.toFixed(0)} req/s, p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, errors ${r.errors.length}, leaks ${r.leaks}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name, dflt) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : dflt;
  };
  const full = args.includes("--full");
  const cfg = {
    clients: Number(opt("clients", full ? 200 : 20)),
    requests: Number(opt("requests", full ? 50 : 10)),
    concurrency: Number(opt("concurrency", full ? 50 : 10)),
    timeLimitMs: Number(opt("time-limit", full ? 300 : 60)) * 1000,
  };
  let failed = false;
  for (const mode of opt("modes", "cookie,kv").split(",")) {
    const r = await loadTest({ mode, ...cfg });
    console.log(format(r));
    for (const e of r.errors.slice(0, 10)) console.log("  " + e);
    if (r.errors.length || r.leaks) failed = true;
  }
  process.exit(failed ? 1 : 0);
}
