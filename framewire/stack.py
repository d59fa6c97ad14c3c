"""The embedded local stack behind `framewire stack up|down|status`.

`up` starts a broker and a Redis on loopback (unless FRAMEWIRE_KAFKA_BOOTSTRAP /
FRAMEWIRE_REDIS_URL point at running services), records what it started in
`<state_dir>/stack/stack.json`, and creates the topics. `down` stops exactly the
processes recorded there. `up(fresh=True)` first stops the embedded servers so that they
start empty. `status` also says what the broker holds (framewire/stack_usage.py). Each
method returns the lines to show the user.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from foundation.kafka import create_topics, kafka_answers
from foundation.servers import SERVERS, EmbeddedServer, ServerError, redis_answers
from foundation.settings import Settings, env_name
from framewire.stack_usage import WARN_RECORDS, rss_bytes, topic_usage, usage_lines

# What a Redis server could leave in its --dir (RDB snapshot, append-only file before and
# since Redis 7). The embedded Redis runs with persistence off; --fresh removes them anyway,
# so a file from another configuration can never bring old results back.
_REDIS_PERSISTENCE = ("dump.rdb", "appendonly.aof", "appendonlydir")


@dataclass(frozen=True)
class Target:
    """Where one kind of service is for this run: external, or embedded on a port."""

    kind: str  # "kafka" | "redis"
    setting: str  # the Settings field that points at it
    port: int

    def external_address(self, settings: Settings) -> str | None:
        """The configured address when the user set one explicitly, else None."""
        if self.setting in settings.explicit:
            return getattr(settings, self.setting)
        return None


def targets(settings: Settings, kafka_port: int | None, redis_port: int | None) -> list[Target]:
    return [
        Target("kafka", "kafka_bootstrap", kafka_port or settings.stack_kafka_port),
        Target("redis", "redis_url", redis_port or settings.stack_redis_port),
    ]


class LocalStack:
    def __init__(
        self, settings: Settings, kafka_port: int | None = None, redis_port: int | None = None
    ) -> None:
        self.settings = settings
        self.dir = settings.state_dir / "stack"
        self.targets = targets(settings, kafka_port, redis_port)
        self._ports_given = {"kafka": kafka_port, "redis": redis_port}
        self.addresses: dict[str, str] = {}  # setting name -> address, filled by up()

    @property
    def state_file(self) -> Path:
        return self.dir / "stack.json"

    def up(self, fresh: bool = False) -> list[str]:
        """Start what is not running; fresh=True stops the embedded servers first, so the
        broker and Redis start empty (every frame and result they held is discarded)."""
        running = self._load()
        lines: list[str] = self._discard(running) if fresh else []
        started: list[EmbeddedServer] = []
        addresses: dict[str, str] = {}
        try:
            for target in self.targets:
                address, line = self._bring_up(target, running, started)
                addresses[target.setting] = address
                lines.append(line)
            self._save(running)
            topics = create_topics(self.settings.replace(**addresses))
        except Exception:
            for server in started:  # leave nothing half-started behind
                server.stop()
                running.pop(server.kind, None)
            self._save(running)
            raise
        made = sum(t.created for t in topics)
        lines.append(
            f"topics: {len(topics)} ready ({made} created), "
            f"{', '.join(f'{t.name}[{t.partitions}]' for t in topics)}"
        )
        lines += self._exports(addresses)
        self.addresses = addresses
        return lines

    def down(self) -> list[str]:
        running = self._load()
        if not running:
            return ["stack: nothing running"]
        lines = []
        for kind, server in running.items():
            was_running = server.running()
            server.stop()
            state = "stopped" if was_running else "was not running"
            lines.append(f"{kind}: {state} (pid {server.pid}, {server.address})")
        self.state_file.unlink(missing_ok=True)
        return lines

    def embedded_pid(self, kind: str, address: str | None = None) -> int | None:
        """The pid of the embedded server of kind ("kafka", "redis") recorded here, while it
        runs and, when address is given, serves there (the address `stack up` tells users to
        export counts as embedded, not external); else None."""
        server = self._load().get(kind)
        if server is None or not server.running():
            return None
        if address is not None and server.address != address:
            return None
        return server.pid

    def status(self, warn_records: int = WARN_RECORDS) -> list[str]:
        """What runs where; what the broker holds, with a warning past warn_records."""
        running = self._load()
        lines = []
        for target in self.targets:
            external = target.external_address(self.settings)
            server = running.get(target.kind)
            if external:
                lines.append(
                    f"{target.kind}: external at {external} "
                    f"({'answering' if _answers(target.kind, external) else 'NOT answering'})"
                )
            elif server is None:
                lines.append(f"{target.kind}: not running")
            elif server.running():
                health = "answering" if server.answers() else "NOT answering"
                lines.append(
                    f"{target.kind}: running at {server.address} (pid {server.pid}, {health})"
                )
            else:
                lines.append(f"{target.kind}: dead (pid {server.pid} is gone; run stack down)")
        return lines + self._usage(warn_records)

    def _usage(self, warn_records: int) -> list[str]:
        kafka = next(t for t in self.targets if t.kind == "kafka")
        server = self._load().get("kafka")
        address = kafka.external_address(self.settings)
        if address is None and server is not None and server.running():
            address = server.address
        if address is None or not kafka_answers(address):
            return []
        usage = topic_usage(self.settings.replace(kafka_bootstrap=address))
        pid = self.embedded_pid("kafka", address)
        return usage_lines(usage, rss_bytes(pid), embedded=pid is not None,
                           warn_records=warn_records)  # fmt: skip

    def _discard(self, running: dict[str, EmbeddedServer]) -> list[str]:
        """Stop the embedded servers (in-memory: they come back empty) and remove any Redis
        persistence file; a server restarts on its recorded port unless one was given."""
        lines = []
        for i, target in enumerate(self.targets):
            if target.external_address(self.settings):
                lines.append(f"{target.kind}: external, --fresh leaves it as it is")
                continue
            server = running.pop(target.kind, None)
            if server is None:
                continue
            if server.running():
                server.stop()
                lines.append(f"{target.kind}: stopped (pid {server.pid}) to start empty")
            if self._ports_given[target.kind] is None:
                self.targets[i] = Target(target.kind, target.setting, server.port)
        self._save(running)
        for name in _REDIS_PERSISTENCE:
            path = self.dir / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        return lines

    def _bring_up(
        self, target: Target, running: dict[str, EmbeddedServer], started: list[EmbeddedServer]
    ) -> tuple[str, str]:
        external = target.external_address(self.settings)
        var = env_name(target.setting)
        if external:
            if not _answers(target.kind, external):
                raise ServerError(f"{var}={external}: no {target.kind} answers there")
            return external, f"{target.kind}: external at {external} ({var}), starting nothing"
        server = running.get(target.kind)
        if server is not None and server.running():
            return server.address, (
                f"{target.kind}: already running at {server.address} (pid {server.pid})"
            )
        server = SERVERS[target.kind](target.port, self.dir)
        server.start()
        started.append(server)
        running[target.kind] = server
        return server.address, (
            f"{target.kind}: started at {server.address} (pid {server.pid}, log {server.log_path})"
        )

    def _exports(self, addresses: dict[str, str]) -> list[str]:
        """Tell the user how to reach embedded services that are not where defaults look."""
        lines = []
        for name, address in addresses.items():
            default = getattr(self.settings, name)
            if name not in self.settings.explicit and _port_of(address) != _port_of(default):
                lines.append(f"export {env_name(name)}={address}")
        return lines

    def _load(self) -> dict[str, EmbeddedServer]:
        try:
            state = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}
        return {
            kind: SERVERS[kind](entry["port"], self.dir, pid=entry["pid"])
            for kind, entry in state.items()
        }

    def _save(self, running: dict[str, EmbeddedServer]) -> None:
        if not running:
            self.state_file.unlink(missing_ok=True)
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        state = {kind: {"port": s.port, "pid": s.pid} for kind, s in running.items()}
        self.state_file.write_text(json.dumps(state, indent=2))


def _port_of(address: str) -> int | None:
    """The port of a host:port bootstrap or a redis:// URL."""
    if "://" in address:
        return urlsplit(address).port
    return int(address.rsplit(":", 1)[-1])


def _answers(kind: str, address: str) -> bool:
    return kafka_answers(address) if kind == "kafka" else redis_answers(address)
