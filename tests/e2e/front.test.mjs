// Issue 23: `make front ORIGIN=…` puts keycard in front of your own app, locally: the
// very command the README gives, run as a newcomer would, in front of a real origin.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startOrigin, freePort, Client, decodeSession, q } from "./lib/harness.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

test("make front ORIGIN=… fronts any app: sessions and the inspector, none of the demo's settings", async () => {
  const origin = await startOrigin();
  const port = await freePort();
  const child = spawn("make", ["--no-print-directory", "front", `ORIGIN=${origin.url}`, `PORT=${port}`], {
    cwd: ROOT,
    detached: true,
    env: { ...process.env, CI: "true", NO_COLOR: "1", FORCE_COLOR: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`make front did not start:\n${out}`)), 180000);
    const take = (d) => {
      out += d;
      if (out.includes("Ready on")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    child.on("exit", () => reject(new Error(`make front exited:\n${out}`)));
  });
  try {
    await ready;
    assert.match(out, new RegExp(`http://127\\.0\\.0\\.1:${port}/\\.keycard/`), "it says where the inspector is");
    const c = new Client(`http://127.0.0.1:${port}`);
    // The demo's KEYCARD_REQUIRE=/account/ is not here: the app's own /account/ answers.
    let r;
    for (let i = 0; i < 50; i++) {
      try {
        r = await c.get(`/account/?set=${q({ user: "ada" })}`);
        break;
      } catch {
        await new Promise((res) => setTimeout(res, 200));
      }
    }
    assert.equal(r.status, 200);
    assert.equal(r.headers["x-origin"], "yes", "forwarded to ORIGIN");
    assert.equal(origin.last().headers["x-session-status"], "none");
    await c.get("/next");
    assert.equal(origin.last().headers["x-session-status"], "valid");
    assert.deepEqual(decodeSession(origin.last().headers["x-session"]), { user: "ada" });
    const seen = await c.get("/.keycard/session");
    assert.equal(seen.status, 200, "the inspector is on");
    assert.equal(seen.json.data.user, "ada");
  } finally {
    try { process.kill(-child.pid, "SIGTERM"); } catch {}
    await new Promise((res) => setTimeout(res, 500));
    try { process.kill(-child.pid, "SIGKILL"); } catch {}
    await origin.close();
  }
});

test("make front without ORIGIN says how to use it", () => {
  const r = spawnSync("make", ["--no-print-directory", "front"], { cwd: ROOT, encoding: "utf8" });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /usage: make front ORIGIN=http:\/\/127\.0\.0\.1:9050/);
});
