// The demo app and the session inspector in a real browser: Debian's headless Chromium
// driven by playwright-core, against the built Worker in `wrangler dev` with the demo
// (www/src/index.js) behind it through a service binding, exactly as `make dev` runs it.
//
// What Chromium does with the cookie settings (asserted below, not assumed):
//   SESSION_COOKIE_SECURE=false  cookie `keycard`, no Secure: stored and sent on any
//                                http host.
//   SESSION_COOKIE_SECURE=true   cookie `__Host-keycard; Secure; Path=/` (the default):
//                                stored and sent over plain http://127.0.0.1 and
//                                http://localhost, which Chromium treats as potentially
//                                trustworthy origins; silently refused on a non-loopback
//                                http host, so signing in there does not stick.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { parseSetCookie, request, startKeycard } from "./lib/harness.mjs";
import { PHONE, withBrowser } from "./lib/chromium.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const ARTIFACTS = path.join(ROOT, "tests/artifacts/browser");
const DEMO = fs.readFileSync(path.join(ROOT, "www/src/index.js"), "utf8");
// A name that is not loopback, so Chromium treats http:// on it as insecure; Chromium
// itself resolves it to 127.0.0.1.
const PLAIN_HOST = "keycard.test";

fs.mkdirSync(ARTIFACTS, { recursive: true });


const text = async (page, sel) => (await page.locator(sel).textContent())?.trim();

/** "23:59:58" or "6d 23:59:58" -> seconds. */
function clockSeconds(s) {
  const m = /^(?:(\d+)d )?(\d\d):(\d\d):(\d\d)$/.exec(s ?? "");
  assert.ok(m, `not a countdown: ${JSON.stringify(s)}`);
  return Number(m[1] ?? 0) * 86400 + Number(m[2]) * 3600 + Number(m[3]) * 60 + Number(m[4]);
}

/** The demo's cart, as { sku: qty }, read from the page. */
async function cartOnPage(page) {
  return Object.fromEntries(
    await page.$$eval("#cart-lines li", (lis) => lis.map((li) => [li.dataset.sku, Number(li.dataset.qty)])),
  );
}

async function submit(page, selector, expectPath) {
  await Promise.all([page.waitForURL((u) => u.pathname + u.search === expectPath), page.click(selector)]);
  // The page after the redirect (POST-redirect-GET) is fully there.
  await page.waitForLoadState("load");
}

async function addToCart(page, sku) {
  await submit(page, `.catalogue button[data-sku="${sku}"]`, "/?m=added");
}

async function removeFromCart(page, sku) {
  await submit(page, `#cart-lines button[data-sku="${sku}"]`, "/?m=removed");
}

async function signIn(page, name) {
  await page.fill("#login input[name=name]", name);
  await submit(page, "#login button", "/?m=welcome");
}

/** Opens the inspector and waits until it has rendered a /.keycard/session answer. */
async function openInspector(page, base) {
  const res = await page.goto(`${base}/.keycard/`);
  assert.equal(res.status(), 200);
  await page.waitForSelector("body:not([data-status=loading])");
  // The same JSON the page rendered from, read by the page's own fetch.
  return page.evaluate(async () => (await fetch("/.keycard/session", { cache: "no-store" })).json());
}

/** That `page` does not scroll sideways: nothing on it is wider than the viewport. */
async function assertFits(page, label) {
  const { scrollWidth, clientWidth } = await page.evaluate(() => {
    const e = document.documentElement;
    return { scrollWidth: e.scrollWidth, clientWidth: e.clientWidth };
  });
  assert.ok(scrollWidth <= clientWidth, `${label}: ${scrollWidth} px of page in a ${clientWidth} px wide window`);
}

