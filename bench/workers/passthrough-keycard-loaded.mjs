// Cold start only: A's pass-through with keycard's bundle loaded beside it (its wasm
// compiled and instantiated, the glue evaluated), but never called. Its first request
// against A's is what loading keycard costs, before keycard runs any code.
import keycard from "./index.js";

export default {
  async fetch(request, env) {
    if (typeof keycard.fetch !== "function") throw new Error("keycard's bundle did not load");
    const url = new URL(request.url);
    const origin = new URL(env.ORIGIN_URL);
    url.protocol = origin.protocol;
    url.host = origin.host;
    return fetch(new Request(url, request), { redirect: "manual" });
  },
};
