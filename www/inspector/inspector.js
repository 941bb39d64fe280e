// keycard session inspector. Reads `{prefix}session` (served only with
// KEYCARD_INSPECT=true) and shows it; the edge never refreshes the session for this
// read, so watching the page does not keep a session alive.
"use strict";

(function () {
  const PREFIX = new URL(".", document.baseURI).pathname; // e.g. "/.keycard/"
  const ENDPOINT = new URL("session", document.baseURI).href;
  const POLL_MS = 3000;

  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  };

  let state = null; // the last /session answer
  let skew = 0; // server clock minus local clock, in seconds
  let lastDataJSON = null;
  let inFlight = false;
  let refetchedAtZero = false;

  const now = () => Date.now() / 1000 + skew;

  // ------------------------------------------------------------- formatting --

  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    const sec = s % 60;
    const two = (n) => String(n).padStart(2, "0");
    return (d ? `${d}d ` : "") + `${two(h)}:${two(m)}:${two(sec)}`;
  }

  function humane(seconds) {
    const s = Math.round(Math.abs(seconds));
    const parts = (a, ua, b, ub) => (b ? `${a}${ua} ${b}${ub}` : `${a}${ua}`);
    if (s < 60) return `${s}s`;
    if (s < 3600) return parts(Math.floor(s / 60), "m", s % 60, "s");
    if (s < 172800) return parts(Math.floor(s / 3600), "h", Math.floor((s % 3600) / 60), "m");
    return parts(Math.floor(s / 86400), "d", Math.floor((s % 86400) / 3600), "h");
  }

  function ago(t) {
    const d = now() - t;
    return d < 1 ? "just now" : `${humane(d)} ago`;
  }

  function clockTime(t) {
    return new Date(t * 1000).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "medium" });
  }

  function bytes(n) {
    return n < 1024 ? `${n} B` : `${(n / 1024).toFixed(1)} KB`;
  }

  // ------------------------------------------------------------- JSON view --

  function stringNode(s) {
    const LIMIT = 160;
    const quoted = JSON.stringify(s);
    if (quoted.length <= LIMIT) return el("span", "s", quoted);
    const span = el("span", "s", quoted.slice(0, LIMIT));
    const more = el("span", "more", ` … +${quoted.length - LIMIT} chars`);
    more.title = "Show all";
    more.style.cursor = "pointer";
    more.addEventListener("click", () => { span.textContent = quoted; more.remove(); });
    const f = document.createDocumentFragment();
    f.append(span, more);
    return f;
  }

  function jsonNode(v, depth) {
    const f = document.createDocumentFragment();
    const pad = (d) => "  ".repeat(d);
    if (v === null) f.append(el("span", "z", "null"));
    else if (typeof v === "string") f.append(stringNode(v));
    else if (typeof v === "number") f.append(el("span", "n", String(v)));
    else if (typeof v === "boolean") f.append(el("span", "b", String(v)));
    else {
      const isArr = Array.isArray(v);
      const entries = isArr ? v.map((x, i) => [i, x]) : Object.entries(v);
      const [open, close] = isArr ? ["[", "]"] : ["{", "}"];
      if (!entries.length) {
        f.append(el("span", "p", open + close));
        return f;
      }
      const body = document.createDocumentFragment();
      entries.forEach(([k, x], i) => {
        body.append("\n" + pad(depth + 1));
        if (!isArr) body.append(el("span", "k", JSON.stringify(k)), el("span", "p", ": "));
        body.append(jsonNode(x, depth + 1));
        if (i < entries.length - 1) body.append(el("span", "p", ","));
      });
      body.append("\n" + pad(depth));
      if (depth > 0 && entries.length > 6) {
        // Long arrays and objects start folded; click to unfold.
        const label = `${open} ${entries.length} ${isArr ? "items" : "keys"} ${close}`;
        const toggle = el("span", "fold", `▸ ${label}`);
        const inner = el("span");
        inner.append(el("span", "p", open), body, el("span", "p", close));
        inner.hidden = true;
        toggle.setAttribute("role", "button");
        toggle.tabIndex = 0;
        const flip = () => {
          inner.hidden = !inner.hidden;
          toggle.textContent = inner.hidden ? `▸ ${label}` : "▾ ";
        };
        toggle.addEventListener("click", flip);
        toggle.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); flip(); } });
        f.append(toggle, inner);
      } else {
        f.append(el("span", "p", open), body, el("span", "p", close));
      }
    }
    return f;
  }

  // ---------------------------------------------------------------- render --

  const STATUS_NOTES = {
    valid: "The cookie's MAC checked out and the session is live.",
    none: "No session cookie: nothing has been stored yet.",
    expired: "The session passed its idle or absolute expiry. The app gets no data.",
    invalid: "Bad MAC, malformed cookie, unknown key, or a KV record that is gone.",
  };

  const ICONS = {
    cookie: '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round"><path d="M12 3a9 9 0 1 0 9 9 3 3 0 0 1-3-3 3 3 0 0 1-3-3 3 3 0 0 1-3-3z"/><circle cx="8.5" cy="11.5" r=".6" fill="currentColor"/><circle cx="13" cy="15.5" r=".6" fill="currentColor"/><circle cx="8.5" cy="16" r=".6" fill="currentColor"/></svg>',
    kv: '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2"><ellipse cx="12" cy="5.5" rx="7.5" ry="2.8"/><path d="M4.5 5.5v13c0 1.5 3.4 2.8 7.5 2.8s7.5-1.3 7.5-2.8v-13M4.5 12c0 1.5 3.4 2.8 7.5 2.8s7.5-1.3 7.5-2.8"/></svg>',
  };

  function render(s) {
    const has = s.status === "valid" && s.data;
    document.body.dataset.status = s.status;
    document.body.dataset.location = s.location || "none";

    $("status").textContent = s.status;
    $("status-note").textContent = STATUS_NOTES[s.status] || "";

    // Where the data lives.
    const loc = $("location");
    loc.textContent = "";
    if (s.location === "cookie" || s.location === "kv") {
      const w = el("span", `where ${s.location}`);
      w.innerHTML = ICONS[s.location]; // static markup above, never session data
      w.append(s.location === "kv" ? "KV" : "Cookie");
      loc.append(w);
      $("location-note").textContent = s.location === "kv"
        ? "Too big for a cookie: the cookie holds only a signed session id, the data is in Workers KV."
        : "All the data is in the signed cookie. There is no KV record.";
    } else {
      loc.append("—");
      $("location-note").textContent = "Nothing is stored anywhere.";
    }

    // Key id.
    const kid = $("kid");
    kid.textContent = s.kid || "—";
    if (s.kid) {
      const current = s.kid === s.current_kid;
      kid.append(" ", el("span", current ? "badge" : "badge old", current ? "current key" : "previous key"));
      $("kid-note").textContent = current
        ? "Derived from SESSION_SECRET with HKDF; the id names the key, not the secret."
        : `Accepted from SESSION_SECRET_PREVIOUS; the next write re-signs it under ${s.current_kid}.`;
    } else {
      $("kid-note").textContent = `New cookies are signed with key ${s.current_kid}.`;
    }
    $("handle").textContent = s.handle || "—";

    // Cookie size against the limit.
    const limit = s.cookie_limit || 4096;
    const size = s.cookie_size || 0;
    const pct = Math.min(100, (size / limit) * 100);
    $("cookie-name").textContent = s.cookie_name;
    $("cookie-size").textContent = String(size);
    $("cookie-limit").textContent = String(limit);
    $("cookie-percent").textContent = `${pct.toFixed(pct < 10 ? 1 : 0)}% of the limit`;
    $("cookie-bar").style.width = `${pct}%`;
    const meter = $("cookie-meter");
    meter.setAttribute("aria-valuenow", String(size));
    meter.classList.toggle("kv", s.location === "kv");
    meter.classList.toggle("high", pct > 80);
    $("store").textContent = { auto: "auto: cookie while it fits, KV beyond", cookie: "cookie only", kv: "KV always" }[s.store] || s.store;
    $("data-size").textContent = s.data ? bytes(new TextEncoder().encode(JSON.stringify(s.data)).length) : "—";
    $("encrypted").textContent = !s.location ? "—"
      : s.location === "kv" ? "a signed session id only"
      : s.encrypted ? "data, encrypted (AEAD)" : "data, signed (readable, not secret)";
    $("bound").textContent = !s.device_bound ? "off"
      : !s.bound_alg ? (s.status === "valid" ? "not yet: this browser has not bound the session" : "—")
      : `yes (${s.bound_alg})`;

    // Static expiry facts; the countdowns tick in tick().
    $("idle-at").textContent = s.idle_expires ? clockTime(s.idle_expires) : "";
    $("abs-at").textContent = s.absolute_expires ? clockTime(s.absolute_expires) : "";
    $("idle-note").textContent = has
      ? `Slides: a request at least ${humane(s.refresh_after)} after the cookie was issued re-issues it and restarts the ${humane(s.idle_timeout)} idle timer.`
      : `Idle timeout: ${humane(s.idle_timeout)}.`;
    $("abs-note").textContent = has
      ? `Fixed at creation: ${humane(s.absolute_timeout)} however active. Only the app (X-Session-Max-Age) can shorten it.`
      : `Absolute timeout: ${humane(s.absolute_timeout)}.`;

    // Data.
    const dataJSON = JSON.stringify(s.data);
    if (dataJSON !== lastDataJSON) {
      lastDataJSON = dataJSON;
      const box = $("data");
      box.textContent = "";
      if (has) box.append(jsonNode(s.data, 0));
    }
    $("data").hidden = !has;
    $("empty").hidden = !!has;
    $("logout").disabled = !s.location;
    $("raw").textContent = JSON.stringify(s, null, 2);
    tick();
  }

  function countdown(prefix, expires, total) {
    const clock = $(`${prefix}-left`);
    const bar = $(`${prefix}-bar`);
    if (!expires) {
      clock.textContent = "–";
      clock.classList.remove("gone");
      bar.style.width = "0%";
      return null;
    }
    const left = expires - now();
    clock.textContent = left > 0 ? duration(left) : "expired";
    clock.classList.toggle("gone", left <= 0);
    const frac = Math.max(0, Math.min(1, left / total));
    bar.style.width = `${(frac * 100).toFixed(2)}%`;
    bar.parentElement.classList.toggle("low", frac < 0.1);
    return left;
  }

  function tick() {
    const s = state;
    if (!s) return;
    const idle = countdown("idle", s.idle_expires, s.idle_timeout);
    const abs = countdown("abs", s.absolute_expires, s.absolute_timeout);
    $("created").textContent = s.created ? ago(s.created) : "–";
    $("issued").textContent = s.issued ? ago(s.issued) : "–";
    // A bound session's short-lived cookie: when it runs out, the browser renews it.
    if (s.bound_expires) {
      const left = s.bound_expires - now();
      $("bound").textContent = `yes (${s.bound_alg}); short-lived cookie ${left > 0 ? `renewed within ${humane(left)}` : "being renewed"}`;
    }
    if (s.issued && s.status === "valid") {
      const due = s.issued + s.refresh_after - now();
      $("refresh-at").textContent = due > 0 ? `on the first request after ${humane(due)}` : "due: the next request re-issues the cookie";
    } else {
      $("refresh-at").textContent = "–";
    }
    // When a countdown runs out, ask the edge what it thinks now (once).
    if (((idle !== null && idle <= 0) || (abs !== null && abs <= 0)) && !refetchedAtZero) {
      refetchedAtZero = true;
      load();
    }
  }

  // ------------------------------------------------------------------ fetch --

  async function load() {
    if (inFlight) return;
    inFlight = true;
    const live = $("live");
    try {
      const res = await fetch(ENDPOINT, { cache: "no-store", credentials: "same-origin", headers: { accept: "application/json" } });
      if (!res.ok) throw new Error(`${ENDPOINT} answered ${res.status}`);
      const s = await res.json();
      skew = s.now - Date.now() / 1000;
      if (!state || state.idle_expires !== s.idle_expires || state.absolute_expires !== s.absolute_expires) refetchedAtZero = false;
      state = s;
      $("error").hidden = true;
      render(s);
      live.classList.remove("paused", "pulse");
      void live.offsetWidth; // restart the pulse animation
      live.classList.add("pulse");
    } catch (e) {
      $("error").textContent = `Could not read the session: ${e.message}. Is KEYCARD_INSPECT still on?`;
      $("error").hidden = false;
      live.classList.add("paused");
    } finally {
      inFlight = false;
    }
  }

  /** A row's binding: whether its device proves itself, and until when its last
   * short-lived cookie holds (the device list's `bound_expires`). */
  function boundText(s) {
    if (s.device_bound === null) return "–"; // SESSION_STORE=kv: kept in the records
    if (!s.device_bound) return "no";
    if (!s.bound_expires) return "yes";
    const left = s.bound_expires - now();
    return left > 0 ? `yes; proved, short-lived cookie for ${humane(left)}` : `yes; not proved for ${humane(-left)}`;
  }

  // --------------------------------------------------------------- sessions --

  // The signed-in user's sessions (`{prefix}sessions`, there with the KEYCARD_USERS
  // binding), each but this one with a button that ends it. Read on start, on Refresh
  // and after a sign-out, not on every poll: each read is a call to the user's object.
  async function loadSessions() {
    const panel = $("panel-sessions");
    const res = await fetch(`${PREFIX}sessions`, { cache: "no-store", credentials: "same-origin" }).catch(() => null);
    if (!res || !res.ok) {
      // 404: no binding; 401: not signed in. Either way there is no list to show.
      panel.hidden = true;
      return;
    }
    const { sessions } = await res.json();
    const rows = sessions.map((s) => {
      const tr = el("tr", s.current ? "current" : "");
      tr.dataset.id = s.id;
      for (const text of [s.agent, s.country ?? "–", ago(s.created), ago(s.last_seen), boundText(s)]) tr.append(el("td", "", text));
      tr.append(el("td", "mono small", s.id));
      const cell = el("td");
      if (s.current) cell.append(el("span", "pill valid", "this browser"));
      else {
        const b = el("button", "ghost small revoke", "Sign out");
        b.type = "button";
        b.addEventListener("click", () => revoke(s.id));
        cell.append(b);
      }
      tr.append(cell);
      return tr;
    });
    $("sessions").replaceChildren(...rows);
    $("sessions-note").textContent = `${sessions.length} session${sessions.length === 1 ? "" : "s"}. Signing one out ends it on its next check (at once with SESSION_REVOCATION_CHECK=always).`;
    panel.hidden = false;
  }

  async function revoke(id) {
    const res = await fetch(`${PREFIX}sessions/revoke?id=${encodeURIComponent(id)}`, { method: "POST", credentials: "same-origin" });
    if (!res.ok) {
      $("error").textContent = `Could not sign that session out: ${PREFIX}sessions/revoke answered ${res.status}.`;
      $("error").hidden = false;
    }
    await loadSessions();
  }

  // ------------------------------------------------------------------ start --

  $("logout-form").action = `${PREFIX}logout?next=${encodeURIComponent(PREFIX)}`;
  $("raw-url").textContent = `${PREFIX}session`;
  $("refresh").addEventListener("click", () => { load(); loadSessions(); });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) load(); });
  setInterval(tick, 1000);
  setInterval(() => { if (!document.hidden) load(); }, POLL_MS);
  load();
  loadSessions();
})();
