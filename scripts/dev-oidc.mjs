// `make dev-oidc`: `make dev`, with keycard signing people in at an OpenID provider on
// this machine. `node scripts/dev-oidc.mjs <wrangler dev arguments>` starts the
// provider, then scripts/dev.mjs with those arguments and the sign-in settings added as
// `--var`s, and stops the provider once wrangler has stopped.
//
// The provider is the e2e suite's (tests/e2e/lib/provider.mjs): oidc-provider, in
// memory, with its development login form, which takes any login and any password. It
// knows one client, keycard, whose redirect URIs are keycard's callback on 127.0.0.1
// and on localhost, and two accounts with an email, email_verified, a name and groups.
// Any other login signs in too, as a user with only a `sub`.
//
// Every value here is for local use only and is public, as [env.dev]'s SESSION_SECRET
// is: the client secret goes to wrangler as a `--var`, like the rest.
import { spawn } from "node:child_process";
import net from "node:net";
import { constants } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { startProvider } from "../tests/e2e/lib/provider.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const PROVIDER_PORT = 8788;
const CLIENT_ID = "keycard-dev";
const CLIENT_SECRET = "dev-only-client-secret-do-not-deploy";
const ACCOUNTS = {
  ada: { email: "ada@corp.example", email_verified: true, name: "Ada Lovelace", groups: ["eng", "admins"] },
  grace: { email: "grace@navy.example", email_verified: true, name: "Grace Hopper", groups: ["ops"] },
};

const args = process.argv.slice(2);
const portAt = args.indexOf("--port");
const keycardPort = portAt >= 0 ? Number(args[portAt + 1]) : 8787;

/** Whether 127.0.0.1:`port` can be listened on now. */
function canListen(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once("error", () => resolve(false));
    srv.listen(port, "127.0.0.1", () => srv.close(() => resolve(true)));
  });
}

if (!(await canListen(PROVIDER_PORT))) {
  console.error(`dev-oidc: 127.0.0.1:${PROVIDER_PORT}, the provider's port, is in use (another \`make dev-oidc\`?)`);
  process.exit(1);
}

const op = await startProvider({
  port: PROVIDER_PORT,
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    redirect_uris: [`http://127.0.0.1:${keycardPort}/.keycard/callback`, `http://localhost:${keycardPort}/.keycard/callback`],
  }],
  accounts: ACCOUNTS,
});
// What went wrong at the provider shows on its page; this says so here too.
for (const event of ["authorization.error", "grant.error", "userinfo.error", "server_error"]) {
  op.provider.on(event, (ctx, err) => console.error(`dev-oidc: the provider's ${event}: ${err.error ?? err.name}: ${err.error_description ?? err.message}`));
}
console.log(`  The OpenID provider is on ${op.issuer} (its metadata: ${op.issuer}/.well-known/openid-configuration).`);

const vars = {
  KEYCARD_OIDC_ISSUER: op.issuer,
  KEYCARD_OIDC_CLIENT_ID: CLIENT_ID,
  KEYCARD_OIDC_CLIENT_SECRET: CLIENT_SECRET,
  KEYCARD_OIDC_SCOPES: "openid email profile groups",
  // [env.dev] sends /account/'s visitors to the demo's own /login. Empty is unset to
  // keycard: they go to /.keycard/login, and so to the provider.
  KEYCARD_LOGIN_URL: "",
};
const dev = spawn(process.execPath, [path.join(ROOT, "scripts/dev.mjs"), ...args,
  ...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`])], { stdio: "inherit" });

// Ctrl-C reaches wrangler through the terminal by itself, and scripts/dev.mjs passes an
// interrupt sent to it alone on to wrangler a moment later. The provider stays up until
// wrangler is gone, so that a request still in flight finds it.
process.on("SIGINT", () => dev.kill("SIGINT"));
process.on("SIGTERM", () => dev.kill("SIGTERM"));
process.on("SIGHUP", () => dev.kill("SIGHUP"));

dev.on("exit", async (code, signal) => {
  await op.close();
  process.exit(code ?? 128 + (constants.signals[signal] ?? 0));
});
