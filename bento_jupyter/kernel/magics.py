"""``%bento`` / ``%%bento``: the notebook surface. Parse, call the core, display."""

from __future__ import annotations

import argparse
import ast
import gc
import inspect
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.magic import Magics, line_cell_magic, magics_class
from traitlets import Bool, Float, Int, TraitError, Unicode, validate

from bento_jupyter.bento.listing import stored_items_table
from bento_jupyter.bento.local_store import Store
from bento_jupyter.bento.trust import TrustPolicy, add_trust_argument
from bento_jupyter.capture.cells import CellLog
from bento_jupyter.capture.lineage import kernel_id
from bento_jupyter.errors import BentoJupyterError
from bento_jupyter.export.capture_mode import CaptureMode
from bento_jupyter.kernel import panel
from bento_jupyter.kernel.actions import build_service, save_variable
from bento_jupyter.kernel.live_export import default_output, export_running_services, write_bundle
from bento_jupyter.progress import byte_progress
from bento_jupyter.server.replay import verification_line
from bento_jupyter.server.running import services
from bento_jupyter.server.samples import answer_examples
from bento_jupyter.service.definition import ServiceDefinition, choose_endpoints
from bento_jupyter.service.settings import ServiceSettings
from bento_jupyter.sockets import is_port, port_number


