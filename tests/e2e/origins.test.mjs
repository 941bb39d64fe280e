// Issue 22: the guards against the real origins whose behaviour they model. For
// KEYCARD_REQUIRE, each origin is first asked directly, to prove it serves the spelling
// as its protected area; then the same request through keycard, with no cookie, must
// never reach it. For identity headers, PHP, WSGI and Node apps show what they received.
// Each test of a finding failed before its fix.
import { test, before, after, describe } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startKeycard, startOrigin, Client, request, freePort, q, SECRET } from "./lib/harness.mjs";
import { mint } from "./lib/mint.mjs";

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "fixtures");
const now = () => Math.floor(Date.now() / 1000);
const signedIn = () => ({ cookie: `keycard=${mint({ secret: SECRET, iat: now(), data: { user: "ada" } })}` });

/** Runs `cmd args` (which listens on `port`) until it answers over HTTP. */
async function startServer(cmd, args, port) {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  for (let i = 0; ; i++) {
    try {
      await request(`http://127.0.0.1:${port}/`);
      break;
    } catch (e) {
      if (i > 100 || child.exitCode !== null) throw new Error(`${cmd} did not start:\n${out}\n${e.message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => { try { process.kill(-child.pid, "SIGTERM"); } catch {} },
  };
}

/** A node:http app that answers `app=<name>` to everything. */
async function namedApp(name) {
  const server = http.createServer((req, res) => res.end(`app=${name}\n`));
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { port: server.address().port, close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) };
}

/** nginx-light with `location /admin` (a prefix location) sent to one app, and
 * everything else to another. */
async function startNginx() {
  const [admin, main] = [await namedApp("admin"), await namedApp("main")];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "keycard-nginx-"));
  const port = await freePort();
  const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `  ${t}_temp_path ${dir}/${t};`).join("\n");
  fs.writeFileSync(path.join(dir, "nginx.conf"), `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log stderr warn;
events {}
http {
${temp}
  access_log off;
  server {
    listen 127.0.0.1:${port};
    location /admin { proxy_pass http://127.0.0.1:${admin.port}; }
    location / { proxy_pass http://127.0.0.1:${main.port}; }
  }
}
`);
  const nginx = await startServer("nginx", ["-p", dir, "-c", path.join(dir, "nginx.conf")], port);
  return { url: nginx.url, close: async () => { nginx.close(); await admin.close(); await main.close(); } };
}

/**
 * For each of `paths`: the origin, asked directly, answers `protectedBody`; through
 * keycard without a cookie the request gets keycard's 401 (it never reached the
 * origin); signed in, it gets the origin's answer.
 */
async function assertGuarded(kc, origin, paths, protectedBody) {
  for (const p of paths) {
    const direct = await request(origin.url + p);
    assert.equal(direct.text.trim(), protectedBody, `the origin itself serves ${p} as its protected area`);
    const r = await request(kc.url + p);
    assert.equal(r.status, 401, `${p} reached the origin without a sign-in: ${r.status} ${r.text}`);
    assert.equal(r.json?.error, "session_required", p);
    const ok = await request(kc.url + p, { headers: signedIn() });
    assert.equal(ok.text.trim(), protectedBody, `signed in, ${p} is served`);
  }
}

describe("KEYCARD_REQUIRE reads a path as generously as the origins behind it", () => {
  test("a PHP front controller (Symfony's Request and Routing under php -S) serves /index.php/admin as /admin", async () => {
    const port = await freePort();
    const php = await startServer("php", ["-S", `127.0.0.1:${port}`, "-t", path.join(FIXTURES, "symfony")], port);
    const kc = await startKeycard({ ORIGIN_URL: php.url, KEYCARD_REQUIRE: "/admin" });
    try {
      await assertGuarded(kc, php, ["/admin", "/index.php/admin", "/index.php/%61dmin", "/index%2ephp/admin", "/index.php/admin?next=1"], "route=admin");
      await assertGuarded(kc, php, ["/index.php/admin/users", "/app.php/../index.php/admin/users"], "route=admin_users");
      assert.equal((await request(kc.url + "/index.php")).text.trim(), "route=home", "the script alone is not the admin area");
      assert.equal((await request(kc.url + "/")).text.trim(), "route=home");
    } finally {
      await kc.close();
      php.close();
    }
  });

  // Issue 22's review: the login page's own script reading (/login) was required, so
  // KEYCARD_REQUIRE=/ sent /index.php/login to /index.php/login forever.
  test("a login page behind the front controller stays public: no loop", async () => {
    const port = await freePort();
    const php = await startServer("php", ["-S", `127.0.0.1:${port}`, "-t", path.join(FIXTURES, "symfony")], port);
    const kc = await startKeycard({ ORIGIN_URL: php.url, KEYCARD_REQUIRE: "/", KEYCARD_LOGIN_URL: "/index.php/login" });
    try {
      const page = { accept: "text/html" };
      const r = await request(kc.url + "/index.php/login", { headers: page });
      assert.equal(r.text.trim(), "route=login", `${r.status} ${r.headers.location ?? ""}`);
      const admin = await request(kc.url + "/index.php/admin", { headers: page });
      assert.equal(admin.status, 303);
      assert.equal(admin.headers.location, "/index.php/login?next=%2Findex.php%2Fadmin");
    } finally {
      await kc.close();
      php.close();
    }
  });

  test("a case-insensitive router (Express 5 at its defaults) serves /ADMIN as /admin", async () => {
    const port = await freePort();
    const app = await startServer(process.execPath, [path.join(FIXTURES, "express-app.mjs"), String(port)], port);
    const kc = await startKeycard({ ORIGIN_URL: app.url, KEYCARD_REQUIRE: "/admin" });
    try {
      await assertGuarded(kc, app, ["/Admin", "/ADMIN", "/aDmIn/"], "route=admin");
      await assertGuarded(kc, app, ["/ADMIN/users", "/Admin/Users"], "route=admin_users");
      assert.equal((await request(kc.url + "/")).text.trim(), "route=home");
    } finally {
      await kc.close();
      app.close();
    }
  });

  test("nginx's prefix location /admin serves /admin., /admin%20, /admin%3F and /administrator from the admin app", async () => {
    const nginx = await startNginx();
    const kc = await startKeycard({ ORIGIN_URL: nginx.url, KEYCARD_REQUIRE: "/admin" });
    try {
      await assertGuarded(kc, nginx, ["/admin", "/admin.", "/admin%20", "/admin%3F", "/administrator", "/admin%2e%2e"], "app=admin");
      assert.equal((await request(kc.url + "/adm")).text.trim(), "app=main");
    } finally {
      await kc.close();
      await nginx.close();
    }
  });

  // Issue 22's review: gunicorn takes SCRIPT_NAME from a header of any peer in
  // forwarded_allow_ips (loopback by default), and PATH_INFO is the rest.
  test("gunicorn serves /login/admin with a client's SCRIPT_NAME: /login as /admin; keycard drops the header", async () => {
    const port = await freePort();
    const env = { ...process.env, PYTHONPATH: path.resolve(FIXTURES, "../../../.tools/gunicorn") };
    const child = spawn("python3", ["-m", "gunicorn", "--bind", `127.0.0.1:${port}`, "--chdir", FIXTURES, "wsgi_routes:app"], { env, detached: true, stdio: "ignore" });
    const app = { url: `http://127.0.0.1:${port}`, close: () => { try { process.kill(-child.pid, "SIGTERM"); } catch {} } };
    for (let i = 0; i < 100; i++) {
      try { await request(app.url + "/"); break; } catch { await new Promise((r) => setTimeout(r, 100)); }
    }
    const kc = await startKeycard({ ORIGIN_URL: app.url, KEYCARD_REQUIRE: "/admin", KEYCARD_PUBLIC: "/login" });
    try {
      for (const [p, name] of [["/login/admin", "SCRIPT_NAME"], ["/login/admin", "Script.Name"], ["/static/admin", "SCRIPT_NAME"]]) {
        const prefix = p.slice(0, p.lastIndexOf("/admin"));
        if (name === "SCRIPT_NAME") {
          const direct = await request(app.url + p, { headers: { [name]: prefix } });
          assert.equal(direct.text.trim(), "route=admin", `gunicorn itself serves ${p} with ${name} as /admin`);
        }
        const r = await request(kc.url + p, { headers: { [name]: prefix } });
        assert.equal(r.text.trim(), `route=other:${p}`, `${p} with ${name}: ${r.status} ${r.text}`);
      }
    } finally {
      await kc.close();
      app.close();
    }
  });

  test("an exception listed in KEYCARD_PUBLIC keeps to its segments and its case", async () => {
    const nginx = await startNginx();
    const kc = await startKeycard({ ORIGIN_URL: nginx.url, KEYCARD_REQUIRE: "/", KEYCARD_PUBLIC: "/admin/help" });
    try {
      assert.equal((await request(kc.url + "/admin/help/faq")).text.trim(), "app=admin", "public");
      for (const p of ["/admin/helpdesk", "/Admin/help", "/admin/help.php/../x"]) {
        assert.equal((await request(kc.url + p)).status, 401, p);
      }
    } finally {
      await kc.close();
      await nginx.close();
    }
  });
});

// What a client sends to pose as a user, for apps set up behind other proxies: Authelia
// and Authentik (Remote-*), Apache (X-Remote-*), oauth2-proxy (X-Auth-Request-*,
// X-Forwarded-*), Grafana (X-WEBAUTH-*), in CGI spellings too.
const POSING = {
  "Remote-User": "root", "Remote-Groups": "admins", "Remote-Email": "root@example.com", "Remote-Name": "Root",
  "X-Remote-User": "root", "X-Remote-Group": "admins", "X-Auth-Request-User": "root",
  "X-Auth-Request-Groups": "admins", "X-Auth-Request-Preferred-Username": "root", "X-WEBAUTH-USER": "root",
  X_WEBAUTH_NAME: "root", "X-Forwarded-User": "root", "X-Forwarded-Email": "root@example.com",
  "X-Forwarded-Groups": "admins", "X-Forwarded-Preferred-Username": "root", "X-Forwarded-Access-Token": "t",
  "X-authentik-username": "root", "X-Pomerium-Claim-Email": "root@example.com",
};
// Headers some origins take the path from: gunicorn, IIS, Yii.
const OVERRIDING = { SCRIPT_NAME: "/login", PATH_INFO: "/admin", "X-Original-URL": "/admin", "X-Rewrite-Url": "/admin" };
// The CGI names of those headers (and their spellings), as PHP and WSGI show them.
const POSING_CGI = Object.keys({ ...POSING, ...OVERRIDING }).map((n) => "HTTP_" + n.toUpperCase().replace(/[^A-Z0-9]/g, "_"));

describe("identity headers reach an app only from keycard", () => {
  const echo = {
    php: (port) => ["php", ["-S", `127.0.0.1:${port}`, path.join(FIXTURES, "echo-env.php")]],
    wsgi: (port) => ["python3", [path.join(FIXTURES, "echo_env.py"), String(port)]],
  };
  for (const stack of Object.keys(echo)) {
    test(`${stack}: no client presents an identity, whichever proxy the app was set up for`, async () => {
      const port = await freePort();
      const app = await startServer(...echo[stack](port), port);
      const kc = await startKeycard({
        ORIGIN_URL: app.url,
        KEYCARD_IDENTITY_HEADERS: "Remote-User=user",
        KEYCARD_PASS_CLIENT_HEADERS: "X-Auth-Request-Email",
      });
      try {
        const extra = { "X-Auth-Request-Email": "partner@example.com", "Cf-Access-Authenticated-User-Email": "a@example.com" };
        for (const cookie of [{}, signedIn()]) {
          const seen = (await request(kc.url + "/", { headers: { ...POSING, ...OVERRIDING, ...extra, ...cookie } })).json;
          const posed = POSING_CGI.filter((k) => k in seen && !(k === "HTTP_REMOTE_USER" && seen[k] === "ada"));
          assert.deepEqual(posed, [], `a client's identity reached ${stack}: ${JSON.stringify(seen)}`);
          assert.equal(seen.HTTP_REMOTE_USER, cookie.cookie ? "ada" : undefined, "Remote-User comes from the session only");
          assert.equal(seen.HTTP_X_AUTH_REQUEST_EMAIL, "partner@example.com", "KEYCARD_PASS_CLIENT_HEADERS lets it through");
          assert.equal(seen.HTTP_CF_ACCESS_AUTHENTICATED_USER_EMAIL, "a@example.com", "Cf-Access-* is left alone");
        }
      } finally {
        await kc.close();
        app.close();
      }
    });
  }

  test("node: with no identity headers configured, Remote-User and its kin never reach the app", async () => {
    const origin = await startOrigin();
    const kc = await startKeycard({ ORIGIN_URL: origin.url });
    try {
      const r = await request(kc.url + "/", { headers: POSING });
      assert.equal(r.status, 200);
      const names = origin.last().rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
      const posed = Object.keys(POSING).map((n) => n.toLowerCase()).filter((n) => names.includes(n));
      assert.deepEqual(posed, [], "a client's identity reached the app");
    } finally {
      await kc.close();
      await origin.close();
    }
  });

  test("a user value with a space at either end is not sent, and the log names the header only", async () => {
    const origin = await startOrigin();
    const kc = await startKeycard({ ORIGIN_URL: origin.url, KEYCARD_IDENTITY_HEADERS: "Remote-User=user, Remote-Groups=groups" });
    try {
      const c = new Client(kc.url);
      await c.get(`/login?set=${q({ user: " dan ", groups: ["staff", " admins"] })}`);
      const r = await c.get("/page");
      assert.equal(r.json.headers["x-session-status"], "valid");
      assert.equal(r.json.headers["remote-user"], undefined, "never trimmed to \"dan\"");
      assert.equal(r.json.headers["remote-groups"], undefined);
      assert.ok(await kc.waitForEvent("identity_header_skipped"), "the skip is logged");
      await new Promise((r) => setTimeout(r, 300)); // the request's other log lines
      const skipped = kc.events().filter((e) => e.keycard === "identity_header_skipped").map((e) => e.detail.header);
      assert.deepEqual([...new Set(skipped)].sort(), ["remote-groups", "remote-user"]);
      assert.ok(!kc.logs.some((l) => l.includes(" dan ") || l.includes(" admins")), "no value is logged");
      const exact = new Client(kc.url);
      await exact.get(`/login?set=${q({ user: "dan", groups: ["staff", "admins"] })}`);
      const ok = await exact.get("/page");
      assert.equal(ok.json.headers["remote-user"], "dan");
      assert.equal(ok.json.headers["remote-groups"], "staff,admins");
    } finally {
      await kc.close();
      await origin.close();
    }
  });
});
