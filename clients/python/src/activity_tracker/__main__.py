"""``python -m activity_tracker``: the same as the ``activity-tracker`` command."""

import sys

from activity_tracker.cli import main

sys.exit(main())
