"""The model watcher: the thread that prepares the next model while the current one serves.

A worker serves one model source: a model directory, the built-in demo model, or a
registry URI (`models:/NAME@ALIAS`, `models:/NAME/VERSION`; models/registry.py). For an
alias, this thread asks the registry where the alias points every FRAMEWIRE_MODEL_POLL_S,
and at once when told (`reload_model`, broadcast by `framewire registry promote` and
`rollback`). A new version is fetched into the local cache, loaded, checked against its
card and the model being served, and warmed up here, off the device thread, which keeps
running batches with the old engine meanwhile; the finished engine is then handed to the
device thread, which swaps it in between two batches. A version that fails any step is
refused: the old model keeps serving, and `on_refused` says why (an `error` event with
stage `model`, a log line). The poll does not retry a refused version (it would fail the
same way every interval); an explicit request does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from foundation.log import get_logger
from foundation.settings import Settings
from models.loader import LoadedModel, ModelLoadError, load_model, resolve_model
from models.registry import (
    LABELS_CHANGED_TAG,
    RegistryRef,
    fetch,
    is_registry_uri,
    parse_model_uri,
    registry_client,
    resolve,
)
from models.spec import ModelCard
from workers.engine import InferenceEngine
from workers.threads import name_os_thread

log = get_logger(__name__)

SERVED_TASKS = ("classification",)  # what LoadedModel.postprocess turns into predictions


class ModelRefused(ValueError):
    """A candidate that must not be served; str() is the reason, one line."""


@dataclass(frozen=True)
class Candidate:
    model: LoadedModel
    source: str  # what was asked for: a directory, models:/..., or "" (the demo model)
    tags: dict[str, str]  # the registry version's tags; {} for a directory


def load_candidate(settings: Settings, source: str | None, client: Any = None) -> Candidate:
    """Fetch (for a registry URI) and load a model; ModelLoadError says why it cannot be."""
    if is_registry_uri(source):
        ref = parse_model_uri(str(source))
        client = client if client is not None else registry_client(settings)
        fetched = fetch(settings, client, ref)
        return Candidate(load_model(fetched.path), str(source), fetched.tags)
    return Candidate(load_model(resolve_model(source or None)), source or "", {})


def check_candidate(candidate: Candidate, serving: ModelCard | None) -> None:
    """ModelRefused unless the candidate can replace the model being served.

    The card itself was validated when it was read (input spec, non-empty unique labels);
    the warm-up then runs the model at its input size and checks its output against the
    labels. Here: a task this worker can serve, and, for another version of the same
    registered model, the same label set unless the version is tagged as a deliberate
    label change: consumers of result/1 count on the labels of a name they already know.
    """
    card = candidate.model.card
    if card.task not in SERVED_TASKS:
        raise ModelRefused(f"task {card.task!r} is not served (only {', '.join(SERVED_TASKS)})")
    if serving is None or serving.name != card.name:
        return
    if set(card.labels) != set(serving.labels) and (
        candidate.tags.get(LABELS_CHANGED_TAG) != "true"
    ):
        added = sorted(set(card.labels) - set(serving.labels))
        removed = sorted(set(serving.labels) - set(card.labels))
        raise ModelRefused(
            f"labels differ from {serving.name}:{serving.version} (added {added}, removed "
            f"{removed}) and the version is not tagged {LABELS_CHANGED_TAG}=true"
        )


class ModelWatcher(threading.Thread):
    def __init__(
        self,
        settings: Settings,
        build_engine: Callable[[LoadedModel], InferenceEngine],
        serving: Callable[[], ModelCard | None],
        install: Callable[[InferenceEngine, str], None],
        on_refused: Callable[[str, str | None, str], None],
    ) -> None:
        super().__init__(name="framewire-model", daemon=True)
        self.settings = settings
        self.build_engine = build_engine  # loads to the device and warms up
        self.serving = serving  # the card of the engine serving now
        self.install = install  # hands an engine to the device thread (swapped between batches)
        self.on_refused = on_refused  # (source, version or None, reason)
        self.source = settings.model or ""
        self.loading: str | None = None  # what is being prepared now, for stats
        self._client: Any = None
        self._refused: set[tuple[str, str]] = set()  # (name, version) the poll leaves alone
        self._lock = threading.Lock()
        self._wake = threading.Event()
        # (source, mode): "reload" loads it even when it is what serves (an operator asked),
        # "check" loads a new version and retries refused ones (the alias moved), "poll"
        # loads a new version only.
        self._pending: tuple[str, str] | None = None
        self._stop = threading.Event()

    # Called from other threads ------------------------------------------------------------

    def request(self, source: str | None = None) -> None:
        """Serve this source from now on (None: the current one again), loaded at once."""
        with self._lock:
            self._pending = (self.source if source is None else source, "reload")
        self._wake.set()

    def alias_moved(self, name: str) -> bool:
        """A registered model's alias moved: check now if this worker follows NAME@ALIAS."""
        ref = self._followed()
        if ref is None or ref.name != name:
            return False
        with self._lock:
            if self._pending is None:
                self._pending = (self.source, "check")
        self._wake.set()
        return True

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    # The thread ---------------------------------------------------------------------------

    def run(self) -> None:
        name_os_thread()
        while not self._stop.is_set():
            poll_s = self.settings.model_poll_s if self._followed() else 0
            self._wake.wait(poll_s if poll_s > 0 else None)
            self._wake.clear()
            if self._stop.is_set():
                return
            with self._lock:
                pending, self._pending = self._pending, None
            source, mode = pending if pending else (self.source, "poll")
            try:
                self._prepare(source, mode)
            except Exception as exc:  # the watcher must outlive any one bad version
                log.exception("model watcher failed", source=source)
                self.on_refused(source, None, f"{type(exc).__name__}: {exc}"[:300])
            finally:
                self.loading = None

    def _followed(self) -> RegistryRef | None:
        """The registry alias this worker follows, if its source is one."""
        if not is_registry_uri(self.source):
            return None
        try:
            ref = parse_model_uri(self.source)
        except ModelLoadError:
            return None
        return ref if ref.alias else None

    def _prepare(self, source: str, mode: str) -> None:
        serving = self.serving()
        version: str | None = None
        if is_registry_uri(source):
            try:
                ref = parse_model_uri(source)
                if self._client is None:
                    self._client = registry_client(self.settings)
                version, _ = resolve(self._client, ref)
            except ModelLoadError as exc:
                if mode != "poll":
                    self._refuse(source, version, str(exc))
                else:  # a poll that found the registry away: the next one will try again
                    log.warning("model registry check failed", source=source, reason=str(exc))
                return
            current = serving is not None and (serving.name, serving.version) == (ref.name, version)
            if current and mode != "reload":
                return
            if (ref.name, version) in self._refused and mode == "poll":
                return
        self.loading = f"{source} (version {version})" if version else source
        log.info("preparing model", source=source, version=version)
        try:
            candidate = load_candidate(self.settings, source, self._client)
            check_candidate(candidate, serving)
            engine = self.build_engine(candidate.model)  # includes the warm-up
        except (ModelLoadError, ModelRefused) as exc:
            self._refuse(source, version, str(exc))
            return
        except Exception as exc:  # a model that fails its warm-up raises anything
            self._refuse(source, version, f"warm-up failed: {type(exc).__name__}: {exc}")
            return
        card = engine.card
        self._refused.discard((card.name, card.version))
        self.source = source  # followed from now on (an explicit reload may change it)
        self.install(engine, source)

    def _refuse(self, source: str, version: str | None, reason: str) -> None:
        if is_registry_uri(source) and version is not None:
            self._refused.add((parse_model_uri(source).name, version))
        self.on_refused(source, version, " ".join(reason.split())[:500])
