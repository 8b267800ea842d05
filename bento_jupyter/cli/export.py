"""``bento-jupyter export``: the command line of the headless export."""

from __future__ import annotations

import argparse
from pathlib import Path


def _export(args: argparse.Namespace) -> int:
    from bento_jupyter.export.notebook import export_notebook  # nbclient: only when exporting
    from bento_jupyter.export.parameters import collect_parameters

    parameters = collect_parameters(args.parameter, Path(args.parameters_file) if args.parameters_file else None)
    result = export_notebook(
        Path(args.notebook),
        Path(args.output),
        parameters,
        force=args.force,
        kernel_name=args.kernel,
        timeout=args.timeout,
        sign_key=Path(args.sign_key) if args.sign_key else None,
    )
    from bento_jupyter.bento.manifest import read_manifest
    from bento_jupyter.server.replay import verification_line

    for bundle in result.bundles:
        verification = read_manifest(bundle).verification
        print(f"exported {bundle.name} to {bundle}" + (f"; {verification_line(verification)}" if verification else ""))
    return 0


def add_export_command(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export", help="run a notebook headlessly; write each %%%%bento serve cell's service as a bundle DIR/NAME/"
    )
    export.add_argument("notebook", help="the .ipynb file to execute")
    export.add_argument("-o", "--output", required=True, help="directory to create, one bundle per service inside")
    export.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="override a parameter of the cell tagged 'parameters' (VALUE read as a Python literal, else text)",
    )
    export.add_argument("--parameters-file", help="YAML or JSON mapping of parameters (-p overrides it)")
    export.add_argument("--force", action="store_true", help="replace a non-empty output directory")
    export.add_argument("--kernel", help="kernel name (default: the notebook's kernelspec)")
    export.add_argument("--timeout", type=int, default=600, help="seconds each cell may run (default 600)")
    export.add_argument("--sign-key", help="sign each bundle with this EC private key (see bento-jupyter sign)")
    export.set_defaults(run=_export)
