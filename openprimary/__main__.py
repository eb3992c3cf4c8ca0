"""``python -m openprimary``: the ``openprimary`` command, as ``python -m openprimary.cli``."""

import sys

from openprimary.cli import main

sys.exit(main())
