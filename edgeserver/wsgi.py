"""WSGI entry point for gunicorn.

Django's application behind two thin layers: chunked request bodies made readable for
Django (edgeserver.bodies), and an exporter's plain `GET /config/{id}` answered without
Django's request cycle, through the same answer Django's view gives (devices.api.hotpath).
Every other request goes to Django as it is. While the server drains before it stops,
every answer closes its connection (edgeserver.drain).
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "edgeserver.settings")

django_application = get_wsgi_application()

from devices.api.hotpath import ServedConfigFastPath  # noqa: E402  (needs the apps loaded)
from edgeserver.bodies import ChunkedBodies  # noqa: E402
from edgeserver.drain import CloseWhileDraining  # noqa: E402

application = CloseWhileDraining(ServedConfigFastPath(ChunkedBodies(django_application)))
