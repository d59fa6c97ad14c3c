"""Training, validation and tracking: `framewire train` (docs/MLOPS.md).

data (decode once, augment) -> loop (fit, early stopping, AMP on CUDA) -> mlops.evaluate
-> reference (statistics for drift monitoring) -> tracking (MLflow) -> run (all of it).
Importing this package does not import MLflow; running a training does.
"""

from mlops.train.run import TrainConfig, TrainError, TrainResult, train

__all__ = ["TrainConfig", "TrainError", "TrainResult", "train"]
