"""API keys: `Authorization: Bearer KEY` against FRAMEWIRE_API_KEYS.

No keys configured means the gateway is open (logged once at start). A missing or
malformed header is a 401 (with `WWW-Authenticate`), a wrong key a 403. Keys are compared
with hmac.compare_digest against every configured key, so the time taken does not reveal
how much of a guess was right, nor which key matched.
"""

from __future__ import annotations

import hmac

from producers.gateway.errors import ApiError


class ApiKeys:
    def __init__(self, keys_text: str) -> None:
        self._keys = [k.strip().encode() for k in keys_text.split(",") if k.strip()]

    @property
    def open(self) -> bool:
        return not self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def check(self, authorization: str | None) -> None:
        """Return when the header carries a valid key (or auth is off); else raise ApiError."""
        if self.open:
            return
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(
                401,
                "unauthorized",
                "missing API key: send the header 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": 'Bearer realm="framewire"'},
            )
        given = token.encode()
        matched = False
        for key in self._keys:  # no early exit: every key is compared every time
            matched |= hmac.compare_digest(given, key)
        if not matched:
            raise ApiError(403, "forbidden", "the API key is not valid")
