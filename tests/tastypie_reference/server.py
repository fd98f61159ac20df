"""Serve the reference resource: `python -m tastypie_reference.server URL ROWS`.

URL is an empty PostgreSQL database, ROWS a JSON file of events. The tables
are created, the rows loaded with their ids, and a WSGI server started on a
free port of 127.0.0.1, which is printed as the first line of output.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, make_server

import django
from django.conf import settings


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def configure(url: str) -> None:
    parts = urlsplit(url)
    settings.configure(
        DEBUG=False,
        SECRET_KEY="tastypie-reference",
        ALLOWED_HOSTS=["*"],
        USE_TZ=True,
        TIME_ZONE="UTC",
        ROOT_URLCONF="tastypie_reference.urls",
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "tastypie",
            "tastypie_reference",
        ],
        MIDDLEWARE=[],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": parts.path.lstrip("/"),
                "USER": unquote(parts.username or ""),
                "PASSWORD": unquote(parts.password or ""),
                "HOST": parts.hostname or "",
                "PORT": str(parts.port or ""),
            }
        },
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        TASTYPIE_FULL_DEBUG=False,
        LOGGING_CONFIG=None,
    )
    django.setup()


def load(rows: list[dict[str, Any]]) -> None:
    from tastypie_reference.models import BulkEmail, MessageEvent, SendEmail

    BulkEmail.objects.bulk_create(
        BulkEmail(id=i) for i in sorted({r["bulk_email"] for r in rows if r["bulk_email"]})
    )
    SendEmail.objects.bulk_create(
        SendEmail(id=i) for i in sorted({r["send_email"] for r in rows if r["send_email"]})
    )
    MessageEvent.objects.bulk_create(
        MessageEvent(
            id=r["id"],
            bulk_email_id=r["bulk_email"],
            send_email_id=r["send_email"],
            event_id=r["event_id"],
            event_name=r["event_name"],
            event_timestamp=datetime.fromisoformat(r["event_timestamp"]),
        )
        for r in rows
    )


def main() -> None:
    url, rows_path = sys.argv[1:3]
    configure(url)
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    call_command("migrate", run_syncdb=True, verbosity=0)
    with open(rows_path) as f:
        load(json.load(f))
    httpd = make_server("127.0.0.1", 0, get_wsgi_application(), handler_class=_Quiet)
    print(httpd.server_port, flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    main()
