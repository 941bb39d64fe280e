// The KV backend for the plain-workerd K-kv variant: workerd's KV binding speaks HTTP
// to a service (GET/PUT/DELETE /<key>, the protocol miniflare's KV implements); this
// one keeps the values in memory. It runs in a workerd process of its own
// (bench/kv-server.capnp.in), so the Worker's measured CPU holds only its side of each
// read, as on Cloudflare, where the read is a subrequest served elsewhere. Expiry is
// ignored. It counts the operations it serves: bench/run.mjs asks for the counts (a
// request with `x-bench-counts`) before and after its cost mix.
const store = new Map();
const counts = { reads: 0, writes: 0, deletes: 0 };

export default {
  async fetch(request) {
    if (request.headers.has("x-bench-counts")) return Response.json(counts);
    const url = new URL(request.url);
    let key = url.pathname.slice(1);
    if (url.searchParams.get("urlencoded") === "true") key = decodeURIComponent(key);
    switch (request.method) {
      case "GET": {
        counts.reads++;
        const value = store.get(key);
        return value === undefined ? new Response("Not Found", { status: 404 }) : new Response(value);
      }
      case "PUT":
        counts.writes++;
        store.set(key, await request.text());
        return new Response();
      case "DELETE":
        counts.deletes++;
        store.delete(key);
        return new Response();
      default:
        return new Response("Method Not Allowed", { status: 405 });
    }
  },
};
