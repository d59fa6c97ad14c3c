"""Session-wide real services: one embedded Kafka-protocol broker and one Redis.

Every test gets its own topic prefix (so tests never read each other's records) and its
own state directory; the servers themselves are started once, on free loopback ports,
with the same code `framewire stack up` runs, and stopped when the session ends.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest

from foundation.kafka import create_topics
from foundation.servers import EmbeddedKafka, EmbeddedRedis, free_port
from foundation.settings import Settings

_test_numbers = itertools.count()


@pytest.fixture(scope="session")
def kafka_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedKafka]:
    server = EmbeddedKafka(free_port(), tmp_path_factory.mktemp("kafka"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(
    kafka_server: EmbeddedKafka,
    redis_server: EmbeddedRedis,
    request: pytest.FixtureRequest,
    tmp_path,
) -> Settings:
    """Settings pointing at the session's services, with a topic prefix of this test's own."""
    name = re.sub(r"[^a-zA-Z0-9]+", "-", request.node.name)[:60].strip("-")
    return Settings.load(
        environ={},
        kafka_bootstrap=kafka_server.address,
        redis_url=redis_server.address,
        topic_prefix=f"t{next(_test_numbers)}-{name}.",
        state_dir=str(tmp_path / "state"),
        partitions=2,
        # A worker's group join takes about session.timeout.ms / 2 against the embedded
        # broker (shared/ENVIRONMENT.md), and a crashed worker's partitions wait the whole
        # timeout: 3 s instead of the default 10 s saves ~3 s per worker started. Apache
        # Kafka's default floor is 6 s; the embedded broker accepts less.
        consumer_session_timeout_s=3.0,
    )


@pytest.fixture
def topics(settings: Settings) -> Settings:
    """The test's settings, with framewire's topics created under its prefix."""
    create_topics(settings)
    return settings
