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


def test_cpu_is_summed_by_thread_name_across_a_pool() -> None:
    def spin() -> None:
        until = time.thread_time() + 0.15
        while time.thread_time() < until:
            pass

    done = threading.Event()
    # Threads still alive when read (a finished thread's /proc entry is gone).
    threads = [threading.Thread(target=lambda: (name_os_thread(), spin(), done.wait()),
                                name=f"framewire-spin_{i}") for i in range(2)]  # fmt: skip
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while thread_cpu_s(os.getpid()).get("fw-spin", 0) < 0.28 and time.monotonic() < deadline:
        time.sleep(0.02)
    by_name = thread_cpu_s(os.getpid())
    done.set()
    for thread in threads:
        thread.join()
    assert by_name["fw-spin"] >= 0.28  # both pool threads under one name
    assert "fw-spin_0" not in by_name


def test_threads_started_from_a_named_thread_count_apart() -> None:
    done = threading.Event()

    def spin_in_a_child() -> None:  # a library's thread, started from the named one
        until = time.thread_time() + 0.15
        while time.thread_time() < until:
            pass
        done.wait()

    def named() -> None:
        name_os_thread()
        threading.Thread(target=spin_in_a_child).start()  # keeps the kernel name fw-owner
        done.wait()

    owner = threading.Thread(target=named, name="framewire-owner")
    owner.start()
    deadline = time.monotonic() + 10
    while thread_cpu_s(os.getpid()).get("fw-owner+", 0) < 0.14 and time.monotonic() < deadline:
        time.sleep(0.02)
    by_name = thread_cpu_s(os.getpid())
    done.set()
    owner.join()
    assert by_name["fw-owner+"] >= 0.14  # the child's spin
    assert by_name["fw-owner"] < 0.1  # the named thread itself only waited
