"""The feedback loop: labels people give frames (feedback/1) joined to the frames, as new
dataset versions (docs/MLOPS.md, "Feedback")."""

from mlops.feedback.collector import Collected, FeedbackError, NotJoined, collect
from mlops.feedback.send import keep_frame_copies, send_feedback

__all__ = [
    "Collected",
    "FeedbackError",
    "NotJoined",
    "collect",
    "keep_frame_copies",
    "send_feedback",
]
