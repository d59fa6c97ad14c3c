"""The model registry (MLflow Model Registry, aliases not stages): importing versions,
the promotion gate, the promotion history, and telling the workers (docs/MLOPS.md).

    store.py    versions, aliases, tags and the promotion history, on the configured store
    gate.py     a candidate against production on their validation datasets
    deploy.py   the broadcast that makes workers look at an alias now
"""
