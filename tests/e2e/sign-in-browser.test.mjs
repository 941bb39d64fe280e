// Signing in with OpenID Connect (docs/signing-in.md) in a real browser: Debian's
// headless Chromium, driven by playwright-core, against the built Worker in
// `wrangler dev`, a real origin on 127.0.0.1, and a real OpenID provider (oidc-provider,
// tests/e2e/lib/provider.mjs) whose login form the browser fills in. Every redirect,
// cookie and SameSite decision is Chromium's own, not a test client's idea of them.
//
// Two keycards share the provider: one with the dev settings (SESSION_COOKIE_SECURE=false:
// cookies `keycard` and `keycard-flow-<id>`) on 127.0.0.1, the provider's own host, as
// `make dev-oidc` runs; one with keycard's defaults (Secure: `__Host-keycard` and
// `__Host-keycard-flow-<id>`, which Chromium keeps over http://localhost because loopback
// counts as a secure context) reached as localhost, another site than the provider's.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { decodeSession, freePort, startKeycard, startOrigin } from "./lib/harness.mjs";
import { withBrowser } from "./lib/chromium.mjs";
import { startProvider } from "./lib/provider.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const ARTIFACTS = path.join(ROOT, "tests/artifacts/sign-in-browser");

const ADA = { email: "ada@corp.example", email_verified: true, name: "Ada Lovelace", groups: ["eng"] };
const GRACE = { email: "grace@navy.example", email_verified: true, name: "Grace Hopper", groups: ["ops"] };
const CLIENT = { client_id: "keycard", client_secret: "browser-test-secret" };

fs.mkdirSync(ARTIFACTS, { recursive: true });


/** The main frame's navigations from now on (every hop of a redirect chain), as URLs. */
function recordNavigations(page) {
  const hops = [];
  const onRequest = (r) => { if (r.isNavigationRequest() && r.frame() === page.mainFrame()) hops.push(r.url()); };
  page.on("request", onRequest);
  return { hops, stop: () => page.off("request", onRequest) };
}

/** What the origin saw for the page showing now: startOrigin answers with JSON
 * describing the request, which Chromium shows as text. */
async function originSaw(page) {
  const body = await page.evaluate(() => document.body.innerText);
  try {
    return JSON.parse(body);
  } catch {
    throw new Error(`not the origin's JSON at ${page.url()}:\n${body.slice(0, 600)}`);
  }
}

/** keycard's cookies in the browser: the session's and any sign-in flow's. */
async function keycardCookies(context) {
  return (await context.cookies()).filter((c) => /^(__Host-)?keycard(-flow-|$)/.test(c.name));
}

/** Fills the provider's development login form (any password), and waits to land on `back`. */
async function signInAtProvider(page, op, login, back) {
  assert.equal(new URL(page.url()).origin, op.issuer, `at the provider, not ${page.url()}`);
  await page.fill("input[name=login]", login);
  await page.fill("input[name=password]", "any password");
  await Promise.all([page.waitForURL(back), page.click("button[type=submit]")]);
}

