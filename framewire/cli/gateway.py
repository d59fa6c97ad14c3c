"""`framewire gateway`: the HTTP gateway (producers/gateway/) served by gunicorn.

The command replaces itself with gunicorn (exec), so signals from a process manager
(Procfile, systemd, Kubernetes) reach gunicorn's master directly: SIGTERM is a graceful
shutdown that lets requests in progress finish. Settings travel as FRAMEWIRE_* variables.
"""

from __future__ import annotations

import os
import shutil
import sys

import click

from foundation.settings import Settings

GUNICORN_CONFIG = "python:producers.gateway.gunicorn_conf"
APP = "producers.gateway.wsgi:serve()"


@click.command()
@click.option("--host", help="listen address [FRAMEWIRE_GATEWAY_HOST, 127.0.0.1]")
@click.option("--port", type=click.IntRange(1, 65535), help="[FRAMEWIRE_GATEWAY_PORT, 8080]")
@click.option("--workers", type=click.IntRange(1), help="processes [FRAMEWIRE_GATEWAY_WORKERS, 2]")
@click.option(
    "--threads", type=click.IntRange(1), help="threads per process [FRAMEWIRE_GATEWAY_THREADS, 64]"
)
@click.option("--dry-run", is_flag=True, help="print the gunicorn command instead of running it")
@click.pass_obj
def gateway(
    settings: Settings,
    host: str | None,
    port: int | None,
    workers: int | None,
    threads: int | None,
    dry_run: bool,
) -> None:
    """Serve the HTTP gateway: POST images, get predictions from the streaming workers.

    Each image becomes a frame on Kafka; the GPU workers batch it with every other
    stream; the answer comes back through Redis. See docs/GATEWAY.md.
    """
    given = {"gateway_host": host, "gateway_port": port, "gateway_workers": workers,
             "gateway_threads": threads}  # fmt: skip
    given = {k: v for k, v in given.items() if v is not None}
    settings = settings.replace(**given) if given else settings
    argv, env = gunicorn_command(settings)
    if dry_run:
        click.echo(" ".join(argv))
        return
    click.echo(
        f"gateway on http://{settings.gateway_host}:{settings.gateway_port} "
        f"({settings.gateway_workers} processes x {settings.gateway_threads} threads)",
        err=True,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(argv[0], argv, env)


def gunicorn_command(settings: Settings) -> tuple[list[str], dict[str, str]]:
    """The gunicorn argv and environment that serve the gateway with these settings."""
    env = {**os.environ, **settings.to_env()}
    if settings.gateway_workers > 1:
        # Several processes: /metrics must add up every process's counters.
        metrics_dir = settings.state_dir / "gateway-metrics" / str(os.getpid())
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True, exist_ok=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    # gunicorn kills a worker silent for `timeout` seconds; a request may wait up to the
    # gateway timeout, so leave it well clear.
    timeout_s = max(30, 2 * settings.gateway_timeout_ms // 1000 + 5)
    argv = [
        sys.executable, "-m", "gunicorn",
        "-c", GUNICORN_CONFIG,
        "--bind", _bind(settings.gateway_host, settings.gateway_port),
        "--workers", str(settings.gateway_workers),
        "--threads", str(settings.gateway_threads),
        "--timeout", str(timeout_s),
        "--graceful-timeout", str(timeout_s),
        APP,
    ]  # fmt: skip
    return argv, env


def _bind(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
