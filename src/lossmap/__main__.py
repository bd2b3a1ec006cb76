"""``python -m lossmap`` runs the command line."""

import sys

from lossmap.cli import main

sys.exit(main())
