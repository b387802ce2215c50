"""``python -m cli``: bin/crank-node without the launcher (how the demo starts node
processes, whether run from a checkout or an installation)."""

import sys

from cli.main import main

sys.exit(main())
