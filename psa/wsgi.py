"""WSGI entry point (gunicorn psa.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "psa.settings")
application = get_wsgi_application()
