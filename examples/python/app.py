"""A legacy Python (plain WSGI) app behind keycard.

It never touches cookies or keys: it reads the session from X-Session and changes it
with X-Session-Set / X-Session-Action. Run: python3 examples/python/app.py 9000
(with ORIGIN_SECRET set, it expects and verifies the jwt format).
"""
import base64, hashlib, hmac, json, os, sys, time
from urllib.parse import parse_qs
from wsgiref.simple_server import make_server, WSGIRequestHandler


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def keycard_session(environ):
    """The session dict, or None. With SESSION_HEADER_FORMAT=jwt the HS256 signature,
    issuer, expiry and method are checked first: only the edge knows ORIGIN_SECRET."""
    h = environ.get("HTTP_X_SESSION", "")
    if not h:
        return None
    secret = os.environ.get("ORIGIN_SECRET")
    if not secret:
        return json.loads(b64url_decode(h))
    try:
        head, body, sig = h.split(".")
    except ValueError:
        return None
    mac = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(base64.urlsafe_b64encode(mac).rstrip(b"=").decode(), sig):
        return None
    claims = json.loads(b64url_decode(body))
    if claims.get("iss") != "keycard" or claims.get("exp", 0) < time.time():
        return None
    if claims.get("htm") != environ["REQUEST_METHOD"]:
        return None
    return claims["session"]


def app(environ, start_response):
    session = keycard_session(environ) or {}
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
    if method == "POST" and path == "/login":
        size = int(environ.get("CONTENT_LENGTH") or 0)
        form = parse_qs(environ["wsgi.input"].read(size).decode())
        name = form.get("name", ["guest"])[0][:64]
        start_response("303 See Other", [
            ("Location", "/"),
            ("X-Session-Set", json.dumps({"user": name, "visits": 0})),
            ("X-Session-Action", "regenerate"),  # a new session id after login
        ])
        return [b""]
    if method == "POST" and path == "/logout":
        start_response("303 See Other", [("Location", "/"), ("X-Session-Action", "destroy")])
        return [b""]
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")]
    if "user" in session:
        visits = session.get("visits", 0) + 1
        headers.append(("X-Session-Set", json.dumps({"visits": visits})))
        body = f"user={session['user']} visits={visits} stack=python\n"
    else:
        body = "user=anonymous stack=python\n"
    start_response("200 OK", headers)
    return [body.encode()]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    print(f"listening on 127.0.0.1:{port}", flush=True)
    make_server("127.0.0.1", port, app, handler_class=QuietHandler).serve_forever()
