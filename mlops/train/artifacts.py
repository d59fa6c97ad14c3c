"""Files a training run leaves for people: the confusion matrix image and the per-class
table. (The machine-readable evaluation is evaluation.json, written by the run.)"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from mlops.evaluate import Evaluation


def per_class_csv(evaluation: Evaluation, path: Path) -> Path:
    """label, precision, recall, f1, support: one row a label, in the model's order."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["label", "precision", "recall", "f1", "support"])
        for label in evaluation.labels:
            row = evaluation.per_class[label]
            writer.writerow([label, *(f"{row[k]:.4f}" for k in ("precision", "recall", "f1")),
                             row["support"]])  # fmt: skip
    return path


def confusion_png(evaluation: Evaluation, path: Path, title: str) -> Path:
    """The confusion matrix as a heat map: rows true, columns predicted, each cell's count
    and its share of the row (the recall view), so small classes read as well as big."""
    import matplotlib

    matplotlib.use("Agg")  # no display: training runs on servers
    import matplotlib.pyplot as plt

    counts = np.array(evaluation.confusion, dtype=float)
    labels = evaluation.labels
    n = len(labels)
    rows = counts.sum(1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    side = min(4.0 + 0.6 * n, 16.0)
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    # Upright column labels while they fit; slanted only when long or many.
    slanted = n > 8 or max(len(label) for label in labels) > 8
    ax.set_xticks(range(n), labels, rotation=40 if slanted else 0,
                  ha="right" if slanted else "center")  # fmt: skip
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    # Outline the diagonal (the correct answers): a dark off-diagonal column otherwise
    # reads as "good" at a glance.
    for i in range(n):
        ax.add_patch(plt.Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black",
                                   linewidth=1.5))  # fmt: skip
    ax.set_title(f"{title}\naccuracy {evaluation.accuracy:.1%} on {evaluation.images} images")
    if n <= 30:  # beyond that the numbers are unreadable; the colours still tell
        for i in range(n):
            for j in range(n):
                if counts[i, j] == 0 and i != j:
                    continue
                colour = "white" if share[i, j] > 0.5 else "black"
                ax.text(j, i, f"{int(counts[i, j])}\n{share[i, j]:.0%}", ha="center",
                        va="center", color=colour,
                        fontsize=10 if n <= 10 else 7)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
