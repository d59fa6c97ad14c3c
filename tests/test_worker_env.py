"""A CPU worker starts with the environment it needs before torch loads (OMP_WAIT_POLICY,
workers/process_env.py): child processes get it, `framewire worker` starts itself again
with it, and a value the user set is kept."""

from __future__ import annotations

import importlib
import os
import sys

import pytest

from framewire.worker_process import child_env
from tests.cli_helpers import invoke

# The module, not the click command that framewire.cli exports under the same name.
worker_cli = importlib.import_module("framewire.cli.worker")


def test_child_workers_get_it_unless_the_user_set_it(settings, monkeypatch) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert child_env(settings)["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert child_env(settings)["OMP_WAIT_POLICY"] == "ACTIVE"


@pytest.mark.parametrize(
    ("argv0", "preset", "device", "restarts"),
    [("/venv/bin/framewire", None, "cpu", True),
     ("/work/framewire/__main__.py", None, "cpu", True),  # python -m framewire
     ("/venv/bin/framewire", None, "cuda", False),  # nothing to gain on a GPU worker
     ("/venv/bin/framewire", "ACTIVE", "cpu", False),  # the user's choice
     ("/venv/bin/pytest", None, "cpu", False)],  # the CLI called in-process
)  # fmt: skip
def test_framewire_worker_restarts_itself_with_it(
    monkeypatch, argv0, preset, device, restarts
) -> None:
    if preset is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", preset)
    monkeypatch.setattr(sys, "argv", [argv0, "worker", "--max-batch", "4"])
    calls = []
    monkeypatch.setattr(os, "execve", lambda path, argv, env: calls.append((path, argv, env)))
    worker_cli._restart_with_worker_env(device)
    if not restarts:
        assert calls == []
        return
    [(path, argv, env)] = calls
    assert path == sys.executable
    assert argv == [sys.executable, "-m", "framewire", "worker", "--max-batch", "4"]
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and env["PATH"] == os.environ["PATH"]


@pytest.mark.parametrize(("device", "says"), [("bogus", "unknown device 'bogus'"),
                                              ("cuda:99", "device 'cuda:99' requested but")])
def test_a_device_the_worker_cannot_use_is_one_line(settings, device, says) -> None:
    out = invoke(settings, "worker", "--device", device)
    assert out.exit_code == 1 and out.output.count("\n") == 1 and says in out.output
