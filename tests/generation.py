"""How generated inputs are drawn: the same examples every run unless ``HYPOTHESIS_PROFILE=explore``.

The suite is CI's gate, so by default it judges a landing on a fixed set of generated examples (Hypothesis's
advice for CI: a derandomized profile). ``HYPOTHESIS_PROFILE=explore`` draws new ones each run, for
hunting faults. schemathesis, run as a command, follows the same choice through its seed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import settings

settings.register_profile("repeatable", derandomize=True, print_blob=True)
settings.register_profile("explore")
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "repeatable")
settings.load_profile(PROFILE)

SCHEMATHESIS = Path(sys.executable).with_name("st")
SCHEMATHESIS_SEED = [] if PROFILE == "explore" else ["--seed", "20261201"]
