"""A Django app that trusts a "reverse-proxy login" header, behind keycard.

The app has no login code of its own. keycard sends a signed-in user's name in
X-Forwarded-User (KEYCARD_IDENTITY_HEADERS=X-Forwarded-User=user) and always drops a
client's own X-Forwarded-User in every spelling (X_Forwarded_User, ...), so Django's
RemoteUserMiddleware can take it as the truth. The app still signs users in and out the
keycard way: X-Session-Set plus regenerate, and destroy.

    scripts/setup.sh django                     # Django 5.2 into .tools/django
    PYTHONPATH=.tools/django python3 examples/django/app.py 9000   # migrates, then serves

One file is settings, URLs, views and the entry point. It is served with wsgiref, which
(like several WSGI servers) hands both X-Forwarded-User and X_Forwarded_User to the app
as HTTP_X_FORWARDED_USER; Django's own runserver drops the underscore spelling itself.
Do not expose this app without keycard in front: anyone could send the header.
"""
import json, os, sys, tempfile
from wsgiref.simple_server import WSGIRequestHandler, make_server

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    ALLOWED_HOSTS=["*"],
    SECRET_KEY=os.urandom(32).hex(),  # Django's own session cookie only: never shared
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"],
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        f"{__name__}.KeycardUserMiddleware",
    ],
    AUTHENTICATION_BACKENDS=["django.contrib.auth.backends.RemoteUserBackend"],
    DATABASES={"default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(tempfile.mkdtemp(prefix="keycard-django-"), "db.sqlite3"),
    }},
    USE_TZ=True,
)
django.setup()

from django.contrib.auth.middleware import RemoteUserMiddleware  # noqa: E402 (needs setup)
from django.core.management import call_command  # noqa: E402
from django.http import HttpResponse, HttpResponseNotAllowed  # noqa: E402
from django.urls import path  # noqa: E402


class KeycardUserMiddleware(RemoteUserMiddleware):
    # X-Forwarded-User as WSGI names it. With no header (signed out at the edge) a user
    # this middleware signed in is signed out of Django too (force_logout_if_no_header).
    header = "HTTP_X_FORWARDED_USER"


def text(body, status=200, **headers):
    res = HttpResponse(body + "\n", status=status, content_type="text/plain; charset=utf-8")
    for name, value in headers.items():
        res[name.replace("_", "-")] = value
    return res


def whoami(request):
    user = request.user.username if request.user.is_authenticated else "anonymous"
    return text(f"user={user}", Cache_Control="no-store")


def login(request):
    # Sign in the keycard way: the user goes into keycard's session, with a new id.
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    name = request.POST.get("name", "").strip()[:64] or "guest"
    return text("", 303, Location="/whoami", X_Session_Set=json.dumps({"user": name}),
                X_Session_Action="regenerate")


def logout(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    return text("", 303, Location="/whoami", X_Session_Action="destroy")


urlpatterns = [path("whoami", whoami), path("login", login), path("logout", logout)]


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    call_command("migrate", verbosity=0, interactive=False)
    from django.core.wsgi import get_wsgi_application

    server = make_server("127.0.0.1", port, get_wsgi_application(), handler_class=QuietHandler)
    print(f"django example on http://127.0.0.1:{port}/whoami", flush=True)
    server.serve_forever()
