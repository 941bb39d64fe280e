// Variant A, the floor: a JS Worker that forwards every request to ORIGIN_URL and
// returns the origin's response untouched. Anything keycard costs is measured against
// this.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const origin = new URL(env.ORIGIN_URL);
    url.protocol = origin.protocol;
    url.host = origin.host;
    return fetch(new Request(url, request), { redirect: "manual" });
  },
};
