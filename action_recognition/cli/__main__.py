"""``python -m action_recognition.cli``: the same as the ``action-recognition`` command."""

import sys

from action_recognition.cli import main

sys.exit(main())
