"""``python -m bench.realistic``: see :mod:`bench.realistic.runner`."""
import sys

from bench.realistic.runner import main

sys.exit(main())
