// A legacy Node app (plain `http`) behind keycard. It never touches cookies or keys: it
// reads the session from X-Session and changes it with X-Session-Set / X-Session-Action.
// Run: node examples/node/server.js 9000   (ORIGIN_SECRET set => jwt format)
import http from "node:http";
import crypto from "node:crypto";

// The session object, or null. With SESSION_HEADER_FORMAT=jwt the HS256 signature,
// issuer, expiry and method are checked first: only the edge knows ORIGIN_SECRET.
function keycardSession(req) {
  const h = req.headers["x-session"];
  if (!h) return null;
  const secret = process.env.ORIGIN_SECRET;
  if (!secret) return JSON.parse(Buffer.from(h, "base64url").toString("utf8"));
  const [head, body, sig] = h.split(".");
  if (!sig) return null;
  const mac = crypto.createHmac("sha256", secret).update(`${head}.${body}`).digest();
  const given = Buffer.from(sig, "base64url");
  if (given.length !== mac.length || !crypto.timingSafeEqual(given, mac)) return null;
  const claims = JSON.parse(Buffer.from(body, "base64url").toString("utf8"));
  if (claims.iss !== "keycard" || claims.exp < Date.now() / 1000 || claims.htm !== req.method) return null;
  return claims.session;
}

const server = http.createServer(async (req, res) => {
  const session = keycardSession(req) ?? {};
  const { pathname } = new URL(req.url, "http://origin");
  if (req.method === "POST" && pathname === "/login") {
    let raw = "";
    for await (const chunk of req) raw += chunk;
    const name = (new URLSearchParams(raw).get("name") ?? "guest").slice(0, 64);
    res.writeHead(303, {
      Location: "/",
      "X-Session-Set": JSON.stringify({ user: name, visits: 0 }),
      "X-Session-Action": "regenerate", // a new session id after login
    });
    return res.end();
  }
  if (req.method === "POST" && pathname === "/logout") {
    res.writeHead(303, { Location: "/", "X-Session-Action": "destroy" });
    return res.end();
  }
  const headers = { "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store" };
  if (session.user) {
    const visits = (session.visits ?? 0) + 1;
    headers["X-Session-Set"] = JSON.stringify({ visits });
    res.writeHead(200, headers);
    return res.end(`user=${session.user} visits=${visits} stack=node\n`);
  }
  res.writeHead(200, headers);
  res.end("user=anonymous stack=node\n");
});

const port = Number(process.argv[2] ?? 9000);
server.listen(port, "127.0.0.1", () => console.log(`listening on 127.0.0.1:${port}`));
