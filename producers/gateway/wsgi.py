"""The entry point for WSGI servers: `gunicorn 'producers.gateway.wsgi:serve()'`.

Settings come from FRAMEWIRE_* variables (`framewire gateway` passes its flags that way).
"""

from __future__ import annotations

from flask import Flask

from foundation import collector
from foundation.log import configure_logging
from foundation.settings import Settings
from producers.gateway.app import create_app


def serve() -> Flask:
    settings = Settings.load()
    configure_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    # The app, Flask and the clients live as long as this process: out of the collector's
    # walk, a full collection no longer stops every request thread (foundation/collector.py).
    collector.freeze_long_lived()
    return app
