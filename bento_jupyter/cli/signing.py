"""``bento-jupyter sign`` and ``verify-signature``: sign a bento, check it against trusted keys."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bento_jupyter.bento.loader import locate
from bento_jupyter.bento.signing import sign_bento, verify_bento


def _sign(args: argparse.Namespace) -> int:
    password = sys.stdin.readline().rstrip("\n").encode() if args.password_stdin else None
    root = locate(args.target)
    signer = sign_bento(root, Path(args.key), password)
    print(f"signed {args.target} with {signer} ({root / 'bento.sig'})")
    return 0


def _verify(args: argparse.Namespace) -> int:
    signer = verify_bento(locate(args.target), Path(args.keys))
    print(f"{args.target}: signature OK, signed by {signer}")
    return 0


def add_signature_commands(commands: argparse._SubParsersAction) -> None:
    sign = commands.add_parser("sign", help="sign a bento (NAME[:VERSION] or a directory) with an EC private key")
    sign.add_argument("target")
    sign.add_argument("--key", required=True, help="PEM EC private key (P-256/384/521), e.g. from openssl ecparam")
    sign.add_argument("--password-stdin", action="store_true", help="read the key's password from stdin")
    sign.set_defaults(run=_sign)
    verify = commands.add_parser(
        "verify-signature", help="check a bento's signature against trusted public keys (exit 2 when refused)"
    )
    verify.add_argument("target")
    verify.add_argument("--keys", required=True, help="a PEM public key, or a directory of *.pub / *.pem keys")
    verify.set_defaults(run=_verify)
