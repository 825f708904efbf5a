"""``python -m reference``: the ``refka`` command without its console script (what local clusters run)."""

import sys

from reference.cli import main

sys.exit(main())
