// `make bench`: keycard (./index.js, copied beside this file) with its KEYCARD_USERS
// Durable Object namespace wrapped to count the calls keycard makes to users' objects;
// GET /__bench/users answers the count. It runs only where calls are counted (the count
// pass and the cost mix), never in the timed rounds, so the wrapper costs nothing there.
import keycard, { KeycardUsers } from "./index.js";

export { KeycardUsers };

let calls = 0;

function counting(ns) {
  return new Proxy(ns, {
    get(target, prop) {
      const value = Reflect.get(target, prop);
      if (prop !== "get") return typeof value === "function" ? value.bind(target) : value;
      return (id) => {
        const stub = target.get(id);
        return {
          answer(call) {
            calls++;
            return stub.answer(call);
          },
        };
      };
    },
  });
}

export default {
  fetch(request, env, ctx) {
    if (new URL(request.url).pathname === "/__bench/users") return Response.json({ calls });
    const wrapped = new Proxy(env, {
      get: (target, prop) => (prop === "KEYCARD_USERS" ? counting(target[prop]) : Reflect.get(target, prop)),
    });
    return keycard.fetch(request, wrapped, ctx);
  },
};
