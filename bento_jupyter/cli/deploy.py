"""``bento-jupyter deploy``: the command line of the deploy targets."""

from __future__ import annotations

import argparse
from pathlib import Path

from bento_jupyter.bento.trust import add_trust_argument
from bento_jupyter.deploy.bundle import DeployOptions
from bento_jupyter.deploy.targets import TARGETS, deploy


def _deploy(args: argparse.Namespace) -> int:
    options = DeployOptions(
        image=args.image,
        gpus=args.gpus,
        cpu=args.cpu,
        memory=args.memory,
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
        storage_uri=args.storage_uri,
        trusted_keys_secret=args.trusted_keys_secret,
    )
    for path in deploy(args.source, args.target, Path(args.output), options, args.force, args.trust_code):
        print(f"wrote {path}")
    return 0


def add_deploy_command(commands: argparse._SubParsersAction) -> None:
    defaults = DeployOptions()
    parser = commands.add_parser(
        "deploy", help="generate deployment artifacts (no cluster needed) for an exported bundle directory"
    )
    parser.add_argument("source", help="an export directory, a bundle, or NAME[:VERSION] from the local store")
    parser.add_argument("--target", required=True, choices=list(TARGETS))
    parser.add_argument("-o", "--output", required=True, help="directory to create")
    parser.add_argument("--force", action="store_true", help="replace a non-empty output directory")
    parser.add_argument("--image", help="container image (default: NAME:DIGEST12, built from env/Dockerfile)")
    parser.add_argument(
        "--gpus", type=int, help="nvidia.com/gpu per replica (default: 1 if an API or model is on CUDA, else 0)"
    )
    parser.add_argument("--cpu", default=defaults.cpu, help=f"CPU request per replica (default {defaults.cpu})")
    parser.add_argument("--memory", default=defaults.memory, help=f"memory per replica (default {defaults.memory})")
    parser.add_argument("--min-replicas", type=int, default=defaults.min_replicas)
    parser.add_argument("--max-replicas", type=int, default=defaults.max_replicas)
    parser.add_argument(
        "--storage-uri",
        help="kserve: oci://HOST/REPO:TAG of a KServe modelcar holding the bento (NAME.modelcar.Dockerfile)",
    )
    parser.add_argument(
        "--trusted-keys-secret",
        help="a Secret of *.pub public keys mounted for the entrypoint, which then serves only a bento they signed",
    )
    add_trust_argument(parser)
    parser.set_defaults(run=_deploy)
