"""A worker starts with the environment it needs before torch loads (OMP_WAIT_POLICY,
workers/process_env.py): `framewire worker` sets what is missing before anything imports
torch, which the CLI itself must not, and keeps a value the user set."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.cli_helpers import invoke


def test_the_cli_loads_without_torch() -> None:
    """Otherwise torch would read OMP_WAIT_POLICY before the worker command sets it."""
    code = "import sys, framewire.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)  # fmt: skip
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(("preset", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_the_worker_command_sets_it_unless_the_user_did(settings, monkeypatch, preset,
                                                        expected) -> None:  # fmt: skip
    monkeypatch.setenv("OMP_WAIT_POLICY", preset or "")  # restored (or removed) afterwards
    if preset is None:
        monkeypatch.delenv("OMP_WAIT_POLICY")
    invoke(settings, "worker", "--device", "bogus")  # stops at the device check
    assert os.environ["OMP_WAIT_POLICY"] == expected


@pytest.mark.parametrize(("device", "says"), [("bogus", "unknown device 'bogus'"),
                                              ("cuda:99", "device 'cuda:99' requested but")])
def test_a_device_the_worker_cannot_use_is_one_line(settings, device, says) -> None:
    out = invoke(settings, "worker", "--device", device)
    assert out.exit_code == 1 and out.output.count("\n") == 1 and says in out.output
