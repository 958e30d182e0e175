"""python -m autolabel: the same as the ``autolabel`` console script."""

import sys

from autolabel.cli import main

sys.exit(main())