class _Parser(argparse.ArgumentParser):
    """argparse whose mistakes become one-line UsageErrors instead of SystemExit; help is ours (full_help)."""

    def __init__(self, **kwargs: Any) -> None:  # argparse builds sub-parsers with keywords only
        super().__init__(add_help=False, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"%bento: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise UsageError(message or self.format_usage())


def build_parser() -> _Parser:
    parser = _Parser(
        prog="%bento",
        description="Serve notebook functions over HTTP, build them into bentos and publish them.",
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="SUBCOMMAND")
    serve = commands.add_parser("serve", help="run the cell, then serve its @api functions over HTTP (cell magic)")
    serve.add_argument("name", help="the service's name (lowercase letters, digits, '.', '_', '-')")
    serve.add_argument(
        "--port", type=port_number, default=None, help="port to listen on (default: the first free from 3000)"
    )
    serve.add_argument("--host", default=None, help="interface to bind (default: 127.0.0.1)")
    listing = commands.add_parser("list", help="list running services, or stored bentos or models")
    listing.add_argument(
        "what",
        nargs="?",
        choices=["services", "bentos", "models"],
        default="services",
        help="what to list (default: services)",
    )
    build = commands.add_parser("build", help="freeze a served service into a bento in the local store")
    build.add_argument("name", help="a running service")
    build.add_argument("--requirements", help="a requirements file whose lines override inferred pins")
    build.add_argument(
        "--no-verify", action="store_true", help="store the bento without replaying its samples in a fresh process"
    )
    build.add_argument(
        "--python-packages", nargs="+", default=[], metavar="REQ", help="requirements to add or override"
    )
    push = commands.add_parser("push", help="publish a bento from the local store to the registry")
    push.add_argument("tag", help="NAME or NAME:N")
    push.add_argument("--oci", metavar="URI", help="push to an OCI registry instead: oci://HOST[:PORT]/REPO[:TAG]")
    pull = commands.add_parser("pull", help="fetch a bento version (NAME:N or NAME@alias) from the registry")
    pull.add_argument("ref", help="NAME:N or NAME@alias, or oci://HOST/REPO[:TAG|@sha256:...] (an OCI registry)")
    add_trust_argument(pull)
    for transfer in (push, pull):
        transfer.add_argument("--url", help="registry URL (default: from bento-jupyter login)")
        transfer.add_argument("--token", help="registry token (default: from bento-jupyter login)")
    save = commands.add_parser("save", help="save an in-memory model into the local model store")
    save.add_argument("variable", help="the notebook variable holding the model")
    save.add_argument("--name", help="the model's name in the store (default: the variable's)")
    stop = commands.add_parser("stop", help="stop a service, or all of them")
    stop.add_argument("name", nargs="?", help="a running service")
    stop.add_argument("--all", action="store_true", help="stop every service of this kernel")
    export = commands.add_parser("export", help="write running services as deployable bundles, DIR/NAME/")
    export.add_argument("names", nargs="*", help="services to export (default: all running)")
    export.add_argument("-o", "--output", help="directory to create (default: dist/NOTEBOOK)")
    export.add_argument("--force", action="store_true", help="replace a non-empty output directory")
    return parser


_HELP = {"-h", "--help", "help"}


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """Each subcommand's one-line help and parser, in definition order."""
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
    return {name: (helps[name], sub) for name, sub in action.choices.items()}


def subcommand_help(name: str, sub: argparse.ArgumentParser, summary: str) -> str:
    """One subcommand: its usage line, what it does, and each argument with its help."""
    usage = " ".join(sub.format_usage().removeprefix("usage: ").replace(" [-h]", "").split())
    formatter = sub._get_formatter()
    lines = [("%" if name == "serve" else "") + usage, f"    {summary}"]
    for action in sub._actions:
        if action.help and action.help is not argparse.SUPPRESS and not isinstance(action, argparse._HelpAction):
            lines.append(f"      {formatter._format_action_invocation(action):<28} {action.help}")
    return "\n".join(lines)


def full_help(parser: argparse.ArgumentParser) -> str:
    """Every subcommand with its options: what ``%bento``, ``%bento --help`` and ``%bento?`` show."""
    parts = [f"{parser.description}\n", "Subcommands (`%bento SUBCOMMAND --help` shows one):\n"]
    parts += [subcommand_help(name, sub, summary) for name, (summary, sub) in _subcommands(parser).items()]
    return "\n".join(parts)


def functions_defined_in(source: str, namespace: dict[str, Any]) -> list[Callable[..., Any]]:
    """Public top-level functions a cell defines, in source order, as they now stand in the namespace."""
    names = [
        node.name
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_")
    ]
    return [namespace[n] for n in names if inspect.isfunction(namespace.get(n))]


@magics_class
class BentoMagics(Magics):
    """Serve notebook functions as HTTP APIs: ``%%bento serve NAME``, ``%bento list``, ``%bento stop``."""

    default_host = Unicode("127.0.0.1", help="Interface services bind to.").tag(config=True)
    default_port = Int(None, allow_none=True, help="Port for services; None scans from 3000.").tag(config=True)
    max_body_mb = Float(32.0, help="Largest request body accepted, in MiB (413 above).").tag(config=True)
    request_timeout = Float(
        None, allow_none=True, help="Every request's deadline in seconds (504 past it); None: no server-wide cap."
    ).tag(config=True)
    show_panel = Bool(
        True, help="Display the live panel under a serving cell (False: the same summary as plain text)."
    ).tag(config=True)
    freeze_gc = Bool(
        True,
        help="gc.freeze() the kernel's heap when serving starts: full collections then skip the (large,"
        " long-lived) notebook state instead of pausing every request for it.",
    ).tag(config=True)

    shell: InteractiveShell  # IPython's Magics allows None; ours is always built on a shell

    @validate("default_port")
    def _valid_port(self, proposal: Any) -> int | None:
        """``%config`` refuses a port no socket can bind (it would fail only at the next serving cell)."""
        port = proposal.value
        if port is not None and not is_port(port):
            raise TraitError(
                f"BentoMagics.default_port must be a port number 0-65535 (None: scan from 3000), not {port}"
            )
        return port

    @validate("max_body_mb", "request_timeout")
    def _valid_service_setting(self, proposal: Any) -> float | None:
        """``%config`` refuses what a service could not be served with, in the words ServiceSettings uses."""
        try:
            ServiceSettings(**{proposal.trait.name: proposal.value})
        except BentoJupyterError as exc:
            raise TraitError(f"BentoMagics.{exc}") from None
        return proposal.value

    def __init__(self, shell: InteractiveShell, cell_log: CellLog) -> None:
        super().__init__(shell=shell)
        self.cell_log = cell_log
        self._parser = build_parser()

    @property
    def service_settings(self) -> ServiceSettings:
        """The per-service settings from this magics' traitlets (recorded in bentos built from the service)."""
        return ServiceSettings(max_body_mb=self.max_body_mb, request_timeout=self.request_timeout)

    @line_cell_magic
    def bento(self, line: str, cell: str | None = None) -> Any:
        words = shlex.split(line, comments=True)  # a trailing `# ...` is a comment
        if not words or words[0] in _HELP:
            print(full_help(self._parser))
            return None
        if _HELP.intersection(words) and words[0] in (subcommands := _subcommands(self._parser)):
            summary, sub = subcommands[words[0]]
            print(subcommand_help(words[0], sub, summary))
            return None
        args = self._parser.parse_args(words)
        if args.command == "serve":
            self._execute(cell)  # the user's own errors surface unchanged, with their traceback
        try:
            return getattr(self, f"_{args.command}")(args, cell)
        except (BentoJupyterError, ValueError, OSError) as exc:
            raise UsageError(str(exc)) from None

    bento.__doc__ = full_help(build_parser())  # what `%bento?` shows

    def _execute(self, cell: str | None) -> None:
        """Run a serving cell's body in the notebook namespace, registered for inspect/linecache."""
        if cell is None:
            raise UsageError("%bento serve is a cell magic: start the cell with %%bento serve NAME")
        source = self.shell.transform_cell(cell)
        filename = self.shell.compile.cache(source, self.shell.execution_count, raw_code=cell)
        exec(compile(source, filename, "exec"), self.shell.user_ns)

    def _serve(self, args: argparse.Namespace, cell: str | None) -> None:
        current = self.cell_log.current
        cell_id = current.cell_id if current else None
        source = self.shell.transform_cell(cell or "")
        choice = choose_endpoints(functions_defined_in(source, self.shell.user_ns))
        definition = ServiceDefinition.from_functions(args.name, choice.endpoints)
        capture = CaptureMode.from_environment()  # set by `bento-jupyter export` for its headless kernel
        service = services.serve(
            definition,
            cell_id=cell_id,
            host=args.host or self.default_host,
            port=None if capture else args.port if args.port is not None else self.default_port,
            settings=self.service_settings,
            kernel_id=kernel_id(),
        )
        # examples= are asked once now: their answers are the kernel's, kept as samples a build replays
        for problem in answer_examples(service.app.endpoints, service.url):
            print(f"warning: {problem}", file=sys.stderr)
        if capture is not None:  # capture mode: serve (later cells may call it) and write the bundle
            write_bundle(capture.directory, service, self.shell, self.cell_log, capture.lineage)
        if self.freeze_gc:
            gc.freeze()
        if self.show_panel:
            panel.show(service, choice.skipped)
        else:
            print(panel.summary_text(service, choice.skipped))  # the URL, endpoints and skipped helpers stay

    def _push(self, args: argparse.Namespace, cell: str | None) -> None:
        if args.oci:
            from bento_jupyter.oci.artifact import push as oci_push

            pushed = oci_push(args.tag, args.oci)
            print(
                f"pushed {args.tag} to {pushed.ref} ({pushed.uploaded_blobs} blobs sent, {pushed.skipped_blobs} there)"
            )
            return
        from bento_jupyter.registry.client.remote import push

        result = push(args.tag, args.url, args.token, byte_progress("pushing", always=True))
        state = "published" if result.created else "already published as"
        print(f"{state} {result.tag} ({result.uploaded_bytes} bytes sent)")

    def _pull(self, args: argparse.Namespace, cell: str | None) -> None:
        from bento_jupyter.registry.client.remote import pull

        trust = TrustPolicy(trust_code=args.trust_code)
        if args.ref.startswith("oci://"):
            from bento_jupyter.oci.artifact import pull as oci_pull

            pulled = oci_pull(args.ref, trust=trust)
            print(f"pulled {pulled.ref} as {pulled.item.tag}")
            return
        result = pull(args.ref, args.url, args.token, byte_progress("pulling", always=True), trust=trust)
        print(f"pulled {args.ref} (registry version {result.version}) as {result.item.tag}")

    def _list(self, args: argparse.Namespace, cell: str | None) -> None:
        if args.what != "services":
            print(stored_items_table(Store(args.what)))
            return
        running = services.list()
        if not running:
            print("no services running")
        for service in running:
            print(panel.summary_text(service))

    def _build(self, args: argparse.Namespace, cell: str | None) -> None:
        extra = list(args.python_packages)
        if args.requirements:
            with open(args.requirements) as handle:
                extra += [line for line in handle.read().splitlines() if line.strip() and not line.startswith("#")]
        item = build_service(self.shell, self.cell_log, args.name, extra, verify=not args.no_verify)
        verification = Store("bentos").manifest(item.tag).verification
        print(f"built bento {item.tag} at {item.path}")
        if verification:
            print(f"{verification_line(verification)} (in a fresh process)")

    def _save(self, args: argparse.Namespace, cell: str | None) -> None:
        item = save_variable(self.shell, self.cell_log, args.variable, args.name)
        print(f"saved model {item.tag} at {item.path}")

    def _export(self, args: argparse.Namespace, cell: str | None) -> None:
        out = Path(args.output) if args.output else default_output(self.shell)
        names = export_running_services(self.shell, self.cell_log, out, args.names, args.force)
        print(f"exported {', '.join(names)} to {out}")

    def _stop(self, args: argparse.Namespace, cell: str | None) -> None:
        if args.all:
            stopped = services.stop_all()
            print(f"stopped {', '.join(stopped)}" if stopped else "no services running")
            return
        if not args.name:
            raise UsageError("%bento stop: name a service or pass --all")
        if not services.stop(args.name):
            raise UsageError(f"%bento stop: no service named {args.name!r} is running")
        print(f"stopped {args.name}")


def register(shell: InteractiveShell) -> None:
    """Install the magics and the cell log on ``shell`` (idempotent)."""
    if getattr(shell, "_bento_magics", None) is not None:
        return
    cell_log = CellLog()

    def on_pre_run_cell(info: Any) -> None:
        cell_log.record(info, shell.execution_count)

    magics = BentoMagics(shell, cell_log)
    shell.register_magics(magics)
    shell.events.register("pre_run_cell", on_pre_run_cell)
    shell.events.register("post_run_cell", cell_log.finish)
    shell._bento_magics = magics  # type: ignore[attr-defined]  # our mark on IPython's shell
    shell._bento_pre_run_cell = on_pre_run_cell  # type: ignore[attr-defined]  # our mark on IPython's shell


def unregister(shell: InteractiveShell) -> None:
    services.stop_all()
    hook = getattr(shell, "_bento_pre_run_cell", None)
    if hook is not None:
        shell.events.unregister("pre_run_cell", hook)
    magics = getattr(shell, "_bento_magics", None)
    if magics is not None:
        shell.events.unregister("post_run_cell", magics.cell_log.finish)
    shell._bento_magics = None  # type: ignore[attr-defined]  # our mark on IPython's shell
    shell._bento_pre_run_cell = None  # type: ignore[attr-defined]  # our mark on IPython's shell
