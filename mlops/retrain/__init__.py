"""Retraining: `framewire retrain` (docs/MLOPS.md, "Retraining").

lease (never two at once) -> retrain (newest data, production's recipe, the gate) -> task
(Celery, queue `retrain`, requested by the monitor, the feedback collector or a person).
"""
