"""Worker threads carry their names into the kernel, and the benchmark reads CPU by name."""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

from framewire.bench.cpu import thread_cpu_s
from workers.threads import name_os_thread

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"),
    reason="thread names (prctl) and per-thread CPU (/proc) exist on Linux only; elsewhere "
    "name_os_thread does nothing and the bench reports no per-thread figures",
)


def _run_named(name: str, body) -> None:
    def target() -> None:
        name_os_thread()
        body()

    thread = threading.Thread(target=target, name=name)
    thread.start()
    thread.join()


def test_the_kernel_sees_the_shortened_python_name() -> None:
    seen: list[str] = []

    def read_own_name() -> None:
        comm = Path(f"/proc/self/task/{threading.get_native_id()}/comm")
        seen.append(comm.read_text().strip())

    _run_named("framewire-decode_1", read_own_name)
    _run_named("framewire-a-very-long-thread-name", read_own_name)
    assert seen == ["fw-decode_1", "fw-a-very-long-"]  # the kernel keeps 15 bytes


def _spin(seconds: float = 0.15) -> None:
    until = time.thread_time() + seconds
    while time.thread_time() < until:
        pass


def _cpu_once(name: str, at_least: float) -> dict[str, float]:
    """thread_cpu_s of this process once `name` has spent at_least seconds (or 10 s passed)."""
    deadline = time.monotonic() + 10
    while thread_cpu_s(os.getpid()).get(name, 0) < at_least and time.monotonic() < deadline:
        time.sleep(0.02)
    return thread_cpu_s(os.getpid())


def test_cpu_is_summed_by_thread_name_across_a_pool() -> None:
    done = threading.Event()
    # Threads still alive when read (a finished thread's /proc entry is gone).
    threads = [threading.Thread(target=lambda: (name_os_thread(), _spin(), done.wait()),
                                name=f"framewire-spin_{i}") for i in range(2)]  # fmt: skip
    for thread in threads:
        thread.start()
    by_name = _cpu_once("fw-spin", 0.28)
    done.set()
    for thread in threads:
        thread.join()
    assert by_name["fw-spin"] >= 0.28  # both pool threads under one name
    assert "fw-spin_0" not in by_name


def test_threads_started_from_a_named_thread_count_apart() -> None:
    done = threading.Event()

    def named() -> None:
        name_os_thread()
        # A library's thread, started from the named one: it keeps the kernel name fw-owner.
        threading.Thread(target=lambda: (_spin(), done.wait())).start()
        done.wait()

    owner = threading.Thread(target=named, name="framewire-owner")
    owner.start()
    by_name = _cpu_once("fw-owner+", 0.14)
    done.set()
    owner.join()
    assert by_name["fw-owner+"] >= 0.14  # the child's spin
    assert by_name["fw-owner"] < 0.1  # the named thread itself only waited
