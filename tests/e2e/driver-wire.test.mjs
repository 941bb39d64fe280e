// The driver's reader of the core's wire form (src/driver/wire.js), on its own: the
// exact text src/exchange/tests.rs pins the core's renderer to, read into instructions
// and applied to a real WHATWG `Headers` (Node's, the same standard the runtime's
// implements). Every other e2e test runs it inside the Worker; this one also tries the
// lines the core never writes, which must fail loudly rather than lose an edit.
import assert from "node:assert/strict";
import { test } from "node:test";
import { applyEdits, readPlan } from "../../src/driver/wire.js";

// `forward_plan_crosses_as_tagged_edit_lines` in src/exchange/tests.rs renders this plan.
const FORWARD =
  "Uhttp://o/p?q\nSAPP\nT5000\nB\nQsession\n-x_session\n=cookie:a=1\n=x-session:e30\n" +
  "=x-session-status:valid\n=x-session-id:h\n=x-session-expires:9\n" +
  "=x-forwarded-for:1.2.3.4\n=x-forwarded-host:app\n=x-forwarded-proto:https\n" +
  "=x-real-ip:1.2.3.4\n=x-forwarded-user:ada\n=x-session-via:m\n";
// ... and this rewrap.
const REWRAP = "-x-session-set\n+set-cookie:kc=v; Path=/\n=cache-control:private\n";

test("a plan's instructions come first, then its edits apply in order", () => {
  const plan = readPlan(FORWARD);
  assert.deepEqual(plan.rest, { U: "http://o/p?q", S: "APP", T: "5000", B: "", Q: "session" });
  const h = new Headers({ x_session: "forged", cookie: "kc=old; a=1", "x-forwarded-for": "9.9.9.9", accept: "*/*" });
  applyEdits(h, plan.wire, plan.edits);
  assert.deepEqual(Object.fromEntries(h), {
    accept: "*/*",
    cookie: "a=1",
    "x-forwarded-for": "1.2.3.4",
    "x-forwarded-host": "app",
    "x-forwarded-proto": "https",
    "x-forwarded-user": "ada",
    "x-real-ip": "1.2.3.4",
    "x-session": "e30",
    "x-session-expires": "9",
    "x-session-id": "h",
    "x-session-status": "valid",
    "x-session-via": "m",
  });
});

test("a rewrap is edits alone: deletes, appends beside the origin's, sets", () => {
  const h = new Headers([["x-session-set", "e30"], ["set-cookie", "app=1"], ["cache-control", "public"]]);
  applyEdits(h, REWRAP);
  assert.equal(h.get("x-session-set"), null);
  assert.deepEqual(h.getSetCookie(), ["app=1", "kc=v; Path=/"]);
  assert.equal(h.get("cache-control"), "private");
});

test("values keep their colons and may be empty; the last line needs no newline", () => {
  const h = new Headers();
  applyEdits(h, "=x-forwarded-host:h:8443\n=x-empty:\n=referer:https://a/b?c=d:e");
  assert.deepEqual(Object.fromEntries(h), { referer: "https://a/b?c=d:e", "x-empty": "", "x-forwarded-host": "h:8443" });
  const plan = readPlan("Uhttp://o/");
  assert.deepEqual(plan.rest, { U: "http://o/" });
  applyEdits(h, plan.wire, plan.edits);
  applyEdits(h, "");
  assert.equal([...h].length, 3, "a plan without edits, or an empty wire, changes nothing");
});

test("a line the core never writes throws rather than being skipped", () => {
  for (const [wire, why] of [
    ["=cookie:a=1\nB\n", "an instruction after the edits"],
    ["=cookie:a=1\nUhttp://elsewhere/\n", "a URL after the edits"],
    ["=x-session\n=x-session-id:h\n", "a set without a value"],
    ["+set-cookie\n", "an append without a value"],
    ["=cookie:a=1\n?x\n", "an unknown tag among the edits"],
    ["?x\nUhttp://o/\n", "an unknown tag among the instructions"],
  ]) {
    assert.throws(() => {
      const plan = readPlan(wire);
      applyEdits(new Headers(), plan.wire, plan.edits);
    }, Error, why);
  }
});
