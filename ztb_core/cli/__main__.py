"""`python -m ztb_core.cli`: the same entry point as the `ztb` script."""

import sys

from .app import main

sys.exit(main())
