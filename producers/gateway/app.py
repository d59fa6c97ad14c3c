"""The Flask application factory of the HTTP gateway."""

from __future__ import annotations

from flask import Flask, request

from foundation.log import get_logger
from foundation.settings import Settings
from producers.gateway.errors import register_error_handlers
from producers.gateway.resources import Resources
from producers.gateway.routes import bp
from producers.gateway.state import GatewayState

log = get_logger(__name__)

# Only the prediction API needs a key; probes and metrics stay open for the platform
# (keep /metrics off the public listener, e.g. behind the ingress).
_PROTECTED_PREFIX = "/v1/"


def create_app(settings: Settings | None = None, resources: Resources | None = None) -> Flask:
    """The gateway app. Nothing connects to Kafka or Redis until the first request that
    needs it, so this is safe to call before gunicorn forks."""
    settings = settings or Settings.load()
    state = GatewayState.build(settings, resources)
    app = Flask("framewire.gateway")
    app.config.update(
        MAX_CONTENT_LENGTH=settings.gateway_max_body_bytes,
        # The form parser keeps up to this much of a multipart body in memory, then spools.
        MAX_FORM_MEMORY_SIZE=min(settings.gateway_max_body_bytes, 1_000_000),
    )
    app.json.sort_keys = False  # result/1 keeps its documented field order
    app.json.compact = True
    app.extensions["framewire"] = state

    state.metrics.install(app)  # first: counts requests refused by auth too

    @app.before_request
    def _authenticate() -> None:
        if request.path.startswith(_PROTECTED_PREFIX):
            state.api_keys.check(request.headers.get("Authorization"))

    register_error_handlers(app)
    app.register_blueprint(bp)
    if state.api_keys.open:
        log.warning("gateway is open: FRAMEWIRE_API_KEYS is empty, no API key is required")
    else:
        log.info("gateway requires an API key", keys=len(state.api_keys))
    return app


def gateway_state(app: Flask) -> GatewayState:
    return app.extensions["framewire"]
