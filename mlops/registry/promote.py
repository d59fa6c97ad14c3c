"""Promotion: the gate, then the alias moves and the workers are told. One function for
`framewire registry promote` and for retraining (mlops/retrain/)."""

from __future__ import annotations

from dataclasses import dataclass

from foundation.settings import Settings
from mlops.registry.deploy import notify_workers
from mlops.registry.gate import Decision, run_gate
from mlops.registry.store import HistoryEntry, Registry
from models.registry import LABELS_CHANGED_TAG


@dataclass
class Promotion:
    decision: Decision
    entry: HistoryEntry | None  # None: not promoted (refused, or already there)
    notified: str = ""  # what the workers answered to the broadcast

    @property
    def promoted(self) -> bool:
        return self.entry is not None


def promote(
    settings: Settings, name: str, version: str, alias: str = "production",
    force: bool = False, device: str = "cpu",
) -> Promotion:  # fmt: skip
    """Run the gate; move the alias if it accepts (or force says so, recorded)."""
    registry = Registry(settings)
    decision = run_gate(settings, registry, name, version, alias, device=device)
    if decision.production == decision.candidate or not (decision.accepted or force):
        return Promotion(decision, None)
    if decision.labels_differ and force:
        registry.set_version_tag(name, version, LABELS_CHANGED_TAG, "true")
    entry = registry.move_alias(name, alias, version, "promote", forced=not decision.accepted,
                                reasons=decision.reasons)  # fmt: skip
    return Promotion(decision, entry, notify_workers(settings, name))
