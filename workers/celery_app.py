"""The app for Celery's own command line: `celery -A workers.celery_app flower|inspect ...`.

Configured from FRAMEWIRE_* variables. `framewire worker` builds its app itself
(workers/app.py) so that CLI flags apply.
"""

from foundation.settings import Settings
from workers.app import create_app

app = create_app(Settings.load())
