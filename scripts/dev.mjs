// `wrangler dev`, then what to try: `node scripts/dev.mjs <wrangler dev arguments>`
// prints $KEYCARD_STEPS once keycard answers, so that the steps come after wrangler's
// start-up output instead of scrolling away above it (`make dev`, `make front`).
//
// wrangler keeps the terminal, with its colours and hotkeys. It tells its launcher over
// IPC when its proxy listens (DEV_SERVER_READY), which is before the Worker is loaded;
// the proxy holds requests until then, so the answer to one request to keycard's health
// endpoint comes once the Worker is ready (wrangler logs that request in its usual line).
// Ctrl-C reaches wrangler directly, as it does without this script; this script waits
// for it to stop and exits with its exit status.
import { spawn } from "node:child_process";
import { constants } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const WRANGLER = path.join(ROOT, "node_modules/wrangler/bin/wrangler.js");
const STEPS = (process.env.KEYCARD_STEPS ?? "").trimEnd();

const wrangler = spawn(process.execPath, [WRANGLER, ...process.argv.slice(2)], {
  stdio: ["inherit", "inherit", "inherit", "ipc"],
});

/** The first answer of the Worker at `base`, or null when it gives none in time. */
async function firstAnswer(base) {
  const until = Date.now() + 120_000;
  while (Date.now() < until && wrangler.exitCode === null) {
    try {
      return await fetch(`${base}/.keycard/health`, { signal: AbortSignal.timeout(30_000) });
    } catch {
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  return null;
}

let asked = false;
wrangler.on("message", async (message) => {
  let ready;
  try {
    ready = JSON.parse(message);
  } catch {
    return;
  }
  if (ready.event !== "DEV_SERVER_READY" || asked) return;
  asked = true;
  const answer = await firstAnswer(`http://${ready.ip}:${ready.port}`);
  if (!answer || wrangler.exitCode !== null) return;
  const trouble = answer.status >= 500
    ? `  keycard answered ${answer.status} at /.keycard/health: the log line above says why.\n\n`
    : "";
  process.stdout.write(`\n${trouble}${STEPS}\n\n`);
});

// The terminal sends Ctrl-C to wrangler as well. An interrupt sent to this script
// alone (`kill -INT`, an editor's stop button) reaches wrangler a moment later, if it is
// still running then; TERM and HUP (a parent stopping this script, a closed terminal)
// are passed on at once.
process.on("SIGINT", () => setTimeout(() => wrangler.kill("SIGINT"), 1000).unref());
process.on("SIGTERM", () => wrangler.kill("SIGTERM"));
process.on("SIGHUP", () => wrangler.kill("SIGHUP"));

wrangler.on("exit", (code, signal) => {
  process.exit(code ?? 128 + (constants.signals[signal] ?? 0));
});
