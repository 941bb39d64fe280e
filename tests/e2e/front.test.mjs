// Issue 23: `make front ORIGIN=…` puts keycard in front of your own app, locally: the
// very commands the README gives, run as a newcomer would, in front of a real origin and
// in front of the README's own app.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startOrigin, freePort, Client, decodeSession, q } from "./lib/harness.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** `make front ORIGIN=<origin>` on a free port, once it has said what to open: it prints
 * that after wrangler's "Ready on", when keycard first answers (scripts/dev.mjs). */
async function startFront(origin) {
  const port = await freePort();
  const child = spawn("make", ["--no-print-directory", "front", `ORIGIN=${origin}`, `PORT=${port}`], {
    cwd: ROOT,
    detached: true,
    env: { ...process.env, CI: "true", NO_COLOR: "1", FORCE_COLOR: "0" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`make front did not start:\n${out}`)), 180000);
    const take = (d) => {
      out += d;
      if (out.includes("Ready on") && out.includes("keycard is ready on")) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    child.on("exit", () => reject(new Error(`make front exited:\n${out}`)));
  });
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    output: () => out,
    async stop() {
      try { process.kill(-child.pid, "SIGTERM"); } catch {}
      await new Promise((res) => setTimeout(res, 500));
      try { process.kill(-child.pid, "SIGKILL"); } catch {}
    },
  };
}

/** The first request, retried while wrangler finishes starting behind "Ready". */
async function firstGet(client, pathAndQuery) {
  for (let i = 0; ; i++) {
    try {
      return await client.get(pathAndQuery);
    } catch (e) {
      if (i >= 50) throw e;
      await new Promise((res) => setTimeout(res, 200));
    }
  }
}

test("make front ORIGIN=… fronts any app: sessions and the inspector, none of the demo's settings", async () => {
  const origin = await startOrigin();
  const front = await startFront(origin.url);
  try {
    assert.match(front.output(), new RegExp(`http://127\\.0\\.0\\.1:${front.port}/\\.keycard/`), "it says where the inspector is");
    assert.ok(front.output().indexOf("keycard is ready on") > front.output().indexOf("Ready on"), "after wrangler's own start-up lines");
    const c = new Client(front.url);
    // The demo's KEYCARD_REQUIRE=/account/ is not here: the app's own /account/ answers.
    const r = await firstGet(c, `/account/?set=${q({ user: "ada" })}`);
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
    await front.stop();
    await origin.close();
  }
});

/** The README's code block that follows `heading`, in `lang`. */
function readmeBlock(heading, lang) {
  const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
  const at = readme.indexOf(`\n${heading}\n`);
  assert.ok(at >= 0, `the README has "${heading}"`);
  const open = readme.indexOf("```" + lang + "\n", at);
  const close = readme.indexOf("\n```", open + 1);
  return readme.slice(open + lang.length + 4, close + 1);
}

test("the README's own app behind make front: its two commands, sign-in, any name, sign-out", async () => {
  const heading = "## In front of your own app, locally";
  const app = readmeBlock(heading, "js");
  const commands = readmeBlock(heading, "sh");
  assert.match(commands, /^node app\.mjs &$/m);
  assert.match(commands, /^make front ORIGIN=http:\/\/127\.0\.0\.1:9050 /m);
  // The app as the README has it, on a free port instead of 9050.
  assert.match(app, /\.listen\(9050, "127\.0\.0\.1"\)/);
  const appPort = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keycard-readme-app-"));
  fs.writeFileSync(path.join(dir, "app.mjs"), app.replace(".listen(9050,", `.listen(${appPort},`));
  const child = spawn(process.execPath, ["app.mjs"], { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  let appOut = "";
  child.stdout.on("data", (d) => (appOut += d));
  child.stderr.on("data", (d) => (appOut += d));
  const front = await startFront(`http://127.0.0.1:${appPort}`);
  try {
    const c = new Client(front.url);
    let r = await firstGet(c, "/");
    assert.equal(r.status, 200, appOut);
    assert.match(r.text, /<button>Sign in<\/button>/);
    assert.equal(r.cookies.length, 0, "a visitor who did nothing gets no cookie");

    // A browser's form post from the page itself, with a name no header could carry raw.
    const form = { "content-type": "application/x-www-form-urlencoded", "sec-fetch-site": "same-origin", origin: front.url };
    r = await c.send("/login", { method: "POST", headers: form, body: `user=${encodeURIComponent("Zoë <東京>")}` });
    assert.equal(r.status, 303, appOut);
    assert.equal(r.cookies.length, 1, "signed in: keycard issues the cookie");
    assert.equal(r.headers["x-session-set"], undefined, "the app's control headers never reach the browser");
    r = await c.get("/");
    assert.match(r.text, /Hello, Zoë &#60;東京&#62;!/);

    // Another site cannot sign the user out: keycard's cross-origin check refuses it.
    r = await c.send("/logout", { method: "POST", headers: { "sec-fetch-site": "cross-site", origin: "https://evil.example" } });
    assert.equal(r.status, 403);
    assert.match((await c.get("/")).text, /Hello, Zoë/);

    r = await c.send("/logout", { method: "POST", headers: form, body: "" });
    assert.equal(r.status, 303);
    r = await c.get("/");
    assert.match(r.text, /<button>Sign in<\/button>/, "signed out");
  } finally {
    await front.stop();
    child.kill("SIGTERM");
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("make front without ORIGIN says how to use it", () => {
  const r = spawnSync("make", ["--no-print-directory", "front"], { cwd: ROOT, encoding: "utf8" });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /usage: make front ORIGIN=http:\/\/127\.0\.0\.1:9050/);
});
