// Real headless Chromium for the browser tests: Debian's chromium (scripts/setup.sh
// browser installs it), driven through playwright-core, a fresh profile every time.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

import { chromium } from "playwright-core";

const CHROMIUM = "/usr/bin/chromium";
/** The switches every headless run gets. */
export const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/** A phone's screen: the narrowest the demo and the inspector are made for. */
export const PHONE = { viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true };

/** A fresh Chromium with a fresh profile; `fn(context, page)`; always cleaned up. A
 * desktop window unless `screen` says otherwise (`PHONE`); `extraArgs` go to Chromium,
 * and `executablePath` names another build than the system's (lib/dbsc-chromium.mjs). */
export async function withBrowser(fn, { extraArgs = [], screen = { viewport: { width: 1280, height: 860 } }, executablePath = CHROMIUM } = {}) {
  assert.ok(fs.existsSync(executablePath), `${executablePath} is missing: run \`scripts/setup.sh browser\` (make test does)`);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "keycard-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [...CHROMIUM_ARGS, ...extraArgs],
    ...screen,
    deviceScaleFactor: 1,
    colorScheme: "light",
    locale: "en-US",
    timezoneId: "UTC",
  });
  try {
    const page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(15000);
    return await fn(context, page);
  } finally {
    await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
}
