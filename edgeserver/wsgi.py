"""WSGI entry point for gunicorn.

Django's application behind one wrapper: an exporter's `GET /config/{id}` whose current
config this process holds is answered without Django's request cycle, with Django's own
answer (devices.api.hotpath); every other request goes to Django as it is.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "edgeserver.settings")

django_application = get_wsgi_application()

from devices.api.hotpath import ServedConfigFastPath  # noqa: E402  (needs the apps loaded)

application = ServedConfigFastPath(django_application)
