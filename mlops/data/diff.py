"""What changed between two dataset versions (of one name or two): items added, removed
and relabelled, and the count of each label in each split."""

from __future__ import annotations

from dataclasses import dataclass

from mlops.data.store import SPLITS, DatasetVersion, Item


@dataclass(frozen=True)
class Relabelled:
    item: Item  # as in the newer version
    old_label: str | None


@dataclass(frozen=True)
class VersionDiff:
    old: DatasetVersion
    new: DatasetVersion
    added: tuple[Item, ...]
    removed: tuple[Item, ...]
    relabelled: tuple[Relabelled, ...]

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.removed or self.relabelled)

    def count_changes(self) -> dict[str, dict[str, int]]:
        """label -> split -> new count minus old count; only labels whose counts changed."""
        old, new = self.old.counts(), self.new.counts()
        labels = sorted({lb for c in (old, new) for split in c.values() for lb in split})
        changes = {}
        for label in labels:
            delta = {s: new[s].get(label, 0) - old[s].get(label, 0) for s in SPLITS}
            if any(delta.values()):
                changes[label] = delta
        return changes

    def to_json(self) -> dict:
        def item(i: Item) -> dict:
            return {"blob": i.blob, "label": i.label, "split": i.split, "source": i.source}

        return {
            "old": self.old.ref,
            "new": self.new.ref,
            "added": [item(i) for i in self.added],
            "removed": [item(i) for i in self.removed],
            "relabelled": [{**item(r.item), "old_label": r.old_label} for r in self.relabelled],
            "count_changes": self.count_changes(),
        }


def diff_versions(old: DatasetVersion, new: DatasetVersion) -> VersionDiff:
    """Items are matched by blob (their bytes), so a file renamed is neither added nor
    removed; each list is in source order."""
    before = {item.blob: item for item in old.items}
    after = {item.blob: item for item in new.items}
    added = [after[b] for b in after.keys() - before.keys()]
    removed = [before[b] for b in before.keys() - after.keys()]
    both = after.keys() & before.keys()
    relabelled = [Relabelled(after[b], before[b].label)
                  for b in both if after[b].label != before[b].label]  # fmt: skip
    return VersionDiff(old, new, _by_source(added), _by_source(removed),
                       tuple(sorted(relabelled, key=lambda r: r.item.source)))  # fmt: skip


def _by_source(items: list[Item]) -> tuple[Item, ...]:
    return tuple(sorted(items, key=lambda item: item.source))
