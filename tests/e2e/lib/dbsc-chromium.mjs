// Headless Chromium 150 with device-bound sessions (DBSC) on, for the DBSC tests.
//
// Debian's Chromium 156 (/usr/bin/chromium, lib/chromium.mjs) never starts a DBSC
// registration headless; 150 registers and refreshes with software keys (ES256 and
// RS256).
// `scripts/setup.sh dbsc-chromium` unpacks 150 from bookworm main into
// .tools/dbsc-chromium, beside the system chromium, which keeps its version; the
// libraries it loads are the system chromium's. Driven through playwright-core, a fresh
// profile every time, with the CDP DBSC events collected.
//
// Sites: DBSC needs a secure context, so a test server on 127.0.0.1 is reached as
// http://localhost:PORT (every other name resolves to nothing).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { withBrowser } from "./chromium.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const HOME = path.join(ROOT, ".tools/dbsc-chromium");

/** The Debian package version `scripts/setup.sh dbsc-chromium` unpacks. */
export const DBSC_CHROMIUM_VERSION = "150.0.7871.100-1~deb12u1";
/** Its browser binary (not the /usr/bin wrapper script, which reads /etc/chromium.d). */
export const DBSC_CHROMIUM = path.join(HOME, "usr/lib/chromium/chromium");

/** The switches of the working recipe, after lib/chromium.mjs's usual ones. Chromium
 * reads only the last `--enable-features` and `--disable-features`, so these replace
 * playwright-core's own lists, which it puts first; nothing here needs those. The
 * signing quota (6 signatures per site per 9 minutes) is off so that a few-second
 * cookie can refresh as often as a test wants. */
export const DBSC_ARGS = [
  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
  "--enable-features=DeviceBoundSessions,EnableBoundSessionCredentialsSoftwareKeysForManualTesting,DeviceBoundSessionsDevTools",
  "--disable-features=DeviceBoundSessionSigningQuotaAndCaching",
];

/** The DBSC events CDP reports, in order, as `{ method, params }`, and a way to wait. */
class DbscEvents {
  list = [];
  #waiters = [];

  push(method, params) {
    this.list.push({ method, params });
    this.#waiters = this.#waiters.filter((w) => !w.check());
  }

  /** `Network.deviceBoundSessionEventOccurred` params, optionally only one kind of
   * detail (`creationEventDetails`, `refreshEventDetails`, `challengeEventDetails`, ...). */
  occurred(detail) {
    return this.list
      .filter((e) => e.method === "Network.deviceBoundSessionEventOccurred")
      .map((e) => e.params)
      .filter((p) => !detail || p[detail]);
  }

  /** Resolves with the first `occurred(detail)` event `pred` accepts, past or future. */
  waitFor(detail, pred = () => true, timeout = 15000) {
    return new Promise((resolve, reject) => {
      const waiter = {
        check: () => {
          const hit = this.occurred(detail).find(pred);
          if (hit) {
            clearTimeout(timer);
            resolve(hit);
          }
          return Boolean(hit);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter);
        reject(new Error(`no DBSC ${detail ?? "event"} within ${timeout} ms; saw ${JSON.stringify(this.list)}`));
      }, timeout);
      if (!waiter.check()) this.#waiters.push(waiter);
    });
  }
}

/** A fresh Chromium 150 with DBSC on and a fresh profile; `fn({ context, page, events,
 * cdp })` with DBSC events already being collected from `page`; always cleaned up. */
export async function withDbscBrowser(fn, { extraArgs = [] } = {}) {
  const have = fs.existsSync(path.join(HOME, ".version")) ? fs.readFileSync(path.join(HOME, ".version"), "utf8").trim() : "none";
  assert.equal(have, DBSC_CHROMIUM_VERSION, "run `scripts/setup.sh dbsc-chromium` (make test does)");
  return withBrowser(async (context, page) => {
    const events = new DbscEvents();
    const cdp = await context.newCDPSession(page);
    for (const method of ["Network.deviceBoundSessionEventOccurred", "Network.deviceBoundSessionsAdded"]) {
      cdp.on(method, (params) => events.push(method, params));
    }
    await cdp.send("Network.enable");
    await cdp.send("Network.enableDeviceBoundSessions", { enable: true });
    return fn({ context, page, events, cdp });
  }, { executablePath: DBSC_CHROMIUM, extraArgs: [...DBSC_ARGS, ...extraArgs] });
}
