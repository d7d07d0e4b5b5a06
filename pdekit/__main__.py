"""``python -m pdekit``: the ``pdekit`` command without an installed entry point."""

import sys

from pdekit.cli import main

sys.exit(main())
