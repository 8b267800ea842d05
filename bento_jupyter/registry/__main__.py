"""``python -m bento_jupyter.registry serve|token|login|push|pull|alias|history ...``."""

import sys

from bento_jupyter.registry.commands import main

sys.exit(main())
