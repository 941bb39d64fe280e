// The KV backend for the plain-workerd K-kv variant: workerd's KV binding speaks HTTP
// to a service (GET/PUT/DELETE /<key>, the protocol miniflare's KV implements); this
// one keeps the values in memory. It runs in a workerd process of its own
// (bench/kv-server.capnp.in), so the Worker's measured CPU holds only its side of each
// read, as on Cloudflare, where the read is a subrequest served elsewhere. Expiry is
// ignored.
const store = new Map();

export default {
  async fetch(request) {
    const url = new URL(request.url);
    let key = url.pathname.slice(1);
    if (url.searchParams.get("urlencoded") === "true") key = decodeURIComponent(key);
    switch (request.method) {
      case "GET": {
        const value = store.get(key);
        return value === undefined ? new Response("Not Found", { status: 404 }) : new Response(value);
      }
      case "PUT":
        store.set(key, await request.text());
        return new Response();
      case "DELETE":
        store.delete(key);
        return new Response();
      default:
        return new Response("Method Not Allowed", { status: 405 });
    }
  },
};
