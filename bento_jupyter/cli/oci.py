"""``bento-jupyter oci push|pull``: bentos in any OCI registry."""

from __future__ import annotations

import argparse
import sys

from bento_jupyter.bento.trust import TrustPolicy, add_signature_argument, add_trust_argument, report_signer
from bento_jupyter.oci.credentials import Credentials
from bento_jupyter.oci.distribution import DistributionClient
from bento_jupyter.oci.reference import OCIError, OCIReference

MIB = 1 << 20


def _client(args: argparse.Namespace, reference: str) -> DistributionClient:
    credentials = None
    if args.username:
        if not args.password_stdin:
            raise OCIError("--username needs --password-stdin (the password is never a command-line argument)")
        credentials = Credentials(args.username, sys.stdin.readline().rstrip("\n"))
    return DistributionClient(OCIReference.parse(reference), credentials, plain_http=args.plain_http or None)


def _push(args: argparse.Namespace) -> int:
    from bento_jupyter.oci.artifact import push

    result = push(args.tag, args.target, _client(args, args.target))
    print(
        f"pushed {args.tag} to {result.ref} ({result.uploaded_blobs} blobs, {result.uploaded_bytes / MIB:.1f} MiB "
        f"sent; {result.skipped_blobs} already there)"
    )
    return 0


def _pull(args: argparse.Namespace) -> int:
    from bento_jupyter.oci.artifact import pull

    trust = TrustPolicy.from_arguments(args)
    result = pull(args.source, _client(args, args.source), trust=trust)
    report_signer(result.item.path, trust)
    print(
        f"pulled {result.ref} into the local store as {result.item.tag} (bento {result.bento_digest[:19]}; "
        f"{result.downloaded_bytes / MIB:.1f} MiB)"
    )
    return 0


def _auth_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--username", help="registry user (default: what `docker login` saved)")
    parser.add_argument("--password-stdin", action="store_true", help="read the password or token from stdin")
    parser.add_argument("--plain-http", action="store_true", help="HTTP, not HTTPS (the default for loopback hosts)")


def add_oci_command(commands: argparse._SubParsersAction) -> None:
    oci = commands.add_parser("oci", help="push and pull bentos as OCI artifacts (any container registry)")
    actions = oci.add_subparsers(dest="oci_action", required=True)
    push = actions.add_parser("push", help="push local NAME[:VERSION] to oci://HOST[:PORT]/REPOSITORY[:TAG]")
    push.add_argument("tag")
    push.add_argument("target")
    _auth_options(push)
    push.set_defaults(run=_push)
    pull = actions.add_parser("pull", help="pull oci://HOST[:PORT]/REPOSITORY[:TAG|@sha256:...] into the store")
    pull.add_argument("source")
    _auth_options(pull)
    add_trust_argument(pull)
    add_signature_argument(pull, "pull")
    pull.set_defaults(run=_pull)
