"""The ``bento-jupyter`` command: serve bentos, inspect and delete them in the local store."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from bento_jupyter.bento.archive import export_archive, import_archive
from bento_jupyter.bento.listing import stored_items_table
from bento_jupyter.bento.loader import locate
from bento_jupyter.bento.local_store import Store
from bento_jupyter.bento.manifest_model import BentoManifest, Verification
from bento_jupyter.bento.trust import (
    TRUST_FLAG,
    TrustPolicy,
    add_signature_argument,
    add_trust_argument,
    code_executing_files,
)
from bento_jupyter.cli.deploy import add_deploy_command
from bento_jupyter.cli.export import add_export_command
from bento_jupyter.cli.oci import add_oci_command
from bento_jupyter.cli.registry import add_commands as add_registry_commands
from bento_jupyter.cli.signing import add_signature_commands
from bento_jupyter.errors import BentoJupyterError
from bento_jupyter.service.settings import ServiceSettings
from bento_jupyter.sockets import DEFAULT_HOST, port_number
from bento_jupyter.uvicorn_config import add_limit_arguments, limits_from


def _serve(args: argparse.Namespace) -> int:
    from bento_jupyter.server.standalone import serve_bento

    root = locate(args.target)
    keys = Path(args.require_signature) if args.require_signature else None
    if keys is not None:
        from bento_jupyter.bento.signing import verify_bento

        print(f"{root}: signed by {verify_bento(root, keys)}", file=sys.stderr)
    trust = TrustPolicy(trust_code=args.trust_code, trusted_keys=keys)
    if args.verify:
        from bento_jupyter.server.replay import replay_samples

        report = replay_samples(root, trust)
        print(f"{root}: {report.summary()}", file=sys.stderr)
        if not report.passed:
            return 1
    serve_bento(
        root,
        args.host,
        args.port,
        args.workers,
        trust,
        ServiceSettings.given(args),
        limits_from(args),
        warn_unverified=not args.verify,
    )
    return 0


def _verify(args: argparse.Namespace) -> int:
    from bento_jupyter.server.replay import EXIT_CODES, replay_samples

    trust = TrustPolicy(trust_code=args.trust_code)
    if args.registry:
        return _verify_registry_version(args, trust)
    with contextlib.redirect_stdout(sys.stderr):  # what the bento's own code prints stays out of the report
        report = replay_samples(locate(args.target), trust)
    print(json.dumps(report.to_json()) if args.json else report.summary())
    return EXIT_CODES[report.state]


def _verify_registry_version(args: argparse.Namespace, trust: TrustPolicy) -> int:
    """Pull a registry version, replay its samples, and record the result there (what ``verified`` policies read)."""
    from bento_jupyter._version import __version__
    from bento_jupyter.registry.client.remote import connect, pull
    from bento_jupyter.server.replay import replay_samples

    pulled = pull(args.target, args.url, args.token, trust=trust)
    with contextlib.redirect_stdout(sys.stderr):  # as in _verify: stdout carries the report only
        report = replay_samples(pulled.item.path, trust)
    passed = report.state == "passed"  # a bento with no samples verifies nothing
    name = pulled.item.name
    details = {**report.to_json(), "tool": f"bento-jupyter {__version__} verify"}
    connect(args.url, args.token).record_verification(name, pulled.version, passed, **details)
    print(json.dumps(report.to_json()) if args.json else report.summary())
    outcome = "passed" if passed else f"not passed ({report.state})"
    print(f"recorded in the registry: {name}:{pulled.version} {outcome}", file=sys.stderr)
    return 0 if passed else 1


def _show_lineage(manifest: BentoManifest) -> str:
    lineage = manifest.lineage
    lines = [
        f"{manifest.name}  digest {manifest.digest}",
        f"  built {lineage.built_at} by {lineage.built_by} with Python {lineage.python}",
        f"  notebook {lineage.notebook_path or '-'}  kernel {lineage.kernel_id or '-'}",
    ]
    git = lineage.git
    if git:
        lines.append(f"  git {(git.commit or '')[:12]} on {git.branch}{' (dirty)' if git.dirty else ''}")
    for cell in lineage.cells:
        lines.append(
            f"  cell {cell.cell_id or '?'}  execution {cell.execution_count}  sha256 {(cell.source_sha256 or '')[:12]}"
        )
    for api in manifest.apis:
        batching = f" batched <= {api.max_batch_size} / {api.max_latency_ms:g} ms" if api.batchable else ""
        kinds = "".join(f" {kind}" for kind, on in (("stream", api.stream), ("task", api.task)) if on)
        lines.append(f"  api POST {api.route}{batching}{kinds}")
    for model in manifest.models:
        warning = "  (pickle: executes code on load)" if model.executes_code else ""
        lines.append(f"  model {model.name} [{model.kind}]{warning}")
    if manifest.source is not None:  # a bento's source is readable code: serving it runs it, trust flag or not
        lines.append(f"  runs on serve: {manifest.source} (serve only bentos you trust: --require-signature KEYS)")
    if code_executing_files(manifest):
        lines.append(f"  executes code on load: serve, pull and deploy need {TRUST_FLAG}")
    lines.append("  requirements " + ", ".join(manifest.requirements))
    return "\n".join(lines)


def _signature_line(root: Path) -> str:
    from bento_jupyter.bento.signing import signer_of

    try:
        signer = signer_of(root)
    except BentoJupyterError as exc:
        return f"  signature: {exc}"
    if signer is None:
        return "  unsigned (bento-jupyter sign NAME:VERSION --key KEY)"
    return f"  signed by key {signer.fingerprint} (check it: bento-jupyter verify-signature NAME:VERSION --keys KEYS)"


def _verification_text(verification: Verification | None) -> str:
    from bento_jupyter.server.replay import verification_line, verification_warning

    return verification_line(verification) if verification else str(verification_warning(verification))


def _store_command(kind: str, args: argparse.Namespace) -> int:
    store = Store(kind)
    if args.action == "list":
        print(stored_items_table(store))
    elif args.action == "show":
        manifest = store.manifest(args.tag)
        print(json.dumps(manifest.document, indent=2) if args.json else _show_lineage(manifest))
        if not args.json:
            print(_signature_line(store.resolve(args.tag).path))
            if kind == "bentos":
                print(f"  {_verification_text(manifest.verification)}")
    elif args.action == "delete":
        print(f"deleted {store.delete(args.tag).tag}")
    elif args.action == "export":
        item = store.resolve(args.tag)
        print(f"exported {item.tag} to {export_archive(item.path, Path(args.file))}")
    elif args.action == "import":
        print(f"imported {import_archive(Path(args.file), store, TrustPolicy.from_arguments(args)).tag}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bento-jupyter", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a bento (NAME[:VERSION] from the store, or a directory)")
    serve.add_argument("target")
    serve.add_argument("--host", default=DEFAULT_HOST)
    serve.add_argument("--port", type=port_number, default=3000)
    serve.add_argument("--workers", type=int, default=1)
    add_signature_argument(serve, "serve")
    add_trust_argument(serve)
    add_limit_arguments(serve)
    serve.add_argument(
        "--verify", action="store_true", help="first replay the samples stored in the bento; exit 1 if any differs"
    )
    ServiceSettings.add_arguments(serve)
    serve.set_defaults(run=_serve)
    verify = commands.add_parser(
        "verify",
        help="replay a bento's stored samples (NAME[:VERSION] or a directory); exit 1 when an answer differs,"
        " 3 when an API has no sample to replay (not verified)",
    )
    verify.add_argument("target")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.add_argument(
        "--registry",
        action="store_true",
        help="TARGET is a registry version (NAME:N or NAME@ALIAS): pull it, replay, and record the result there",
    )
    verify.add_argument("--url", help="registry URL (default: the one saved by `bento-jupyter login`)")
    verify.add_argument("--token", help="a write token (default: the saved one)")
    add_trust_argument(verify)
    verify.set_defaults(run=_verify)
    for kind in ("bentos", "models"):
        group = commands.add_parser(kind, help=f"list, show or delete stored {kind}")
        actions = group.add_subparsers(dest="action", required=True)
        actions.add_parser("list")
        show = actions.add_parser("show")
        show.add_argument("tag")
        show.add_argument("--json", action="store_true", help="print the whole manifest")
        delete = actions.add_parser("delete")
        delete.add_argument("tag")
        if kind == "bentos":
            export = actions.add_parser("export", help="write NAME[:VERSION] to one file (a .tar.gz) to carry it")
            export.add_argument("tag")
            export.add_argument("file")
            imported = actions.add_parser("import", help="add a bento from a file `bentos export` wrote")
            imported.add_argument("file")
            add_signature_argument(imported, "import")
            add_trust_argument(imported)
        group.set_defaults(run=lambda args, kind=kind: _store_command(kind, args))
    add_registry_commands(commands)
    add_export_command(commands)
    add_deploy_command(commands)
    add_oci_command(commands)
    add_signature_commands(commands)
    return parser


def run(args: argparse.Namespace) -> int:
    """Run a parsed command; our errors become one stderr line and exit status 2."""
    try:
        return args.run(args)
    except (BentoJupyterError, ValueError) as exc:
        print(f"bento-jupyter: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))
