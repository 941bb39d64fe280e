// Acme Supply Co.: the demo "legacy app" behind keycard.
//
// Like any origin behind keycard it never sees a cookie, a key or a store. It reads
// the session from request headers and changes it with response headers:
//
//   request   X-Session         base64url of the session's JSON object (absent: none)
//             X-Session-Status  none | valid | expired | invalid
//             X-Session-Id      a stable, non-secret handle (safe to log)
//   response  X-Session-Set     a JSON object merged into the session; null deletes
//             X-Session-Action  destroy | clear | regenerate (comma list)
//
// Every page that shows session data is sent with `Cache-Control: no-store`, and every
// form is POST-redirect-GET, so the back button never shows a signed-out user's data.
//
// /account/ is for signed-in users only, and keycard sees to that before this app is
// asked (its own check below is only a fallback): keycard guards it (`KEYCARD_REQUIRE = "/account/"`, `KEYCARD_LOGIN_URL = "/login"` in
// wrangler.toml's dev environment) and sends a signed-out visitor to
// /login?next=%2Faccount%2F. The login page signs in, then goes back to `next` if it is
// a path on this site (one leading `/`), else home.
// Nothing here creates a session for a visitor who has done nothing: the visit counter
// only counts signed-in visits, and a guest's session starts with their first cart item.

const CATALOGUE = [
  { sku: "floppy", name: "3½″ floppy disks, box of 10", price: 1200 },
  { sku: "modem", name: "56k dial-up modem", price: 4900 },
  { sku: "toner", name: "Laser toner cartridge", price: 3500 },
  { sku: "crt", name: "17″ CRT monitor", price: 18900 },
  { sku: "pager", name: "Alphanumeric pager", price: 2900 },
];
const BY_SKU = new Map(CATALOGUE.map((p) => [p.sku, p]));
const MAX_QTY = 99;

// Notices after a POST-redirect-GET, keyed by `?m=`. Each shows only while it is still
// true, so going back in history after sign-out never claims you are signed in.
const NOTICES = {
  welcome: ["ok", "Signed in. The app sent X-Session-Set plus X-Session-Action: regenerate, so you now hold a brand-new session id (no session fixation)."],
  bye: ["ok", "Signed out. The app sent X-Session-Action: destroy: keycard deleted the server-side record and cleared the cookie."],
  name: ["warn", "Please type a name (1 to 40 characters)."],
  added: ["ok", "Added to your cart."],
  removed: ["ok", "Removed from your cart."],
  history: ["ok", "Loaded your order history into the session. It no longer fits in a 4 KB cookie, so keycard moved the data to KV. Open the inspector to see it."],
  dropped: ["ok", "Dropped the order history. The session fits in a cookie again, so keycard moved it back out of KV."],
};

// ------------------------------------------------------------- the protocol --

/** The session data keycard sent, or an empty object when there is none. */
function readSession(request) {
  const raw = request.headers.get("x-session");
  if (!raw) return {};
  try {
    return JSON.parse(new TextDecoder().decode(unb64url(raw)));
  } catch {
    return {};
  }
}

/**
 * The `X-Session-Set` value for an object. keycard accepts raw JSON or base64url; this
 * app sends base64url so that any name (ü, 東京, 🎉) survives the trip through HTTP
 * headers, which only carry Latin-1 safely.
 */
function sessionSet(changes) {
  return b64url(new TextEncoder().encode(JSON.stringify(changes)));
}

