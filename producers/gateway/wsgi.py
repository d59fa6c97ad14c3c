"""The entry point for WSGI servers: `gunicorn 'producers.gateway.wsgi:serve()'`.

Settings come from FRAMEWIRE_* variables (`framewire gateway` passes its flags that way).
"""

from __future__ import annotations

from flask import Flask

from foundation.log import configure_logging
from foundation.settings import Settings
from producers.gateway.app import create_app


def serve() -> Flask:
    settings = Settings.load()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
