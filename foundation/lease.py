"""A lease in Redis: at most one holder, for at most `ttl_s` unless renewed.

SET NX EX takes it; a holder renews it while it works (a thread, every ttl/3) and deletes
it when done, both only if it still holds it (compare-and-act in one Lua call, so a holder
whose lease expired never deletes the next holder's). A holder that dies frees it at the
end of its ttl.
"""

from __future__ import annotations

import threading
import uuid
from types import TracebackType

import redis

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    def __init__(self, client: redis.Redis, key: str, ttl_s: int = 60) -> None:
        self.client, self.key, self.ttl_s = client, key, ttl_s
        self.token = uuid.uuid4().hex
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def acquire(self) -> bool:
        """Take the lease (and start renewing it) if nobody holds it."""
        if not self.client.set(self.key, self.token, nx=True, ex=self.ttl_s):
            return False
        self._renewer = threading.Thread(target=self._renew, name="framewire-lease",
                                         daemon=True)  # fmt: skip
        self._renewer.start()
        return True

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return value.decode() if value else None

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(5)
        self.client.eval(_RELEASE, 1, self.key, self.token)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 trace: TracebackType | None) -> None:  # fmt: skip
        self.release()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            if not self.client.eval(_RENEW, 1, self.key, self.token, self.ttl_s):
                return  # lost (expired while this process stalled): nothing to renew
