"""``python -m edgeshop <command>``: the same as the ``edgeshop`` command."""

import sys

from edgeshop.cli.dispatch import main

sys.exit(main())
