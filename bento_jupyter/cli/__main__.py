"""``python -m bento_jupyter.cli``: the ``bento-jupyter`` command."""

import sys

from bento_jupyter.cli import main

sys.exit(main())
