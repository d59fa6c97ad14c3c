"""Prometheus metrics of `framewire monitor` (served with --metrics-port)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DRIFT_VALUE = Gauge("framewire_drift_value", "The last window's drift statistic",
                    ["model", "metric"])  # fmt: skip
DRIFT_THRESHOLD = Gauge("framewire_drift_threshold", "The threshold of a drift statistic",
                        ["model", "metric"])  # fmt: skip
DRIFTING = Gauge("framewire_drifting", "1 while a statistic has been over its threshold for "
                 "`confirm` windows or more", ["model", "metric"])  # fmt: skip
LIVE_ACCURACY = Gauge("framewire_live_accuracy", "Accuracy over the last labelled frames "
                      "(fw-label and feedback) of each stream", ["model"])  # fmt: skip
STREAM_ACCURACY = Gauge("framewire_live_accuracy_by_stream", "Accuracy over a stream's last "
                        "labelled frames", ["model", "stream_id"])  # fmt: skip
LABELS = Counter("framewire_monitor_labels_total", "Ground-truth labels joined to a "
                 "prediction", ["source"])  # fmt: skip
WINDOWS = Counter("framewire_monitor_windows_total", "Windows checked", ["model"])
DATA_QUALITY = Counter("framewire_data_quality_events_total", "data_quality events sent",
                       ["check"])  # fmt: skip

METRIC_NAMES = sorted(
    m._name
    for m in (DRIFT_VALUE, DRIFT_THRESHOLD, DRIFTING, LIVE_ACCURACY, STREAM_ACCURACY, LABELS,
              WINDOWS, DATA_QUALITY)
)  # fmt: skip
