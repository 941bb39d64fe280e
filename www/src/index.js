// The demo "legacy app" behind keycard. Like any origin it never sees a cookie or a
// key: it reads the session from X-Session and changes it with X-Session-Set and
// X-Session-Action response headers.

function readSession(request) {
  const raw = request.headers.get("x-session");
  if (!raw) return {};
  const b64 = raw.replace(/-/g, "+").replace(/_/g, "/");
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return JSON.parse(new TextDecoder().decode(bytes));
}

const esc = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

function page(request, session) {
  const status = request.headers.get("x-session-status");
  const user = session.user;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Legacy App</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}
form{display:inline}button{margin:.2rem}code{background:#eee;padding:0 .3rem}</style></head>
<body>
<h1>Legacy App</h1>
<p>Session status: <code id="status">${esc(status)}</code></p>
${user ? `<p id="hello">Signed in as <b>${esc(user)}</b>.</p>` : `<p id="hello">Not signed in.</p>`}
<p>Visits: <b id="visits">${Number(session.visits || 0)}</b></p>
<form method="post" action="/login"><input name="name" placeholder="Your name" required><button>Sign in</button></form>
<form method="post" action="/logout"><button id="signout">Sign out</button></form>
<p><a href="/.keycard/">Open the session inspector</a></p>
</body></html>`;
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    const session = readSession(request);
    const headers = { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" };
    if (request.method === "POST" && url.pathname === "/login") {
      const form = await request.formData();
      const name = String(form.get("name") || "").slice(0, 64);
      return new Response(null, {
        status: 303,
        headers: { location: "/", "x-session-set": JSON.stringify({ user: name }), "x-session-action": "regenerate" },
      });
    }
    if (request.method === "POST" && url.pathname === "/logout") {
      return new Response(null, { status: 303, headers: { location: "/", "x-session-action": "destroy" } });
    }
    if (url.pathname === "/") {
      const visits = Number(session.visits || 0) + 1;
      session.visits = visits;
      return new Response(page(request, session), {
        headers: { ...headers, "x-session-set": JSON.stringify({ visits }) },
      });
    }
    return new Response("not found", { status: 404, headers });
  },
};
