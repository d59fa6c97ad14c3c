"""Backfill jobs: re-score history (a time range of a topic, a video file, an image folder)
on the streaming workers, behind live traffic (docs/OPERATIONS.md, "Backfill jobs").

    plan (the CLI: what each task covers) -> jobs (Redis: tasks, checkpoints, cancel)
    -> task (Celery, queue `backfill`) -> sources (read from a checkpoint) -> lane (the
    device thread runs the batch) -> output (results.backfill topic, a Redis namespace)
"""
