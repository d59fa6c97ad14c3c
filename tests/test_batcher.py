import queue
import threading
import time
from concurrent.futures import Future

from workers.batcher import DynamicBatcher
from workers.work import WorkItem


def item(n: int) -> WorkItem:
    return WorkItem(record=n, generation=1, polled_at=time.time(), decoded_at=time.time())


def ready_item(n: int) -> Future:
    """A frame whose decode has finished."""
    future: Future = Future()
    future.set_result(item(n))
    return future


def filled(n: int) -> queue.Queue:
    q: queue.Queue = queue.Queue()
    for i in range(n):
        q.put(ready_item(i))
    return q


def test_idle_device_takes_what_is_ready_without_waiting():
    batcher = DynamicBatcher(filled(3), max_batch=8, max_delay_ms=1000)
    started = time.monotonic()
    batch = batcher.next_batch(lambda: True, timeout_s=1)
    assert [item.record for item in batch] == [0, 1, 2]
    assert time.monotonic() - started < 0.5  # did not sit out max_delay


def test_batch_closes_at_max_batch():
    batcher = DynamicBatcher(filled(10), max_batch=4, max_delay_ms=1000)
    assert len(batcher.next_batch(lambda: False, timeout_s=1)) == 4


def test_busy_device_waits_up_to_max_delay_for_more_frames():
    ready = filled(1)
    batcher = DynamicBatcher(ready, max_batch=8, max_delay_ms=200)

    def late_frame():
        time.sleep(0.05)
        ready.put(ready_item(1))

    threading.Thread(target=late_frame).start()
    started = time.monotonic()
    batch = batcher.next_batch(lambda: False, timeout_s=1)
    waited = time.monotonic() - started
    assert [item.record for item in batch] == [0, 1]  # the late frame joined the batch
    assert 0.15 < waited < 1.0  # then it closed on max_delay, not on the timeout


def test_empty_queue_returns_nothing_after_timeout():
    batcher = DynamicBatcher(queue.Queue(), max_batch=8, max_delay_ms=5)
    assert batcher.next_batch(lambda: True, timeout_s=0.05) == []


def test_busy_device_returns_empty_as_soon_as_it_finishes():
    batcher = DynamicBatcher(queue.Queue(), max_batch=8, max_delay_ms=5)
    done_at = time.monotonic() + 0.05
    started = time.monotonic()
    assert batcher.next_batch(lambda: time.monotonic() > done_at, timeout_s=5) == []
    assert time.monotonic() - started < 1.0


def test_frames_are_batched_in_poll_order_even_when_decoded_out_of_order():
    ready: queue.Queue = queue.Queue()
    slow: Future = Future()  # polled first, decoded last
    ready.put(slow)
    ready.put(ready_item(1))
    ready.put(ready_item(2))
    batcher = DynamicBatcher(ready, max_batch=8, max_delay_ms=5)

    def finish_decode():
        time.sleep(0.05)
        slow.set_result(item(0))

    threading.Thread(target=finish_decode).start()
    batch = batcher.next_batch(lambda: True, timeout_s=1)
    assert [i.record for i in batch] == [0, 1, 2]


def test_an_idle_cpu_device_waits_for_frames_still_in_decode():
    """On a CPU a batch's fixed costs share the cores with decoding: with the device idle,
    frames already polled and still in decode join the batch when they fill it (up to
    max_delay)."""
    for fill, expected in ((True, [0, 1]), (False, [0])):
        ready = filled(1)
        decoding: Future = Future()
        ready.put(decoding)
        threading.Timer(0.05, lambda f=decoding: f.set_result(item(1))).start()
        batcher = DynamicBatcher(ready, max_batch=2, max_delay_ms=1000, fill_from_decode=fill)
        started = time.monotonic()
        batch = batcher.next_batch(lambda: True, timeout_s=1)
        assert [i.record for i in batch] == expected
        assert time.monotonic() - started < 0.5  # the decode ended the wait, not max_delay
        time.sleep(0.1)  # the other decode finishes before the next case


def test_an_idle_cpu_device_waits_only_for_a_backlog_and_only_up_to_max_delay():
    """At low load a frame is a batch of one at once; frames in decode that would not fill
    the batch are left for the next one; and a decode that outlasts max_delay too."""
    for polled, max_batch in ((1, 8), (3, 8)):  # nothing in decode; too little to fill 8
        ready = filled(1)
        for _ in range(polled - 1):
            ready.put(Future())  # still in decode
        batcher = DynamicBatcher(ready, max_batch, max_delay_ms=1000, fill_from_decode=True)
        started = time.monotonic()
        assert [i.record for i in batcher.next_batch(lambda: True, timeout_s=1)] == [0]
        assert time.monotonic() - started < 0.5
    ready = filled(1)
    ready.put(Future())  # never decoded
    batcher = DynamicBatcher(ready, max_batch=2, max_delay_ms=50, fill_from_decode=True)
    started = time.monotonic()
    assert [i.record for i in batcher.next_batch(lambda: True, timeout_s=1)] == [0]
    assert 0.04 < time.monotonic() - started < 0.5
