"""The ``bento-jupyter`` command: one argparse tree (serve, bentos, registry, export, deploy, oci, sign).

``main`` is the console script's target (``bento_jupyter.cli:main`` in pyproject.toml), so installed scripts keep
working whichever module holds the tree.
"""

from bento_jupyter.cli.main import main

__all__ = ["main"]
