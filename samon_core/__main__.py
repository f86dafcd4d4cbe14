"""``python -m samon_core``: see samon_core.cli."""

import sys

from samon_core.cli import main

sys.exit(main())
