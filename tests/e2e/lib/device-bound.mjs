// What the device-bound session tests share, whichever driver runs keycard: the
// standalone Worker (device-bound.test.mjs) or keycard inside a Rust Worker
// (workers-rs.test.mjs). The device is the DBSC client of dbsc-client.mjs.
import assert from "node:assert/strict";

import { DbscClient, parseRegistrations } from "./dbsc-client.mjs";

/** The short-lived cookie's name beside the default, host-only session cookie `keycard`. */
export const BOUND_COOKIE = "__Host-keycard-bound";

/**
 * A DBSC client (of `algs`, or of every algorithm it speaks) that signs in with one
 * request to `url` (`method`, answered `status`) and registers the binding keycard
 * offers with that answer (`misbehave` as `DbscClient.register` takes it). Returns
 * `{ client, session, before }`: `before` is the cookies the client held before
 * binding, as a `Cookie` header.
 */
export async function signInBound(url, { method = "GET", status = 200, algs, misbehave } = {}) {
  const client = new DbscClient(algs ? { algs } : undefined);
  const signIn = await client.fetch(url, { method });
  assert.equal(signIn.status, status);
  const offer = signIn.headers.get("secure-session-registration");
  assert.match(offer ?? "", /^\(ES256 RS256\);path="\/\.keycard\/dbsc\/register";challenge="/, "binding is offered as the user signs in");
  const before = await client.jar.getCookieString(url);
  const [reg] = parseRegistrations(offer);
  const session = await client.register(reg, url, { misbehave });
  return { client, session, before };
}

/** The `Cookie` header of `client`'s cookies for `url` with the cookie `name` alone: what
 * a thief who copied the session cookie, and nothing else, would send. */
export async function onlyCookie(client, url, name) {
  const all = await client.jar.getCookieString(url);
  const only = all.split("; ").filter((c) => c.startsWith(`${name}=`)).join("; ");
  assert.match(only, new RegExp(`^${name}=[^;]+$`), `the client holds ${name}: ${all}`);
  return only;
}
