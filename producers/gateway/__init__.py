"""The HTTP gateway: prediction requests over the streaming pipeline (docs/GATEWAY.md).

The gateway never runs a model. Each uploaded image becomes a frame/1 record with
`fw-reply-to` set; the GPU workers batch it with every other stream's frames; the gateway
waits for the results on a Redis reply list and answers the HTTP request.

| module | one concept |
| --- | --- |
| app.py | the Flask application factory |
| routes.py | the endpoints |
| parsing.py | a request -> its images and options |
| images.py | cheap image validation before publishing |
| dispatch.py | publish frames, wait for their results |
| feedback.py | labels for frames onto the feedback topic |
| overload.py | in-flight limit and consumer lag (503) |
| health.py | readiness |
| auth.py | API keys |
| errors.py | JSON error bodies |
| metrics.py | Prometheus metrics |
| resources.py | per-process connections, created after fork |
| state.py | what one app holds |
| wsgi.py, gunicorn_conf.py | serving with gunicorn |
"""

from producers.gateway.app import create_app, gateway_state

__all__ = ["create_app", "gateway_state"]
