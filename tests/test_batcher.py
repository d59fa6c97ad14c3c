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
