"""``python -m edge``: the same as the ``edge-anpr`` command."""

import sys

from edge.cli import main

sys.exit(main())
