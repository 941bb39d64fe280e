// WebSocket upgrades pass through keycard to the origin, with the session
// headers on the upgrade request, and frames flow both ways.
import { test } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import crypto from "node:crypto";
import { startKeycard, Client, decodeSession } from "./lib/harness.mjs";

function frame(text) {
  // A masked client text frame (payload < 126 bytes).
  const payload = Buffer.from(text);
  const mask = crypto.randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

test("a WebSocket upgrade passes through with the session, and frames flow", async () => {
  let upgradeHeaders;
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "x-session-set": JSON.stringify({ user: "ada" }) });
    res.end("ok");
  });
  server.on("upgrade", (req, socket) => {
    upgradeHeaders = req.headers;
    const accept = crypto.createHash("sha1").update(req.headers["sec-websocket-key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    socket.on("data", (buf) => {
      // Unmask the client's frame and echo its text back, unmasked, as the server.
      const len = buf[1] & 0x7f;
      const mask = buf.subarray(2, 6);
      const text = Buffer.from(buf.subarray(6, 6 + len).map((b, i) => b ^ mask[i % 4])).toString();
      const reply = Buffer.from(`echo:${text}`);
      socket.write(Buffer.concat([Buffer.from([0x81, reply.length]), reply]));
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const kc = await startKeycard({ ORIGIN_URL: `http://127.0.0.1:${server.address().port}` });
  try {
    const c = new Client(kc.url);
    await c.get("/login");
    assert.ok(c.jar.has("keycard"));
    const echoed = await new Promise((resolve, reject) => {
      const req = http.request(kc.url + "/ws", {
        headers: {
          cookie: c.cookieHeader(),
          connection: "Upgrade",
          upgrade: "websocket",
          "sec-websocket-version": "13",
          "sec-websocket-key": crypto.randomBytes(16).toString("base64"),
          "x-session": "forged",
        },
      });
      req.on("upgrade", (res, socket) => {
        assert.equal(res.statusCode, 101);
        socket.on("data", (buf) => {
          resolve(buf.subarray(2, 2 + (buf[1] & 0x7f)).toString());
          socket.destroy();
        });
        socket.write(frame("hello"));
      });
      req.on("response", (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
      req.on("error", reject);
      req.setTimeout(15000, () => req.destroy(new Error("timeout")));
      req.end();
    });
    assert.equal(echoed, "echo:hello");
    assert.equal(upgradeHeaders["x-session-status"], "valid");
    assert.deepEqual(decodeSession(upgradeHeaders["x-session"]), { user: "ada" });
  } finally {
    await kc.close();
    server.closeAllConnections();
    server.close();
  }
});
