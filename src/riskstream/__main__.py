"""``python -m riskstream`` is the ``riskstream`` command."""

import sys

from riskstream.cli import main

sys.exit(main())
