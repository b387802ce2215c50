"""``python -m crank_node``: the same as the ``crank-node`` command."""

import sys

from crank_node.cli.main import main

sys.exit(main())
