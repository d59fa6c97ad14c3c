"""`framewire stack` and `framewire topics` through the real command line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import redis
from kafka import KafkaProducer

from foundation.kafka import kafka_answers, partitions_of
from foundation.servers import EmbeddedKafka, EmbeddedRedis, free_port, port_in_use, redis_answers
from foundation.settings import Settings


def framewire(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI in its own process, as a user would (the stack must outlive it)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FRAMEWIRE_")}
    return subprocess.run(
        [sys.executable, "-m", "framewire", *args],
        env={**base, "FRAMEWIRE_LOG_FORMAT": "json", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def state_env(tmp_path) -> dict[str, str]:
    return {"FRAMEWIRE_STATE_DIR": str(tmp_path / "state")}


def test_up_status_down_leaves_nothing_behind(state_env, tmp_path):
    kafka_port, redis_port = free_port(), free_port()
    ports = ["--kafka-port", str(kafka_port), "--redis-port", str(redis_port)]

    up = framewire("stack", "up", *ports, env=state_env)
    assert up.returncode == 0, up.stderr
    assert f"kafka: started at 127.0.0.1:{kafka_port}" in up.stdout
    assert f"redis: started at redis://127.0.0.1:{redis_port}/0" in up.stdout
    assert f"export FRAMEWIRE_KAFKA_BOOTSTRAP=127.0.0.1:{kafka_port}" in up.stdout
    assert "framewire.frames[4]" in up.stdout
    assert kafka_answers(f"127.0.0.1:{kafka_port}")
    assert redis_answers(f"redis://127.0.0.1:{redis_port}/0")

    again = framewire("stack", "up", *ports, env=state_env)
    assert again.returncode == 0, again.stderr
    assert "kafka: already running" in again.stdout
    assert "0 created" in again.stdout

    status = framewire("stack", "status", env=state_env)
    assert f"kafka: running at 127.0.0.1:{kafka_port}" in status.stdout
    assert "answering" in status.stdout and "NOT" not in status.stdout

    state = json.loads((tmp_path / "state" / "stack" / "stack.json").read_text())
    started = [EmbeddedKafka(kafka_port, tmp_path, state["kafka"]["pid"]),
               EmbeddedRedis(redis_port, tmp_path, state["redis"]["pid"])]
    assert all(server.running() for server in started)

    down = framewire("stack", "down", env=state_env)
    assert down.returncode == 0, down.stderr
    assert "kafka: stopped" in down.stdout and "redis: stopped" in down.stdout
    assert not any(server.running() for server in started)
    assert not port_in_use(kafka_port) and not port_in_use(redis_port)
    assert "kafka: not running" in framewire("stack", "status", env=state_env).stdout
    assert "nothing running" in framewire("stack", "down", env=state_env).stdout


@pytest.mark.parametrize("taken", ["kafka", "redis"])
def test_port_already_in_use_is_a_clear_error_and_starts_nothing(state_env, tmp_path, taken):
    kafka_port, redis_port = free_port(), free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", kafka_port if taken == "kafka" else redis_port))
        squatter.listen()
        result = framewire(
            "stack", "up", "--kafka-port", str(kafka_port), "--redis-port", str(redis_port),
            env=state_env,
        )  # fmt: skip
    assert result.returncode == 1
    taken_port = kafka_port if taken == "kafka" else redis_port
    assert f"{taken}: port {taken_port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr
    # Kafka starts first: when Redis's port is taken, the broker started a moment ago is
    # stopped again, so a failed `up` leaves nothing running.
    other_port = redis_port if taken == "kafka" else kafka_port
    assert not port_in_use(other_port)
    assert not (tmp_path / "state" / "stack" / "stack.json").exists()


def test_external_services_start_nothing(state_env, kafka_server, redis_server, tmp_path):
    env = {
        **state_env,
        "FRAMEWIRE_KAFKA_BOOTSTRAP": kafka_server.address,
        "FRAMEWIRE_REDIS_URL": redis_server.address,
        "FRAMEWIRE_TOPIC_PREFIX": "external-up.",
        "FRAMEWIRE_PARTITIONS": "3",
    }
    up = framewire("stack", "up", env=env)
    assert up.returncode == 0, up.stderr
    assert f"kafka: external at {kafka_server.address} (FRAMEWIRE_KAFKA_BOOTSTRAP)" in up.stdout
    assert "redis: external at" in up.stdout and "starting nothing" in up.stdout
    assert "export" not in up.stdout
    assert not (tmp_path / "state" / "stack" / "stack.json").exists()
    settings = Settings.load(environ=env)
    assert partitions_of(settings, "external-up.frames") == {0, 1, 2}
    assert "kafka: external at" in framewire("stack", "status", env=env).stdout


def test_external_service_not_answering_is_an_error(state_env):
    env = {**state_env, "FRAMEWIRE_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    result = framewire("stack", "up", env=env)
    assert result.returncode == 1
    assert "FRAMEWIRE_KAFKA_BOOTSTRAP=127.0.0.1:" in result.stderr
    assert "no kafka answers there" in result.stderr


def test_topics_create_uses_configured_partitions_and_is_idempotent(settings):
    env = {
        "FRAMEWIRE_KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "FRAMEWIRE_TOPIC_PREFIX": settings.topic_prefix,
    }
    first = framewire("topics", "create", "--partitions", "3", env=env)
    assert first.returncode == 0, first.stderr
    assert f"{settings.frames_topic}: created, 3 partitions" in first.stdout
    for suffix in ("frames", "results", "monitoring", "frames.dlq"):
        assert partitions_of(settings, settings.topic(suffix)) == {0, 1, 2}
    second = framewire("topics", "create", env=env)
    assert f"{settings.dlq_topic}: exists, 3 partitions" in second.stdout


def test_bad_setting_is_one_line_not_a_traceback():
    result = framewire("stack", "status", env={"FRAMEWIRE_PARTITIONS": "lots"})
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: FRAMEWIRE_PARTITIONS='lots': expected an integer"


def test_help_lists_every_verb():
    result = framewire("--help", env={})
    for verb in ("stack", "topics", "worker", "produce", "results", "gateway", "demo", "bench",
                 "backfill", "data", "train", "registry", "mlflow", "dlq", "monitor"):
        assert f"  {verb}" in result.stdout
    assert "not implemented" not in result.stdout


def _publish(address: str, topic: str, count: int) -> None:
    """count records, one batch each (flushed one by one), as a live camera writes them."""
    producer = KafkaProducer(bootstrap_servers=address, linger_ms=0)
    try:
        for i in range(count):
            producer.send(topic, key=b"cam", value=b"x" * 1000 + str(i).encode())
            producer.flush()
    finally:
        producer.close()


def test_status_counts_what_the_broker_holds_and_fresh_starts_it_empty(state_env, tmp_path):
    kafka_port, redis_port = free_port(), free_port()
    up = framewire("stack", "up", "--kafka-port", str(kafka_port), "--redis-port",
                   str(redis_port), env=state_env)  # fmt: skip
    assert up.returncode == 0, up.stderr
    kafka, redis_url = f"127.0.0.1:{kafka_port}", f"redis://127.0.0.1:{redis_port}/0"
    _publish(kafka, "framewire.frames", 30)
    client = redis.Redis.from_url(redis_url)
    client.set("fw:result:before-fresh", "{}")
    stack_dir = tmp_path / "state" / "stack"
    (stack_dir / "dump.rdb").write_bytes(b"REDIS0009")  # as if persistence had been on

    status = framewire("stack", "status", "--warn-records", "10", env=state_env)
    assert status.returncode == 0, status.stderr
    assert "framewire.frames: about 30 records on 4 partitions" in status.stdout
    assert "framewire.results: empty, 4 partitions" in status.stdout
    assert "broker resident memory:" in status.stdout
    warnings = [line for line in status.stdout.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "framewire.frames holds about 30 records" in warnings[0]
    # The address `stack up` tells users to export is still the embedded broker: it warns.
    exported = {**state_env, "FRAMEWIRE_KAFKA_BOOTSTRAP": kafka}
    assert "warning:" in framewire("stack", "status", "--warn-records", "10", env=exported).stdout
    quiet = framewire("stack", "status", env=state_env)  # the default threshold: far off
    assert "warning:" not in quiet.stdout

    old_pids = json.loads((stack_dir / "stack.json").read_text())
    fresh = framewire("stack", "up", "--fresh", env=state_env)
    assert fresh.returncode == 0, fresh.stderr
    assert "kafka: stopped" in fresh.stdout and f"kafka: started at {kafka}" in fresh.stdout
    new_pids = json.loads((stack_dir / "stack.json").read_text())
    assert new_pids["kafka"]["pid"] != old_pids["kafka"]["pid"]
    assert new_pids["kafka"]["port"] == kafka_port  # same ports: exported addresses hold
    after = framewire("stack", "status", "--warn-records", "10", env=state_env)
    assert "framewire.frames: empty, 4 partitions" in after.stdout
    assert "warning:" not in after.stdout
    assert client.get("fw:result:before-fresh") is None
    assert not (stack_dir / "dump.rdb").exists()
    client.close()
    assert framewire("stack", "down", env=state_env).returncode == 0


def test_fresh_help_says_it_discards_everything():
    result = framewire("stack", "up", "--help", env={})
    assert "DISCARDS every frame and result" in " ".join(result.stdout.split())