/** That the element `selector` lies within the box of `within` (by default, the window). */
async function assertInside(page, selector, within, label) {
  const [inner, outer] = await page.evaluate(([sel, out]) => {
    const box = (e) => { const r = e.getBoundingClientRect(); return { left: r.left, right: r.right }; };
    const o = out ? box(document.querySelector(out)) : { left: 0, right: document.documentElement.clientWidth };
    return [box(document.querySelector(sel)), o];
  }, [selector, within]);
  assert.ok(inner.left >= outer.left - 0.5 && inner.right <= outer.right + 0.5,
    `${label}: ${selector} spans ${inner.left}-${inner.right} px, outside ${within ?? "the window"} (${outer.left}-${outer.right} px)`);
}

/** Every header cell of `table` has a name. */
async function assertHeadersNamed(page, table) {
  const names = await page.$$eval(`${table} th`, (ths) => ths.map((th) => th.textContent.trim()));
  assert.ok(names.length > 0 && names.every(Boolean), `${table} has a column without a header: ${JSON.stringify(names)}`);
}

async function sessionCookies(context) {
  return (await context.cookies()).filter((c) => c.name === "keycard" || c.name === "__Host-keycard");
}

// ---------------------------------------------------------------------------------

describe("browser: demo app and inspector in Chromium", { timeout: 240000 }, () => {
  /** keycard with the dev settings ([env.dev] of wrangler.toml): inspect on,
   * SESSION_COOKIE_SECURE=false, /account/ guarded, the users' Durable Objects bound
   * (sign-out everywhere), every signed-in request checked with them. */
  let dev;
  /** keycard with the defaults: inspect off, Secure on (`__Host-keycard`). */
  let prod;

  before(async () => {
    [dev, prod] = await Promise.all([
      startKeycard({ ORIGIN_SERVICE: "ORIGIN", KEYCARD_INSPECT: "true", SESSION_COOKIE_SECURE: "false",
        KEYCARD_REQUIRE: "/account/", KEYCARD_LOGIN_URL: "/login", SESSION_REVOCATION_CHECK: "always",
        KEYCARD_DEVICE_BOUND: "on" },
      { assets: true, serviceOrigin: DEMO, users: true }),
      // `undefined` drops the harness's SESSION_COOKIE_SECURE=false: keycard's own default.
      startKeycard({ ORIGIN_SERVICE: "ORIGIN", SESSION_COOKIE_SECURE: undefined }, { assets: true, serviceOrigin: DEMO }),
    ]);
  });

  after(async () => {
    await Promise.all([dev?.close(), prod?.close()]);
  });

  test("the whole flow: sign in, visits, cart, past 4 KB into KV, reload, sign out, back button", async () => {
    await withBrowser(async (context, page) => {
      const base = dev.url;

      // A visitor who does nothing gets no session: no cookie at all.
      let res = await page.goto(`${base}/`);
      assert.equal(res.status(), 200);
      assert.equal(res.headers()["cache-control"], "no-store");
      assert.equal(await text(page, "#status"), "none");
      assert.equal(await page.locator("#login").count(), 1);
      await page.reload();
      assert.deepEqual(await context.cookies(), [], "no cookie for a visitor who did nothing");
      let info = await openInspector(page, base);
      assert.equal(info.status, "none");
      assert.equal(await text(page, "#status"), "none");
      assert.ok(await page.locator("#empty").isVisible());
      assert.equal(await page.locator("#logout").isDisabled(), true);

      // A guest's first cart item creates the session.
      await page.goto(`${base}/`);
      await addToCart(page, "pager");
      assert.deepEqual(await cartOnPage(page), { pager: 1 });
      const guestHandle = await text(page, "#handle");
      assert.match(guestHandle, /^[A-Za-z0-9_-]{16,}$/);

      // Sign in: X-Session-Set + regenerate. A new session id (so a new handle), same data.
      await signIn(page, "Ada Lovelace");
      assert.equal(await text(page, "#user"), "Ada Lovelace");
      assert.equal(await text(page, "#visits"), "1");
      assert.equal(await text(page, "#status"), "valid");
      assert.deepEqual(await cartOnPage(page), { pager: 1 }, "regenerate keeps the data");
      assert.notEqual(await text(page, "#handle"), guestHandle, "regenerate gives a new session id");

      // The cookie: HttpOnly, SameSite=Lax, not Secure in this configuration, and
      // invisible to scripts even though document.cookie itself works.
      let cookies = await context.cookies();
      assert.deepEqual(cookies.map((c) => c.name), ["keycard"]);
      const [cookie] = cookies;
      assert.equal(cookie.httpOnly, true);
      assert.equal(cookie.secure, false);
      assert.equal(cookie.sameSite, "Lax");
      assert.equal(cookie.path, "/");
      assert.equal(cookie.domain, "127.0.0.1");
      const docCookie = await page.evaluate(() => {
        document.cookie = "theme=dark; path=/";
        return document.cookie;
      });
      assert.equal(docCookie, "theme=dark", "document.cookie shows the script's cookie and not keycard's");
      assert.ok(!docCookie.includes("keycard"));

      // Visits count on every page view; the origin never sees keycard's cookie.
      for (const n of [2, 3]) {
        await page.reload();
        assert.equal(await text(page, "#visits"), String(n));
      }
      const originCookie = await text(page, "#origin-cookie");
      assert.match(originCookie, /theme=dark/);
      assert.doesNotMatch(originCookie, /keycard=/, "keycard strips its cookie before the origin");

      // Fill the cart: floppy ×2, modem ×1, and take the pager out again.
      await addToCart(page, "floppy");
      await addToCart(page, "floppy");
      await addToCart(page, "modem");
      await removeFromCart(page, "pager");
      assert.deepEqual(await cartOnPage(page), { floppy: 2, modem: 1 });
      assert.equal(await text(page, "#cart-total"), "$73.00");

      // Still small: the data lives in the cookie.
      info = await openInspector(page, base);
      assert.equal(info.status, "valid");
      assert.equal(info.location, "cookie");
      assert.equal(await page.getAttribute("body", "data-location"), "cookie");
      assert.match(await text(page, "#location"), /Cookie/);
      assert.ok(info.cookie_size > 100 && info.cookie_size < 4096, `cookie size ${info.cookie_size}`);
      const smallCookieSize = info.cookie_size;
      await page.screenshot({ path: path.join(ARTIFACTS, "inspector-cookie.png"), fullPage: true });

      // Past 4 KB: auto mode moves the data to KV, and the cookie shrinks to a signed id.
      // The button says how big the history is, and the page then says the same.
      await page.goto(`${base}/`);
      const [, promised] = /^Load (\d+\.\d KB) of order history$/.exec(await text(page, "#load-history")) ?? [];
      assert.ok(promised, await text(page, "#load-history"));
      await submit(page, "#load-history", "/?m=history");
      assert.match(await text(page, "#history-loaded"), /48 orders/);
      assert.equal(await text(page, "#history-size"), promised);
      const [kvCookie] = await sessionCookies(context);
      assert.ok(kvCookie.value.length < smallCookieSize, `the cookie holds only an id now (${kvCookie.value.length} bytes)`);
      assert.equal(kvCookie.httpOnly, true);

      // Reload: everything is kept, and the visit still counts (every page view does:
      // 3 so far, one per cart change, one for the page before and after the history).
      await page.reload();
      assert.equal(await text(page, "#user"), "Ada Lovelace");
      assert.equal(await text(page, "#visits"), "10");
      assert.deepEqual(await cartOnPage(page), { floppy: 2, modem: 1 });
      assert.match(await text(page, "#history-loaded"), /48 orders/);
      const sessionSize = await text(page, "#session-size");
      await page.screenshot({ path: path.join(ARTIFACTS, "demo.png"), fullPage: true });

      // The inspector: status, location KV, kid, cookie bar, live countdowns, data.
      info = await openInspector(page, base);
      assert.equal(info.status, "valid");
      assert.equal(info.location, "kv");
      assert.equal(await text(page, "#status"), "valid");
      assert.equal(await page.getAttribute("body", "data-location"), "kv");
      assert.match(await text(page, "#location"), /^KV$/);
      assert.match(info.kid, /^[A-Za-z0-9_-]{4,}$/);
      assert.equal(info.kid, info.current_kid);
      assert.match(await text(page, "#kid"), new RegExp(`^${info.kid}\\s+current key$`));
      assert.equal(await text(page, "#handle"), info.handle);
      assert.equal(await text(page, "#cookie-name"), "keycard");
      assert.equal(await text(page, "#cookie-size"), String(info.cookie_size));
      assert.equal(await text(page, "#cookie-limit"), "4096");
      assert.ok(info.cookie_size < smallCookieSize);
      const barWidth = await page.$eval("#cookie-bar", (e) => parseFloat(e.style.width));
      assert.ok(Math.abs(barWidth - (info.cookie_size / 4096) * 100) < 0.01, `bar ${barWidth}% for ${info.cookie_size} bytes`);
      const data = await text(page, "#data");
      assert.match(data, /"user": "Ada Lovelace"/);
      assert.match(data, /"floppy": 2/);
      assert.match(data, /"A-10400"/);
      assert.deepEqual(info.data.cart, { floppy: 2, modem: 1 });
      assert.equal(info.data.order_history.orders.length, 48);
      assert.equal(await text(page, "#data-size"), sessionSize, "the inspector and the demo agree on the session's size");

      const idle1 = clockSeconds(await text(page, "#idle-left"));
      const abs1 = clockSeconds(await text(page, "#abs-left"));
      assert.ok(idle1 > 86400 - 120 && idle1 <= 86400, `idle countdown ${idle1}`);
      assert.ok(abs1 > 7 * 86400 - 300 && abs1 <= 7 * 86400, `absolute countdown ${abs1}`);
      assert.ok(Math.abs(idle1 - (info.idle_expires - info.now)) <= 3);
      await page.waitForTimeout(2100);
      const idle2 = clockSeconds(await text(page, "#idle-left"));
      const abs2 = clockSeconds(await text(page, "#abs-left"));
      assert.ok(idle2 < idle1 && idle1 - idle2 <= 4, `idle countdown ticks: ${idle1} -> ${idle2}`);
      assert.ok(abs2 < abs1 && abs1 - abs2 <= 4, `absolute countdown ticks: ${abs1} -> ${abs2}`);
      await page.screenshot({ path: path.join(ARTIFACTS, "inspector.png") });
      await page.screenshot({ path: path.join(ARTIFACTS, "inspector-full.png"), fullPage: true });

      // Sign out (destroy): everything is gone, the cookie too.
      await page.goto(`${base}/`);
      assert.equal(await text(page, "#user"), "Ada Lovelace");
      await submit(page, "#signout", "/?m=bye");
      assert.equal(await text(page, "#status"), "none");
      assert.equal(await page.locator("#user").count(), 0);
      assert.equal(await page.locator("#cart-lines").count(), 0);
      assert.equal(await page.locator("#history-loaded").count(), 0);
      assert.doesNotMatch(await page.content(), /Ada Lovelace/);
      assert.deepEqual(await sessionCookies(context), [], "destroy clears the cookie");
      cookies = await context.cookies();
      assert.deepEqual(cookies.map((c) => c.name), ["theme"], "the app's other cookies stay");
      await page.screenshot({ path: path.join(ARTIFACTS, "demo-signed-out.png"), fullPage: true });

      // The back button: the signed-in page is fetched again (no-store) and shows nothing.
      res = await page.goBack();
      assert.ok(res, "the previous page came from the network, not from a cache");
      assert.equal(new URL(page.url()).pathname, "/");
      assert.equal(res.headers()["cache-control"], "no-store");
      assert.equal(await text(page, "#status"), "none");
      assert.equal(await page.locator("#user").count(), 0);
      assert.equal(await page.locator("#cart-lines").count(), 0);
      assert.equal(await page.locator("#history-loaded").count(), 0);
      assert.doesNotMatch(await page.content(), /Ada Lovelace|A-10400/);
      assert.equal(await page.locator("#login").count(), 1);

      // And the inspector agrees.
      info = await openInspector(page, base);
      assert.equal(info.status, "none");
      assert.equal(info.data, null);
      assert.equal(await text(page, "#status"), "none");
      assert.ok(await page.locator("#empty").isVisible());
    });
  });

  test("a protected page: /account/ signed out goes to /login?next=, and back there after sign-in", async () => {
    await withBrowser(async (context, page) => {
      const base = dev.url;
      const here = () => { const u = new URL(page.url()); return u.pathname + u.search; };
      const redirects = [];
      page.on("response", (r) => {
        if (r.status() === 303) redirects.push([new URL(r.url()).pathname, r.headers().location]);
      });

      // Signed out: the page load is sent to the login page, with where it wanted to go.
      await page.goto(`${base}/account/`);
      assert.equal(here(), "/login?next=%2Faccount%2F");
      assert.deepEqual(redirects, [["/account/", "/login?next=%2Faccount%2F"]]);
      assert.equal(await text(page, "#next"), "/account/");
      assert.equal(await page.locator("#account-user").count(), 0);
      assert.equal(await page.locator("#signed-out-elsewhere").count(), 0, "a visitor who never signed in was not signed out");
      assert.deepEqual(await sessionCookies(context), [], "being sent to sign in creates no session");
      // The same URL fetched by a script is not a page load: keycard's 401, which only
      // keycard can give (the demo itself would answer with a redirect).
      const api = await page.evaluate(async () => {
        const r = await fetch("/account/", { cache: "no-store" });
        return { status: r.status, cacheControl: r.headers.get("cache-control"), body: await r.json() };
      });
      assert.deepEqual(api, { status: 401, cacheControl: "no-store", body: { error: "session_required", login: "/login?next=%2Faccount%2F" } });

      // Sign in on the login page: back on /account/, showing the name and the handle.
      await page.fill("#login input[name=name]", "Ada Lovelace");
      await submit(page, "#login button", "/account/");
      assert.equal(await text(page, "#account-user"), "Ada Lovelace");
      assert.match(await text(page, "#account-handle"), /^[A-Za-z0-9_-]{16,}$/);
      assert.equal((await sessionCookies(context)).length, 1);
      const res = await page.reload();
      assert.equal(res.status(), 200);
      assert.equal(res.headers()["cache-control"], "no-store");
      assert.equal(await text(page, "#account-user"), "Ada Lovelace");
      await page.screenshot({ path: path.join(ARTIFACTS, "demo-account.png"), fullPage: true });

      // A next that leaves the site is ignored: home, not elsewhere.
      await page.goto(`${base}/login?next=${encodeURIComponent("//evil.example/")}`);
      assert.equal(await page.locator("#next").count(), 0);

      // Signed out again, /account/ is out of reach once more.
      await page.goto(`${base}/account/`);
      await submit(page, "#signout", "/?m=bye");
      assert.deepEqual(await sessionCookies(context), []);
      await page.goto(`${base}/account/`);
      assert.equal(here(), "/login?next=%2Faccount%2F");
      assert.equal(await page.locator("#account-user").count(), 0);
    });
  });

  test("sign out everywhere: one browser ends another's session from the inspector, then from the demo", async () => {
    const base = dev.url;
    const signInAt = async (page, name) => {
      await page.goto(`${base}/login?next=%2Faccount%2F`);
      await page.fill("#login input[name=name]", name);
      await submit(page, "#login button", "/account/");
    };
    const where = (page) => { const u = new URL(page.url()); return u.pathname + u.search; };
    await withBrowser(async (laptopContext, laptop) => {
      await withBrowser(async (phoneContext, phone) => {
        await signInAt(laptop, "Grace Hopper");
        await signInAt(phone, "Grace Hopper");
        // The demo's "Your devices" card lists both, this one marked.
        await laptop.reload();
        await laptop.waitForSelector("#device-list tr[data-id]");
        assert.equal(await laptop.locator("#device-list tr[data-id]").count(), 2);
        assert.equal(await laptop.locator("#device-list tr.current").count(), 1);

        // The inspector lists the same two, with a button on the other one.
        await openInspector(laptop, base);
        await laptop.waitForSelector("#panel-sessions:not([hidden]) #sessions tr");
        assert.equal(await laptop.locator("#sessions tr").count(), 2);
        const phoneHandle = await phone.evaluate(async () => (await fetch("/.keycard/session", { cache: "no-store" })).json().then((s) => s.handle));
        await laptop.screenshot({ path: path.join(ARTIFACTS, "inspector-sessions.png"), fullPage: true });
        await laptop.click(`#sessions tr[data-id="${phoneHandle}"] button.revoke`);
        await laptop.waitForFunction(() => document.querySelectorAll("#sessions tr").length === 1);

        // The phone's next visit to the guarded page is checked: signed out, cookie gone,
        // and the login page says why (keycard's `session=revoked`).
        await phone.goto(`${base}/account/`);
        assert.equal(where(phone), "/login?next=%2Faccount%2F&session=revoked");
        assert.match(await text(phone, "#signed-out-elsewhere"), /signed out from another device/);
        assert.deepEqual(await sessionCookies(phoneContext), []);
        await phone.screenshot({ path: path.join(ARTIFACTS, "demo-signed-out-elsewhere.png"), fullPage: true });

        // Signed in again on the phone, then "Sign out everywhere else" on the laptop.
        await signInAt(phone, "Grace Hopper");
        await laptop.goto(`${base}/account/`);
        await submit(laptop, "#signout-others", "/account/?m=others");
        assert.ok(await laptop.locator("#others-done").isVisible());
        await laptop.waitForSelector("#device-list tr[data-id]");
        assert.equal(await laptop.locator("#device-list tr[data-id]").count(), 1);
        // With SESSION_REVOCATION_CHECK=always (as `make dev` runs) the phone's very next
        // page load, of any page, is signed out.
        await phone.goto(`${base}/`);
        assert.equal(await phone.locator("#user").count(), 0);
        assert.equal(await text(phone, "#status"), "invalid");
        assert.match(await text(phone, ".notice.warn"), /signed out from another device/);
        assert.deepEqual(await sessionCookies(phoneContext), []);
        // Its cookie is gone now: /account/ is a plain sign-in, with nothing to explain.
        await phone.goto(`${base}/account/`);
        assert.equal(where(phone), "/login?next=%2Faccount%2F");
        assert.equal(await phone.locator("#signed-out-elsewhere").count(), 0);
        // The laptop stays signed in.
        await laptop.goto(`${base}/account/`);
        assert.equal(await text(laptop, "#account-user"), "Grace Hopper");
        assert.equal((await sessionCookies(laptopContext)).length, 1);
      });
    });
  });

  test("at 360 px (a phone) and at desktop width nothing scrolls sideways: the demo, its devices, the inspector", async () => {
    const base = dev.url;
    // The pages at their widest: a cart, the order history, two devices, two sessions.
    const visit = async (page, label) => {
      await page.goto(`${base}/login?next=%2Faccount%2F`);
      await assertFits(page, `${label} login`);
      await page.fill("#login input[name=name]", "Katherine Johnson");
      await submit(page, "#login button", "/account/");
      await page.goto(`${base}/`);
      await addToCart(page, "crt");
      await addToCart(page, "floppy");
      await submit(page, "#load-history", "/?m=history");
    };
    const look = async (page, label) => {
      await page.goto(`${base}/`);
      assert.match(await text(page, "#history-loaded"), /48 orders/);
      await assertFits(page, `${label} demo home`);
      await page.screenshot({ path: path.join(ARTIFACTS, `${label}-demo.png`), fullPage: true });

      await page.goto(`${base}/account/`);
      await page.waitForFunction(() => document.querySelectorAll("#device-list tr[data-id]").length === 2);
      await assertFits(page, `${label} /account/`);
      await assertHeadersNamed(page, "#devices");
      await assertInside(page, "#devices .scroll", "#devices", `${label} devices table`);
      await page.screenshot({ path: path.join(ARTIFACTS, `${label}-account.png`), fullPage: true });

      await openInspector(page, base);
      await page.waitForFunction(() => document.querySelectorAll("#sessions tr").length === 2);
      await assertFits(page, `${label} inspector`);
      await assertHeadersNamed(page, "#panel-sessions");
      await assertInside(page, "#panel-sessions .scroll", "#panel-sessions", `${label} sessions table`);
      await assertInside(page, "#logout", null, `${label} inspector's Sign out`);
      await page.screenshot({ path: path.join(ARTIFACTS, `${label}-inspector.png`), fullPage: true });
    };
    await withBrowser(async (_, desktop) => {
      await withBrowser(async (_, phone) => {
        await visit(phone, "phone");
        await visit(desktop, "desktop");
        await look(phone, "phone");
        await look(desktop, "desktop");
      }, { screen: PHONE });
    });
  });

  test("a keycard whose ORIGIN_URL is itself shows its 508 at once, with why", async () => {
    const loop = await startKeycard({ ORIGIN_URL: (self) => self });
    try {
      await withBrowser(async (_, page) => {
        const started = Date.now();
        const res = await page.goto(`${loop.url}/shop`);
        assert.ok(Date.now() - started < 10000, `answered after ${Date.now() - started} ms, not at a timeout`);
        assert.equal(res.status(), 508);
        const body = await page.locator("body").innerText();
        assert.match(body, /^keycard: loop detected: this request came back to keycard itself; check ORIGIN_URL/);
        await page.screenshot({ path: path.join(ARTIFACTS, "loop.png") });
      });
      const ev = await loop.waitForEvent("forward_loop");
      assert.equal(ev?.detail.var, "ORIGIN_URL");
      assert.match(ev.detail.problem, /points back at this Worker/);
      assert.ok(!loop.logs.some((l) => l.includes("Network connection lost")), "no storm of errors");
    } finally {
      await loop.close();
    }
  });

  test("Secure=false (cookie `keycard`) also works on a non-loopback http host", async () => {
    const base = dev.url.replace("127.0.0.1", PLAIN_HOST);
    await withBrowser(async (context, page) => {
      await page.goto(`${base}/`);
      assert.equal(await page.evaluate(() => window.isSecureContext), false, `${PLAIN_HOST} is not a secure context`);
      await signIn(page, "Grace");
      await page.reload();
      assert.equal(await text(page, "#user"), "Grace");
      assert.equal(await text(page, "#visits"), "2");
      const cookies = await sessionCookies(context);
      assert.deepEqual(cookies.map((c) => [c.name, c.domain, c.secure, c.httpOnly]), [["keycard", PLAIN_HOST, false, true]]);

      // The inspector's own sign-out button: POST /.keycard/logout?next=/.keycard/.
      const info = await openInspector(page, base);
      assert.equal(info.data.user, "Grace");
      assert.equal(await page.locator("#logout").isDisabled(), false);
      await Promise.all([page.waitForResponse((r) => r.url().endsWith("/.keycard/logout?next=%2F.keycard%2F") && r.status() === 303), page.click("#logout")]);
      await page.waitForSelector("body[data-status=none]");
      assert.equal(new URL(page.url()).pathname, "/.keycard/");
      assert.deepEqual(await sessionCookies(context), []);
    }, { extraArgs: [`--host-resolver-rules=MAP ${PLAIN_HOST} 127.0.0.1`] });
  });

  test("Secure=true (the default): `__Host-keycard` over http://127.0.0.1 and localhost, refused elsewhere", async () => {
    // What keycard sends: the __Host- prefix rules (Secure, Path=/, no Domain).
    const login = await request(`${prod.url}/login`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "name=Lin",
    });
    assert.equal(login.status, 303);
    const sc = (login.headers["set-cookie"] ?? []).map(parseSetCookie);
    assert.equal(sc.length, 1);
    assert.equal(sc[0].name, "__Host-keycard");
    assert.equal(sc[0].attrs.secure, true);
    assert.equal(sc[0].attrs.httponly, true);
    assert.equal(sc[0].attrs.path, "/");
    assert.equal(sc[0].attrs.domain, undefined);

    await withBrowser(async (context, page) => {
      // Loopback over plain http is "potentially trustworthy": Chromium keeps the cookie.
      for (const host of ["127.0.0.1", "localhost"]) {
        const base = prod.url.replace("127.0.0.1", host);
        await page.goto(`${base}/`);
        assert.equal(await page.evaluate(() => window.isSecureContext), true, `${host} is a secure context`);
        await signIn(page, `Lin at ${host}`);
        await page.reload();
        assert.equal(await text(page, "#status"), "valid", `${host}: the __Host- cookie is sent back`);
        assert.equal(await text(page, "#user"), `Lin at ${host}`);
        assert.equal(await text(page, "#visits"), "2");
        const cookies = await sessionCookies(context);
        assert.deepEqual(cookies.map((c) => [c.name, c.domain, c.path, c.secure, c.httpOnly, c.sameSite]),
          [["__Host-keycard", host, "/", true, true, "Lax"]]);
        assert.equal(await page.evaluate(() => document.cookie), "", "HttpOnly: invisible to scripts");
        await submit(page, "#signout", "/?m=bye");
        assert.deepEqual(await sessionCookies(context), []);
      }

      // A non-loopback name over plain http is not secure: Chromium refuses the Secure
      // __Host- cookie, so signing in does not stick (use SESSION_COOKIE_SECURE=false there).
      const base = prod.url.replace("127.0.0.1", PLAIN_HOST);
      const setCookies = [];
      page.on("response", async (r) => {
        const v = (await r.allHeaders())["set-cookie"];
        if (v) setCookies.push(v);
      });
      await page.goto(`${base}/`);
      assert.equal(await page.evaluate(() => window.isSecureContext), false);
      await page.fill("#login input[name=name]", "Lin");
      await Promise.all([page.waitForURL((u) => u.search === "?m=welcome"), page.click("#login button")]);
      await page.waitForLoadState("load");
      assert.ok(setCookies.some((v) => v.startsWith("__Host-keycard=")), "keycard did send the cookie");
      assert.deepEqual(await context.cookies(), [], "Chromium refused it");
      assert.equal(await text(page, "#status"), "none");
      assert.equal(await page.locator("#user").count(), 0);
    }, { extraArgs: [`--host-resolver-rules=MAP ${PLAIN_HOST} 127.0.0.1`] });
  });

  test("with KEYCARD_INSPECT unset the inspector does not exist", async () => {
    await withBrowser(async (context, page) => {
      const base = prod.url;
      // The app itself works, with a session.
      await page.goto(`${base}/`);
      await signIn(page, "Ada");
      assert.equal(await text(page, "#status"), "valid");
      for (const p of ["/.keycard/", "/.keycard", "/.keycard/session", "/.keycard/index.html", "/.keycard/inspector.js", "/.keycard/inspector.css"]) {
        const res = await page.goto(`${base}${p}`);
        assert.equal(res.status(), 404, `${p} must be 404 with inspect off`);
        assert.doesNotMatch(await page.content(), /session inspector|"status"/, p);
      }
      // The same over plain HTTP, without the browser.
      for (const p of ["/.keycard/", "/.keycard/session"]) {
        assert.equal((await request(`${base}${p}`)).status, 404, p);
      }
      // ...while the same build with inspect on serves them.
      assert.equal((await request(`${dev.url}/.keycard/`)).status, 200);
      assert.equal((await request(`${dev.url}/.keycard/session`)).status, 200);
      assert.equal((await request(`${base}/.keycard/health`)).status, 200);
    });
  });
});
