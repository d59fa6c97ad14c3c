"""Running `framewire ...` in the test process against the session's services."""

from __future__ import annotations

from click.testing import CliRunner, Result

from foundation.settings import Settings
from framewire.cli import cli


def invoke(settings: Settings, *args: str, env: dict[str, str] | None = None) -> Result:
    """`framewire ARGS` with the global flags that point it at settings' broker, Redis,
    topic prefix and state directory."""
    global_flags = [
        "--kafka-bootstrap", settings.kafka_bootstrap,
        "--redis-url", settings.redis_url,
        "--topic-prefix", settings.topic_prefix,
        "--state-dir", str(settings.state_dir),
        "--log-format", "json",
    ]  # fmt: skip
    return CliRunner().invoke(cli, [*global_flags, *args], env=env)
