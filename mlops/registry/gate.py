"""The promotion gate: a candidate version against the one an alias points to now.

Both models are evaluated (mlops/evaluate.py) on the validation split of every dataset
either was validated on (version tag `dataset`): production's, so a candidate cannot pass
by being judged on easier data of its own, and the candidate's, so new classes or data
count too. The candidate is refused when, on any of them, its accuracy is lower by more
than FRAMEWIRE_PROMOTION_MAX_ACCURACY_DROP, or any class's recall (classes the data has)
is lower by more than FRAMEWIRE_PROMOTION_MAX_RECALL_DROP, or when its label set differs
(a contract change for everyone reading result/1: only `--force` deploys it). The first
promotion of a name has nothing to regress from and passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from foundation.settings import Settings
from mlops.data.store import DatasetError, DatasetStore
from mlops.evaluate import Evaluation, evaluate
from mlops.registry.store import DATASET_TAG, Registry, RegistryError
from models.loader import ModelLoadError, load_model

# Figures are rates from finite counts: compare with a little slack for float rounding.
_EPSILON = 1e-9


@dataclass(frozen=True)
class Comparison:
    dataset: str  # NAME@VERSION
    images: int
    candidate: Evaluation
    production: Evaluation
    reasons: list[str]  # why the candidate regresses here; empty: it does not


@dataclass
class Decision:
    name: str
    alias: str
    candidate: str
    production: str | None  # the version the alias points to now; None: first promotion
    comparisons: list[Comparison] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # every reason to refuse
    labels_differ: bool = False

    @property
    def accepted(self) -> bool:
        return not self.reasons


def regressions(
    candidate: Evaluation, production: Evaluation, max_accuracy_drop: float,
    max_recall_drop: float,
) -> list[str]:  # fmt: skip
    """Why candidate regresses against production on one dataset (empty: it does not)."""
    reasons = []
    drop = production.accuracy - candidate.accuracy
    if drop > max_accuracy_drop + _EPSILON:
        reasons.append(f"accuracy {candidate.accuracy:.3f} vs {production.accuracy:.3f} "
                       f"(-{drop:.3f} > {max_accuracy_drop:.3f})")  # fmt: skip
    for label, figures in sorted(production.per_class.items()):
        if not figures.get("support"):
            continue  # a class the data does not have: no recall to lose
        theirs = candidate.per_class.get(label, {}).get("recall", 0.0)
        drop = figures["recall"] - theirs
        if drop > max_recall_drop + _EPSILON:
            reasons.append(f"recall of {label} {theirs:.3f} vs {figures['recall']:.3f} "
                           f"(-{drop:.3f} > {max_recall_drop:.3f})")  # fmt: skip
    return reasons


def run_gate(
    settings: Settings, registry: Registry, name: str, candidate: str, alias: str,
    device: str = "cpu",
) -> Decision:  # fmt: skip
    """Evaluate candidate against what alias points to; the decision with its reasons."""
    target = registry.version(name, candidate)
    current = registry.alias_version(name, alias)
    decision = Decision(name, alias, target.version, current)
    if current is None or current == target.version:
        return decision
    production = registry.version(name, current)
    candidate_card = registry.card(name, target.version)
    production_card = registry.card(name, current)
    if set(candidate_card.labels) != set(production_card.labels):
        decision.labels_differ = True
        decision.reasons.append(
            f"labels differ from version {current}'s: {sorted(candidate_card.labels)} vs "
            f"{sorted(production_card.labels)}"
        )
    datasets = list(dict.fromkeys(
        ref for ref in (production.tags.get(DATASET_TAG), target.tags.get(DATASET_TAG)) if ref
    ))  # fmt: skip
    if not datasets:
        decision.reasons.append(
            f"no dataset to validate on: neither version {current} nor {target.version} has a "
            f"'{DATASET_TAG}' tag (registry import --dataset NAME@VERSION)"
        )
        return decision
    store = DatasetStore.for_settings(settings)
    models = {}
    for version in (target.version, current):
        try:
            models[version] = load_model(registry.fetch(name, version).path)
        except (ModelLoadError, RegistryError) as exc:
            decision.reasons.append(f"version {version} cannot be evaluated: {exc}")
    if decision.reasons and len(models) < 2:
        return decision
    for ref in datasets:
        try:
            items = store.resolve(ref).split("validation")
        except DatasetError as exc:
            decision.reasons.append(f"dataset {ref}: {exc}")
            continue
        if not items:
            decision.reasons.append(f"dataset {ref} has no validation images")
            continue
        theirs = evaluate(models[target.version], store, items, device=device)
        ours = evaluate(models[current], store, items, device=device)
        found = regressions(theirs, ours, settings.promotion_max_accuracy_drop,
                            settings.promotion_max_recall_drop)  # fmt: skip
        decision.comparisons.append(Comparison(ref, theirs.images, theirs, ours, found))
        decision.reasons += [f"on {ref}: {reason}" for reason in found]
    return decision