describe("browser: sign in with an OpenID provider in Chromium", { timeout: 120000 }, () => {
  let origin, op, dev, prod;

  before(async () => {
    origin = await startOrigin();
    // keycard reads the issuer at start and fetches its metadata at the first sign-in,
    // so the provider's port is chosen first and the provider starts last, once it
    // knows keycard's callback URLs.
    const opPort = await freePort();
    const issuer = `http://127.0.0.1:${opPort}`;
    const vars = {
      ORIGIN_URL: origin.url,
      KEYCARD_OIDC_ISSUER: issuer,
      KEYCARD_OIDC_CLIENT_ID: CLIENT.client_id,
      KEYCARD_OIDC_CLIENT_SECRET: CLIENT.client_secret,
      KEYCARD_OIDC_SCOPES: "openid email profile groups",
      KEYCARD_REQUIRE: "/app/",
      KEYCARD_IDENTITY_HEADERS: "X-Forwarded-User=user, X-Forwarded-Email=email",
      KEYCARD_INSPECT: "true",
    };
    [dev, prod] = await Promise.all([
      startKeycard(vars, { assets: true }),
      // `undefined` drops the harness's SESSION_COOKIE_SECURE=false: keycard's own default.
      startKeycard({ ...vars, SESSION_COOKIE_SECURE: undefined }, { assets: true }),
    ]);
    assert.ok(![dev.port, prod.port].includes(opPort), "keycard took the provider's port; run the test again");
    op = await startProvider({
      port: opPort,
      clients: [{ ...CLIENT, redirect_uris: [`${dev.url}/.keycard/callback`, `${prod.url.replace("127.0.0.1", "localhost")}/.keycard/callback`] }],
      accounts: { ada: ADA, grace: GRACE },
    });
  });

  after(async () => {
    await Promise.all([dev?.close(), prod?.close(), op?.close(), origin?.close()]);
  });

  test("sign in at the provider's form, see the claims in the inspector, sign out, and be sent to the provider again", async () => {
    await withBrowser(async (context, page) => {
      const base = dev.url;
      const required = `${base}/app/report?q=1`;

      // An anonymous page load on a required path: keycard's login, then the provider's
      // authorization endpoint, then its login form. The origin is never asked.
      const seenBefore = origin.requests.length;
      let nav = recordNavigations(page);
      await page.goto(required);
      nav.stop();
      assert.equal(new URL(page.url()).origin, op.issuer, `the provider's form, not ${page.url()}`);
      assert.match(new URL(page.url()).pathname, /^\/interaction\//);
      assert.equal(nav.hops[0], required);
      assert.equal(nav.hops[1], `${base}/.keycard/login?next=%2Fapp%2Freport%3Fq%3D1`);
      const authorize = new URL(nav.hops[2]);
      assert.equal(authorize.origin + authorize.pathname, `${op.issuer}/auth`);
      assert.equal(authorize.searchParams.get("redirect_uri"), `${base}/.keycard/callback`);
      assert.equal(authorize.searchParams.get("code_challenge_method"), "S256");
      assert.equal(origin.requests.length, seenBefore, "the origin never saw the anonymous request");
      const flows = await keycardCookies(context);
      assert.equal(flows.length, 1, JSON.stringify(flows.map((c) => c.name)));
      assert.match(flows[0].name, /^keycard-flow-/);
      assert.equal(flows[0].httpOnly, true);
      assert.equal(flows[0].sameSite, "Lax");
      await page.screenshot({ path: path.join(ARTIFACTS, "provider-login.png") });

      // The provider's form, then back on the page that was asked for, signed in.
      nav = recordNavigations(page);
      await signInAtProvider(page, op, "ada", required);
      nav.stop();
      assert.ok(nav.hops.some((u) => u.startsWith(`${base}/.keycard/callback?`)), nav.hops.join("\n"));
      const seen = await originSaw(page);
      assert.equal(seen.url, "/app/report?q=1");
      assert.equal(seen.headers["x-session-status"], "valid");
      assert.equal(seen.headers["x-forwarded-user"], "ada@corp.example");
      assert.equal(seen.headers["x-forwarded-email"], "ada@corp.example");
      assert.deepEqual(decodeSession(seen.headers["x-session"]),
        { user: "ada@corp.example", email: "ada@corp.example", name: "Ada Lovelace", groups: ["eng"], idp: op.issuer });
      assert.doesNotMatch(seen.headers.cookie ?? "", /keycard/, "none of keycard's cookies reach the origin");
      const firstHandle = seen.headers["x-session-id"];
      assert.ok(firstHandle);
      let cookies = await keycardCookies(context);
      assert.deepEqual(cookies.map((c) => c.name), ["keycard"], "the session's cookie, and the flow's is gone");
      assert.equal(cookies[0].httpOnly, true);
      assert.equal(cookies[0].secure, false);
      assert.equal(cookies[0].sameSite, "Lax");
      const token = op.tokenRequests.at(-1);
      assert.equal(token.status, 200, "one code exchange, which the provider accepted");
      assert.ok(token.params.code_verifier, "with the PKCE verifier");

      // The inspector shows the provider's claims.
      let res = await page.goto(`${base}/.keycard/`);
      assert.equal(res.status(), 200);
      await page.waitForSelector("body:not([data-status=loading])");
      assert.equal((await page.locator("#status").textContent()).trim(), "valid");
      const data = await page.locator("#data").textContent();
      for (const shown of ['"user": "ada@corp.example"', '"email": "ada@corp.example"', '"name": "Ada Lovelace"', `"idp": "${op.issuer}"`, '"eng"']) {
        assert.ok(data.includes(shown), `the inspector shows ${shown}:\n${data}`);
      }
      const info = await page.evaluate(async () => (await fetch("/.keycard/session", { cache: "no-store" })).json());
      assert.deepEqual(info.data, { user: "ada@corp.example", email: "ada@corp.example", name: "Ada Lovelace", groups: ["eng"], idp: op.issuer });
      assert.equal(info.handle, firstHandle);
      await page.screenshot({ path: path.join(ARTIFACTS, "inspector-signed-in.png"), fullPage: true });

      // Sign out with the inspector's own button: POST /.keycard/logout?next=/.keycard/.
      assert.equal(await page.locator("#logout").isDisabled(), false);
      await Promise.all([
        page.waitForResponse((r) => r.url() === `${base}/.keycard/logout?next=%2F.keycard%2F` && r.status() === 303),
        page.click("#logout"),
      ]);
      await page.waitForSelector("body[data-status=none]");
      assert.equal(new URL(page.url()).pathname, "/.keycard/");
      assert.deepEqual(await keycardCookies(context), [], "signing out clears the session's cookie");

      // The required page sends the browser to the provider again. The provider still
      // has its own session (signing out of keycard ends keycard's only), so it answers
      // at once, without its form, and keycard makes a new session.
      const exchanges = op.tokenRequests.length;
      nav = recordNavigations(page);
      await page.goto(required);
      nav.stop();
      assert.equal(page.url(), required);
      assert.ok(nav.hops.some((u) => u.startsWith(`${op.issuer}/auth?`)), `through the provider:\n${nav.hops.join("\n")}`);
      assert.ok(nav.hops.some((u) => u.startsWith(`${base}/.keycard/callback?`)), nav.hops.join("\n"));
      assert.equal(op.tokenRequests.length, exchanges + 1);
      const again = await originSaw(page);
      assert.equal(again.headers["x-forwarded-user"], "ada@corp.example");
      assert.notEqual(again.headers["x-session-id"], firstHandle, "a new session, not the one that ended");

      // Sign out of both: of keycard with a same-origin fetch from the page, of the
      // provider at its end_session_endpoint. Now the required page shows the form.
      const out = await page.evaluate(async () => {
        const r = await fetch("/.keycard/logout", { method: "POST", redirect: "manual" });
        return r.type === "opaqueredirect" ? 303 : r.status;
      });
      assert.ok([200, 204, 303].includes(out), `logout answered ${out}`);
      assert.deepEqual(await keycardCookies(context), []);
      await page.goto(`${op.issuer}/session/end`);
      await Promise.all([page.waitForLoadState("load"), page.click("button[name=logout]")]);
      await page.waitForSelector("text=Signed out.");
      await page.goto(required);
      assert.equal(new URL(page.url()).origin, op.issuer);
      assert.equal(await page.locator("input[name=login]").count(), 1, "the provider's form again");

      // And someone else can sign in there.
      await signInAtProvider(page, op, "grace", required);
      assert.equal((await originSaw(page)).headers["x-forwarded-user"], "grace@navy.example");
    });
  });

  test("a cancelled sign-in and a refused user each get a page that says so and starts again", async () => {
    await withBrowser(async (context, page) => {
      const required = `${dev.url}/app/cancel`;
      // The provider's "[ Cancel ]": it answers error=access_denied, and keycard a 403.
      await page.goto(required);
      let [res] = await Promise.all([
        page.waitForResponse((r) => r.url().startsWith(`${dev.url}/.keycard/callback?error=access_denied`)),
        page.click("text=[ Cancel ]"),
      ]);
      assert.equal(res.status(), 403);
      await page.waitForSelector("text=access_denied");
      assert.deepEqual(await keycardCookies(context), [], "no session, and the flow's cookie is gone");
      await Promise.all([page.waitForURL((u) => u.origin === op.issuer), page.click("text=Start again")]);
      assert.equal(await page.locator("input[name=login]").count(), 1, "starting again shows the provider's form");

      // A login the provider knows no email for: no verified email, refused with the rule.
      await page.fill("input[name=login]", "eve");
      await page.fill("input[name=password]", "any password");
      [res] = await Promise.all([
        page.waitForResponse((r) => r.url().startsWith(`${dev.url}/.keycard/callback?`)),
        page.click("button[type=submit]"),
      ]);
      assert.equal(res.status(), 403);
      await page.waitForSelector("text=email_verified");
      assert.deepEqual(await keycardCookies(context), []);
    });
  });

  // The refusal page's "Sign in as someone else" asks the provider with prompt=login: a
  // provider that still has its session (eve's) would otherwise sign eve in again at
  // once, and the browser would be back on the same 403, never at a form where someone
  // else could sign in (it was, before the link carried the prompt).
  test("'Sign in as someone else' on the refusal page reaches the provider's form", async () => {
    await withBrowser(async (context, page) => {
      const required = `${dev.url}/app/else`;
      await page.goto(required);
      await page.fill("input[name=login]", "eve");
      await page.fill("input[name=password]", "any password");
      await Promise.all([page.waitForURL((u) => u.pathname === "/.keycard/callback"), page.click("button[type=submit]")]);
      await page.waitForSelector("text=Sign in as someone else");
      await Promise.all([page.waitForNavigation(), page.click("text=Sign in as someone else")]);
      await page.waitForLoadState("load");
      assert.equal(new URL(page.url()).origin, op.issuer,
        `'Sign in as someone else' should reach the provider's form; it landed on ${page.url()}: ${(await page.evaluate(() => document.body.innerText)).slice(0, 200)}`);
      assert.equal(await page.locator("input[name=login]").count(), 1);
    });
  });

  test("across sites, with keycard's default Secure cookies: __Host- prefixed, over http://localhost", async () => {
    await withBrowser(async (context, page) => {
      // keycard on localhost and the provider on 127.0.0.1 are two sites, as keycard and
      // a company's provider are: the way back is a cross-site navigation, on which only
      // a SameSite=Lax (or None) flow cookie comes along.
      const base = prod.url.replace("127.0.0.1", "localhost");
      const required = `${base}/app/`;
      await page.goto(required);
      const flows = await keycardCookies(context);
      assert.deepEqual(flows.map((c) => c.name.replace(/^(__Host-keycard-flow-).+$/, "$1*")), ["__Host-keycard-flow-*"]);
      assert.equal(flows[0].secure, true);
      assert.equal(flows[0].path, "/");
      assert.equal(flows[0].sameSite, "Lax");
      assert.equal(flows[0].domain, "localhost");
      await signInAtProvider(page, op, "grace", required);
      const seen = await originSaw(page);
      assert.equal(seen.headers["x-session-status"], "valid");
      assert.equal(seen.headers["x-forwarded-user"], "grace@navy.example");
      const cookies = await keycardCookies(context);
      assert.deepEqual(cookies.map((c) => c.name), ["__Host-keycard"]);
      assert.equal(cookies[0].secure, true);
      assert.equal(cookies[0].httpOnly, true);
      assert.equal(seen.headers.cookie, undefined, "another site's cookies stay there");
    });
  });
});
