// A small version of `make loadtest` inside `make test`: it asserts correctness under
// concurrency (no lost increments, no errors, no cross-session leaks), never speed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadTest, format } from "../load/run.mjs";

for (const mode of ["cookie", "kv"]) {
  test(`${mode} mode: 30 clients x 10 sequential requests, 15 at a time, lose nothing`, async () => {
    const r = await loadTest({ mode, clients: 30, requests: 10, concurrency: 15, timeLimitMs: 120_000 });
    console.log(format(r));
    assert.deepEqual(r.errors, []);
    assert.equal(r.leaks, 0);
    assert.equal(r.requests, 300);
  });
}
