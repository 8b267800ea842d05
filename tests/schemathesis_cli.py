"""The schemathesis command line as the tests run it: this interpreter's `st`, with a fixed seed under CI.

CI (CI=1, set by `.ci/run`) draws the same requests every run, as tests/conftest.py does for hypothesis, so
a landing is judged on a fixed set; elsewhere each run draws new ones.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

SCHEMATHESIS = Path(sys.executable).with_name("st")
SEED = ["--seed", "20261201"] if os.environ.get("CI") else []