function b64url(bytes) {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function unb64url(text) {
  const s = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/** A 303 to a page (POST-redirect-GET), with optional session changes. */
function redirect(to, { set, action } = {}) {
  const headers = { location: to, "cache-control": "no-store" };
  if (set) headers["x-session-set"] = sessionSet(set);
  if (action) headers["x-session-action"] = action;
  return new Response(null, { status: 303, headers });
}

/**
 * `next` if it is a path on this site, else null: one leading `/` (not `//` or `/\`,
 * which a browser reads as another host), printable ASCII only, no backslash.
 */
function safeNext(value) {
  const next = typeof value === "string" ? value : "";
  return /^\/(?![/\\])[\x21-\x7e]*$/.test(next) && !next.includes("\\") ? next : null;
}

// ------------------------------------------------------------------ actions --

async function form(request) {
  try {
    return await request.formData();
  } catch {
    return new FormData();
  }
}

function cartOf(session) {
  const cart = {};
  if (session.cart && typeof session.cart === "object") {
    for (const [sku, qty] of Object.entries(session.cart)) {
      if (BY_SKU.has(sku) && Number.isInteger(qty) && qty > 0) cart[sku] = Math.min(qty, MAX_QTY);
    }
  }
  return cart;
}

/** About 4.8 KB of made-up order history (the same for the same name, but for
 * `loaded_at`, whose length never changes): more than a 4096-byte cookie can hold. */
function orderHistory(user) {
  const orders = [];
  let seed = [...String(user || "guest")].reduce((a, c) => (a * 31 + c.codePointAt(0)) >>> 0, 7);
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let i = 0; i < 48; i++) {
    const p = CATALOGUE[Math.floor(rand() * CATALOGUE.length)];
    const qty = 1 + Math.floor(rand() * 4);
    const day = new Date(Date.UTC(1998, 0, 1) + Math.floor(rand() * 700) * 86400000).toISOString().slice(0, 10);
    orders.push({ order: `A-${10400 + i}`, date: day, sku: p.sku, qty, total: money(p.price * qty), status: rand() < 0.9 ? "delivered" : "returned" });
  }
  return { loaded_at: new Date().toISOString(), orders };
}

const actions = {
  async "/login"(request) {
    const data = await form(request);
    const name = String(data.get("name") ?? "").trim().replace(/\s+/g, " ");
    const next = safeNext(data.get("next"));
    if (!name || [...name].length > 40) return redirect(next ? `/login?m=name&next=${encodeURIComponent(next)}` : "/?m=name");
    // Store who signed in, then regenerate: a new session id for the same data, so an
    // id planted before sign-in is worth nothing after it.
    return redirect(next ?? "/?m=welcome", { set: { user: name, signed_in_at: Math.floor(Date.now() / 1000), visits: 0 }, action: "regenerate" });
  },
  async "/logout"() {
    return redirect("/?m=bye", { action: "destroy" });
  },
  // "Sign out everywhere else": keycard ends every other session of this user, in
  // every browser, and keeps this one (it needs keycard's KEYCARD_USERS binding).
  async "/devices/signout-others"() {
    return redirect("/account/?m=others", { action: "destroy-others" });
  },
  async "/cart/add"(request, session) {
    const sku = String((await form(request)).get("sku") ?? "");
    if (!BY_SKU.has(sku)) return redirect("/");
    const cart = cartOf(session);
    cart[sku] = Math.min((cart[sku] ?? 0) + 1, MAX_QTY);
    return redirect("/?m=added#cart", { set: { cart } });
  },
  async "/cart/remove"(request, session) {
    const sku = String((await form(request)).get("sku") ?? "");
    const cart = cartOf(session);
    if (!cart[sku]) return redirect("/#cart");
    if (--cart[sku] === 0) delete cart[sku];
    // An empty cart is deleted from the session (null deletes a key).
    return redirect("/?m=removed#cart", { set: { cart: Object.keys(cart).length ? cart : null } });
  },
  async "/history/load"(request, session) {
    return redirect("/?m=history#history", { set: { order_history: orderHistory(session.user) } });
  },
  async "/history/drop"() {
    return redirect("/?m=dropped#history", { set: { order_history: null } });
  },
};

// -------------------------------------------------------------------- pages --

const esc = (s) =>
  String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

function money(cents) {
  return `$${(cents / 100).toFixed(2)}`;
}

/** A size as the inspector shows it (1 KB = 1024 bytes). */
function bytes(n) {
  return n < 1024 ? `${n} B` : `${(n / 1024).toFixed(1)} KB`;
}

/** The size of `value` as JSON text, in bytes. */
const jsonSize = (value) => new TextEncoder().encode(JSON.stringify(value)).length;

const STATUS_TEXT = {
  none: "no session yet: you have not done anything that needs one",
  valid: "a valid session",
  expired: "your session expired; keycard cleared the cookie",
  invalid: "your session cookie is no longer valid (signed out from another device, tampered, unknown key or gone from KV); keycard cleared it",
};

function accountCard(session, status) {
  if (session.user) {
    return `<section class="card" id="account">
  <h2>Account</h2>
  <p class="big">Hello, <b id="user">${esc(session.user)}</b>!</p>
  <p>You have visited this page <b id="visits">${Number(session.visits) || 0}</b> time${Number(session.visits) === 1 ? "" : "s"} since you signed in.
  Each visit the app answers <code>X-Session-Set: {"visits": n}</code>.</p>
  <form method="post" action="/logout"><button id="signout" class="secondary">Sign out</button></form>
</section>`;
  }
  return `<section class="card" id="account">
  <h2>Sign in</h2>
  <p>Not signed in. ${status === "none" ? "keycard has not created a session for you: visitors who do nothing leave no cookie and no KV record." : ""}</p>
  <form method="post" action="/login" id="login" class="row">
    <input name="name" placeholder="Your name" required maxlength="40" autocomplete="off" aria-label="Your name">
    <button>Sign in</button>
  </form>
  <p class="hint">No password: this is a demo. Visits are counted once you are signed in.</p>
</section>`;
}

function cartCard(session) {
  const cart = cartOf(session);
  const lines = Object.entries(cart).map(([sku, qty]) => ({ ...BY_SKU.get(sku), qty }));
  const total = lines.reduce((t, l) => t + l.price * l.qty, 0);
  const button = (action, sku, label, cls = "") =>
    `<form method="post" action="${action}"><input type="hidden" name="sku" value="${sku}"><button class="${cls}" data-sku="${sku}">${label}</button></form>`;
  return `<section class="card wide" id="cart">
  <h2>Shop</h2>
  <div class="shop">
    <ul class="catalogue">
${CATALOGUE.map((p) => `      <li><span>${esc(p.name)}</span><span class="price">${money(p.price)}</span>${button("/cart/add", p.sku, "Add", "small add")}</li>`).join("\n")}
    </ul>
    <div class="basket">
      <h3>Your cart</h3>
${lines.length
    ? `      <ul id="cart-lines">
${lines.map((l) => `        <li data-sku="${l.sku}" data-qty="${l.qty}"><span class="qty">${l.qty}×</span> <span>${esc(l.name)}</span><span class="price">${money(l.price * l.qty)}</span>${button("/cart/remove", l.sku, "Remove", "small ghost remove")}</li>`).join("\n")}
      </ul>
      <p class="total">Total <b id="cart-total">${money(total)}</b></p>`
    : `      <p id="cart-empty" class="hint">Your cart is empty. Adding an item creates a session even for a guest, and it survives sign-in.</p>`}
    </div>
  </div>
</section>`;
}

/** The order history: a button that loads it, labelled with the size it will have, or
 * what it added to the session (the inspector's "Session data" is the whole session). */
function historyCard(session) {
  const h = session.order_history;
  return `<section class="card" id="history">
  <h2>Big data</h2>
${h && Array.isArray(h.orders)
    ? `  <p id="history-loaded"><b>${h.orders.length} orders</b> (<span id="history-size">${bytes(jsonSize(h))}</span> of JSON) are in your session,
  which is now <span id="session-size">${bytes(jsonSize(session))}</span> of JSON in all: more than fits in a 4 KB cookie.</p>
  <div class="scroll"><table class="orders"><tr><th>Order</th><th>Date</th><th>Item</th><th>Total</th></tr>
${h.orders.slice(0, 3).map((o) => `    <tr><td>${esc(o.order)}</td><td>${esc(o.date)}</td><td>${esc(o.qty)}× ${esc(o.sku)}</td><td>${esc(o.total)}</td></tr>`).join("\n")}
  </table></div>
  <form method="post" action="/history/drop"><button id="drop-history" class="secondary">Drop the order history</button></form>`
    : `  <p>Legacy apps love to stuff things into the session. Load your order history and watch keycard (in <code>auto</code> mode) move the data from the cookie to KV.</p>
  <form method="post" action="/history/load"><button id="load-history">Load ${bytes(jsonSize(orderHistory(session.user)))} of order history</button></form>`}
</section>`;
}

function receivedCard(request, status) {
  const h = (name) => request.headers.get(name);
  const raw = h("x-session");
  const row = (name, value, id, note = "") =>
    `<tr><th>${name}</th><td${id ? ` id="${id}"` : ""}>${value == null ? `<span class="hint">(not sent)</span>` : `<code>${esc(value.length > 72 ? `${value.slice(0, 72)}…` : value)}</code>${note && ` <span class="hint">${esc(note)}</span>`}`}</td></tr>`;
  const expires = h("x-session-expires");
  return `<section class="card wide" id="received">
  <h2>What this app received</h2>
  <p class="hint">The request headers keycard forwarded for this page. The app never sees the session cookie: keycard strips it from <code>Cookie</code>.</p>
  <div class="scroll"><table class="headers">
    ${row("X-Session-Status", status, "status")}
    ${row("X-Session", raw, "x-session", raw ? bytes(raw.length) : "")}
    ${row("X-Session-Id", h("x-session-id"), "handle")}
    ${row("X-Session-Expires", expires, "expires", expires ? new Date(Number(expires) * 1000).toISOString().replace(".000", "") : "")}
    ${row("Cookie", h("cookie"), "origin-cookie")}
  </table></div>
</section>`;
}

function page(request, session, notice) {
  const status = request.headers.get("x-session-status") ?? "none";
  const stillTrue = {
    welcome: session.user,
    name: !session.user,
    bye: !session.user,
    added: session.cart,
    removed: session.user || session.cart,
    history: session.order_history,
    dropped: !session.order_history,
  };
  const [kind, text] = (stillTrue[notice] && NOTICES[notice]) || [];
  const alert = status === "expired" || status === "invalid" ? `<p class="notice warn">${esc(STATUS_TEXT[status])}.</p>` : "";
  return shell(session, `<p class="intro">This is a legacy app running <b>behind keycard</b>. It has no session code of its own: it reads the session from the
  <code>X-Session</code> request header and changes it with <code>X-Session-Set</code> and <code>X-Session-Action</code> response headers.
  keycard signs the cookie, keeps big sessions in KV and does the rest. Session status: <b class="pill ${esc(status)}" id="status-pill">${esc(status)}</b></p>
  ${text ? `<p class="notice ${kind}" id="notice">${esc(text)}</p>` : ""}${alert}
  <div class="grid">
${accountCard(session, status)}
${historyCard(session)}
${cartCard(session)}
${receivedCard(request, status)}
  </div>`);
}

/**
 * The sign-in page keycard sends signed-out visitors of /account/ to, with `?next=`.
 * keycard adds `&session=revoked` when the session it held had been ended from another
 * device (its user's object said so), and only then: a plain anonymous visitor, or a
 * cookie that is merely bad, gets the page without it.
 */
function loginPage(session, next, notice, ended) {
  const warn = notice === "name" ? `<p class="notice warn" id="notice">${esc(NOTICES.name[1])}</p>` : "";
  const revoked = ended === "revoked" && !session.user
    ? `<p class="notice warn" id="signed-out-elsewhere">You were signed out from another device. Sign in again to continue.</p>`
    : "";
  return shell(session, `<div class="grid">
<section class="card" id="sign-in">
  <h2>Sign in</h2>
  ${revoked}${next ? `<p id="next-note">Sign in to continue to <code id="next">${esc(next)}</code>. keycard sent you here because that page needs a signed-in user.</p>` : ""}
  ${session.user ? `<p class="hint">You are signed in as <b>${esc(session.user)}</b>; signing in again replaces that.</p>` : ""}${warn}
  <form method="post" action="/login" id="login" class="row">
    ${next ? `<input type="hidden" name="next" value="${esc(next)}">` : ""}
    <input name="name" placeholder="Your name" required maxlength="40" autocomplete="off" aria-label="Your name">
    <button>Sign in</button>
  </form>
  <p class="hint">No password: this is a demo. After signing in you go to <code>${esc(next ?? "/")}</code>.</p>
</section>
  </div>`);
}

/** /account/: only ever reached by a signed-in user, because keycard guards it. */
function accountPage(request, session, notice) {
  return shell(session, `<div class="grid">
<section class="card wide" id="account-page">
  <h2>Your account</h2>
  <p class="big">Signed in as <b id="account-user">${esc(session.user)}</b></p>
  <table class="headers">
    <tr><th>Session handle</th><td><code id="account-handle">${esc(request.headers.get("x-session-id") ?? "")}</code> <span class="hint">X-Session-Id: stable, safe to log, useless as a cookie</span></td></tr>
    <tr><th>Signed in at</th><td id="account-since">${session.signed_in_at ? esc(new Date(Number(session.signed_in_at) * 1000).toISOString().replace(".000", "")) : "-"}</td></tr>
  </table>
  <p class="hint">keycard's <code>KEYCARD_REQUIRE</code> keeps signed-out visitors away from <code>/account/</code>: a page load
  is sent to <code>/login?next=%2Faccount%2F</code>, a script's request gets a 401, and this app is never asked.</p>
  <p><a href="/">Back to the shop</a></p>
  <form method="post" action="/logout"><button id="signout" class="secondary">Sign out</button></form>
</section>
${devicesCard(notice)}
  </div>`);
}

/** "Your devices": the user's sessions as keycard lists them (GET /.keycard/sessions,
 * read by the browser: this app keeps no list of its own), and "sign out everywhere
 * else", which this app does by answering with X-Session-Action: destroy-others. */
function devicesCard(notice) {
  return `<section class="card wide" id="devices">
  <h2>Your devices</h2>
  ${notice === "others" ? `<p class="notice" id="others-done">Every other session of yours has ended.</p>` : ""}
  <div class="scroll"><table class="devices"><thead><tr><th>Device</th><th>Country</th><th>Signed in</th><th>Last seen</th></tr></thead>
  <tbody id="device-list"><tr><td colspan="4" class="hint">Loading…</td></tr></tbody></table></div>
  <form method="post" action="/devices/signout-others"><button id="signout-others" class="secondary">Sign out everywhere else</button></form>
  <script>
  (async () => {
    const body = document.getElementById("device-list");
    const ago = (t) => {
      const s = Math.max(0, Math.round(Date.now() / 1000 - t));
      return s < 10 ? "just now" : s < 60 ? s + " s ago" : s < 3600 ? Math.floor(s / 60) + " min ago"
        : s < 86400 ? Math.floor(s / 3600) + " h ago" : Math.floor(s / 86400) + " days ago";
    };
    const cell = (text, title) => {
      const td = document.createElement("td"); td.textContent = text;
      if (title) td.title = new Date(title * 1000).toISOString().replace(".000", "");
      return td;
    };
    const r = await fetch("/.keycard/sessions", { cache: "no-store" });
    if (!r.ok) { body.innerHTML = '<tr><td colspan="4" class="hint">keycard keeps no device list here (no KEYCARD_USERS binding).</td></tr>'; return; }
    body.replaceChildren(...(await r.json()).sessions.map((s) => {
      const tr = document.createElement("tr");
      tr.dataset.id = s.id;
      const device = cell(s.agent);
      if (s.current) {
        tr.className = "current";
        const here = document.createElement("span"); here.className = "pill valid"; here.textContent = "this device";
        device.append(" ", here);
      }
      tr.append(device, cell(s.country ?? ""), cell(ago(s.created), s.created), cell(ago(s.last_seen), s.last_seen));
      return tr;
    }));
  })();
  </script>
</section>`;
}

/** The page around every page's content. */
function shell(session, main) {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Acme Supply Co.${session.user ? ` · ${esc(session.user)}` : ""}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:image/svg+xml,${encodeURIComponent(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#b4441c"/><text x="8" y="12" font-size="11" text-anchor="middle" fill="#fff" font-family="Georgia">A</text></svg>`)}">
<style>${CSS}</style></head>
<body>
<header class="top">
  <div class="brand"><span class="logo">A</span><div><b>Acme Supply Co.</b><small>Office supplies since 1998</small></div></div>
  <nav>${session.user ? `<span class="who">Signed in as <b>${esc(session.user)}</b></span>` : `<span class="who">Guest</span>`}
    <a href="/account/" id="account-link">Your account</a>
    <a href="/.keycard/" class="inspect">Session inspector →</a></nav>
</header>
<main>
  ${main}
</main>
<footer>keycard demo · <a href="/.keycard/">inspector</a> · <a href="/.keycard/health">health</a></footer>
</body></html>`;
}

const CSS = `
:root{--ink:#1f2328;--muted:#656d76;--line:#d8dee4;--bg:#f6f3ee;--card:#fff;--brand:#b4441c;--brand-ink:#fff;--ok:#1a7f37;--warn:#9a6700}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);background:var(--bg)}
.top{display:flex;flex-wrap:wrap;justify-content:space-between;align-items:center;gap:.6rem 1rem;padding:.7rem 1.5rem;background:#fff;border-bottom:3px solid var(--brand)}
.brand{display:flex;align-items:center;gap:.7rem}.brand small{display:block;color:var(--muted);font-size:.8rem}
.logo{display:grid;place-items:center;width:2.2rem;height:2.2rem;border-radius:6px;background:var(--brand);color:#fff;font:700 1.3rem Georgia,serif}
nav{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem 1rem}.who{color:var(--muted)}
a{color:var(--brand)}a.inspect{font-weight:600;text-decoration:none;border:1px solid var(--brand);border-radius:6px;padding:.3rem .7rem}
a.inspect:hover{background:var(--brand);color:#fff}
main{max-width:64rem;margin:0 auto;padding:1.2rem 1.5rem}
.intro{color:var(--muted);max-width:52rem}
code{font:.85em ui-monospace,"DejaVu Sans Mono",monospace;background:#eff1f3;border-radius:4px;padding:.05rem .3rem;word-break:break-all}
.pill{display:inline-block;padding:0 .55rem;border-radius:999px;font-size:.85em;background:#eff1f3;color:var(--muted)}
.pill.valid{background:#dafbe1;color:var(--ok)}.pill.expired,.pill.invalid{background:#fff8c5;color:var(--warn)}
.notice{border-left:4px solid var(--ok);background:#fff;padding:.6rem .9rem;border-radius:4px}.notice.warn{border-color:var(--warn)}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(22rem,100%),1fr));gap:1rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:1rem 1.2rem;min-width:0}
.card.wide{grid-column:1/-1}
h2{margin:0 0 .6rem;font:600 1.05rem Georgia,serif;color:var(--brand)}h3{margin:0 0 .4rem;font-size:.95rem}
.big{font-size:1.2rem;margin:.2rem 0}.hint{color:var(--muted);font-size:.85rem}
form{display:inline;margin:0}.row{display:flex;gap:.5rem}
input{flex:1;font:inherit;padding:.4rem .6rem;border:1px solid var(--line);border-radius:6px}
button{font:inherit;font-weight:600;cursor:pointer;border:1px solid var(--brand);background:var(--brand);color:var(--brand-ink);border-radius:6px;padding:.4rem .9rem}
button:hover{filter:brightness(1.1)}button.secondary{background:#fff;color:var(--brand)}
button.small{padding:.1rem .6rem;font-size:.85rem}button.ghost{background:none;border-color:var(--line);color:var(--muted)}
.shop{display:grid;grid-template-columns:3fr 2fr;gap:1.5rem}
.catalogue,.basket ul{list-style:none;margin:0;padding:0}
.catalogue li,.basket li{display:flex;align-items:center;gap:.6rem;padding:.35rem 0;border-bottom:1px dashed var(--line)}
.catalogue li span:first-child,.basket li span:nth-child(2){flex:1}
.price{font-variant-numeric:tabular-nums;color:var(--muted)}.qty{font-weight:700}
.total{text-align:right;margin:.5rem 0 0}
table{border-collapse:collapse;width:100%;font-size:.85rem}th,td{text-align:left;padding:.25rem .4rem;border-bottom:1px solid var(--line);vertical-align:top}
.headers th{white-space:nowrap;width:1%;font-weight:600}.orders{margin:.5rem 0}
.scroll{overflow-x:auto}.devices{margin-bottom:.7rem}.devices tr.current td:first-child{font-weight:600}.devices .pill{font-weight:400;white-space:nowrap}
footer{text-align:center;color:var(--muted);font-size:.8rem;padding:2rem}
@media (max-width:40rem){.shop{grid-template-columns:1fr}.top{padding:.6rem .8rem}.brand small,.who{display:none}main{padding:1rem .8rem}.card{padding:.9rem .8rem}}
`;

// -------------------------------------------------------------------- entry --

export default {
  async fetch(request) {
    const url = new URL(request.url);
    const session = readSession(request);
    if (request.method === "POST" && Object.hasOwn(actions, url.pathname)) {
      // A little CSRF hygiene for a legacy app: refuse cross-site form posts.
      if (request.headers.get("sec-fetch-site") === "cross-site") {
        return new Response("cross-site request refused", { status: 403, headers: { "cache-control": "no-store" } });
      }
      return actions[url.pathname](request, session);
    }
    const get = request.method === "GET" || request.method === "HEAD";
    const html = { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" };
    if (get && url.pathname === "/login") {
      const q = url.searchParams;
      return new Response(loginPage(session, safeNext(q.get("next")), q.get("m"), q.get("session")), { headers: html });
    }
    if (get && url.pathname === "/account/") {
      // keycard never lets a signed-out visitor through; should it be run without its
      // guard, the page still shows nobody's data.
      if (!session.user) return redirect("/login?next=%2Faccount%2F");
      return new Response(accountPage(request, session, url.searchParams.get("m")), { headers: html });
    }
    if (get && url.pathname === "/") {
      const headers = { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" };
      if (session.user && request.method === "GET") {
        // Count visits only once signed in, so a drive-by visitor creates no session.
        session.visits = (Number(session.visits) || 0) + 1;
        headers["x-session-set"] = sessionSet({ visits: session.visits });
      }
      return new Response(page(request, session, url.searchParams.get("m")), { headers });
    }
    return new Response("Not found", { status: 404, headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" } });
  },
};
