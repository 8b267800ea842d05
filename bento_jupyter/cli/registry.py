"""The registry's command-line surface: ``registry serve|upgrade|gc|token|tag|search|alias-policy|compare|webhook``,
``login``, ``push``, ``pull``, ``alias``, ``rollback`` and ``history``. ``add_commands`` plugs them into
the ``bento-jupyter`` parser."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bento_jupyter.bento.trust import TrustPolicy, add_signature_argument, add_trust_argument, report_signer
from bento_jupyter.progress import byte_progress
from bento_jupyter.refs import Reference
from bento_jupyter.registry.client import remote as client
from bento_jupyter.registry.errors import InvalidRequest
from bento_jupyter.registry.records import HISTORY_CHANGES, HistoryEntry, VersionSummary
from bento_jupyter.sockets import port_number
from bento_jupyter.uvicorn_config import add_limit_arguments, limits_from

MIB = 1 << 20


def _remote(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="registry URL (default: the one saved by `bento-jupyter login`)")
    parser.add_argument("--token", help="bearer token (default: the saved one, or $BENTO_JUPYTER_REGISTRY_TOKEN)")


def _db(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help="SQLAlchemy URL (default: sqlite:///$BENTO_JUPYTER_HOME/registry/registry.db)")


# -- registry side ----------------------------------------------------------------------------------


def _serve(args: argparse.Namespace) -> int:
    from bento_jupyter.registry.app.serve import ServeOptions, serve

    serve(
        ServeOptions(
            host=args.host,
            port=args.port,
            db=args.db,
            storage=args.storage,
            s3_endpoint=args.s3_endpoint,
            open=args.open,
            max_json_bytes=int(args.max_manifest_mb * MIB),
            max_blob_bytes=int(args.max_blob_mb * MIB),
            log_level=args.log_level,
            limits=limits_from(args),
            upgrade=args.upgrade,
            webhook_attempts=args.webhook_attempts,
            webhook_backoff_s=args.webhook_backoff,
            require_signature=tuple(args.require_signature),
            trusted_keys=args.trusted_keys,
        )
    )
    return 0


def _upgrade(args: argparse.Namespace) -> int:
    from bento_jupyter.registry.app.serve import default_db_url
    from bento_jupyter.registry.db.migrations import upgrade
    from bento_jupyter.registry.db.tables import connect

    engine = connect(args.db or default_db_url())
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    where = engine.url.render_as_string(hide_password=True)
    if before == after:
        print(f"{where} is already at schema revision {after}")
    else:
        print(f"upgraded {where} from schema revision {before or '(empty)'} to {after}")
    return 0


def _gc(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from bento_jupyter.registry.app.serve import default_db_url, default_storage
    from bento_jupyter.registry.db.migrations import open_database
    from bento_jupyter.registry.gc import collect
    from bento_jupyter.registry.storage import open_blob_store

    if args.grace_hours < 0:
        raise InvalidRequest("--grace-hours: 0 or more")
    engine = open_database(args.db or default_db_url())
    try:
        blobs = open_blob_store(args.storage or default_storage(), args.s3_endpoint)
        report = collect(engine, blobs, timedelta(hours=args.grace_hours), delete=args.delete)
    finally:
        engine.dispose()
    for blob in report.unreferenced if args.verbose else []:
        print(f"  {blob.sha256}  {blob.size} bytes  written {blob.modified:%Y-%m-%d %H:%M}")
    print(report.summary() + ("  (dry run: --delete to delete)" if report.dry_run else ""))
    return 0


def _token_store(args: argparse.Namespace) -> Any:
    from bento_jupyter.registry.app.serve import default_db_url
    from bento_jupyter.registry.auth import TokenStore
    from bento_jupyter.registry.db.migrations import open_database

    return TokenStore(open_database(args.db or default_db_url()))


def _token(args: argparse.Namespace) -> int:
    from bento_jupyter.registry.auth import Scope

    tokens = _token_store(args)
    if args.token_action == "create":
        secret, record = tokens.create(Scope.parse(args.scope), args.name)
        print(
            f"created {record.scope} token {record.id} ({record.name}); it is shown only once:",
            file=sys.stderr,
        )
        print(secret)
    elif args.token_action == "list":
        for record in tokens.list():
            state = f"revoked {record.revoked_at}" if record.revoked_at else "active"
            print(f"{record.id}  {record.scope:5}  {record.name}  created {record.created_at}  {state}")
    else:
        tokens.revoke(args.id)
        print(f"revoked token {args.id}")
    tokens.engine.dispose()
    return 0


def _version_line(v: VersionSummary) -> str:
    extras = [f"@{a}" for a in v.aliases] + [f"#{t}" for t in v.tags]
    if v.code_executing_files:
        extras.append("executes-code-on-load")
    commit = (v.lineage.git_commit or "")[:12] or "-"
    return (
        f"{v.name}:{v.version}  {v.digest[:19]}  {v.created_at}  {v.created_by}  "
        f"notebook {v.lineage.notebook_path or '-'}  git {commit}  {' '.join(extras)}"
    ).rstrip()


def _tag(args: argparse.Namespace) -> int:
    ref = Reference.parse(args.ref)
    if ref.version is None:
        raise InvalidRequest("tag a numbered version: NAME:N")
    client.connect(args.url, args.token).tag(ref.name, ref.version, args.tag, present=not args.remove)
    print(f"{'untagged' if args.remove else 'tagged'} {ref.name}:{ref.version} {args.tag}")
    return 0


def _search(args: argparse.Namespace) -> int:
    filters = {"notebook": args.notebook, "cell": args.cell, "commit": args.commit, "tag": args.tag, "name": args.name}
    found = client.connect(args.url, args.token).search(**filters)
    for version in found:
        print(_version_line(version))
    if not found:
        print("no versions match")
    return 0


def _versions(args: argparse.Namespace) -> int:
    for version in client.connect(args.url, args.token).versions(args.name):
        print(_version_line(version))
    return 0


# -- client side ----------------------------------------------------------------------------------


def _login(args: argparse.Namespace) -> int:
    from bento_jupyter.registry.client.login import save_login

    registry = client.RegistryClient(args.url, args.token)
    registry.json("GET", "/bentos")  # the token must work before it is saved
    path = save_login(args.url, args.token)
    print(f"logged in to {registry.url} (saved in {path})")
    return 0


def _push(args: argparse.Namespace) -> int:
    result = client.push(args.tag, args.url, args.token, byte_progress("pushing"))
    state = "published" if result.created else "already published as"
    sent = f"{result.uploaded_blobs} blobs, {result.uploaded_bytes / MIB:.1f} MiB sent"
    print(f"{state} {result.tag} ({result.digest[:19]}; {sent})")
    return 0


def _pull(args: argparse.Namespace) -> int:
    trust = TrustPolicy.from_arguments(args)
    result = client.pull(args.ref, args.url, args.token, byte_progress("pulling"), trust=trust)
    report_signer(result.item.path, trust)
    where = "already in the local store as" if result.reused else "pulled into the local store as"
    print(f"{args.ref} (registry version {result.version}) {where} {result.item.tag} at {result.item.path}")
    return 0


def _alias(args: argparse.Namespace) -> int:
    expected: int | str | None = "current"
    if args.expect is not None:
        expected = None if args.expect == "none" else int(args.expect)
    moved = client.move_alias(
        args.name, args.alias, args.version, args.url, args.token, expected, args.reason, args.force
    )
    previous = moved.previous if moved.previous is not None else "nothing"
    print(f"{args.name}@{args.alias}: {previous} -> {moved.version}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    moved = client.connect(args.url, args.token).rollback(args.name, args.alias, args.reason)
    print(f"{args.name}@{args.alias}: {moved.previous} -> {moved.version} (rolled back)")
    return 0


def _alias_policy(args: argparse.Namespace) -> int:
    registry = client.connect(args.url, args.token)
    if args.require is None:
        policy = registry.policy(args.name, args.alias)
    else:
        policy = registry.set_policy(args.name, args.alias, args.require.split(","))
    default = " (the default)" if policy.default else ""
    print(f"{args.name}@{args.alias} requires: {', '.join(policy.requires) or 'nothing'}{default}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    report = client.connect(args.url, args.token).compare(args.name, args.old, args.new)
    verdict = "compatible" if report.compatible else "NOT compatible"
    print(f"{args.name}:{args.old} -> {args.name}:{args.new}: {verdict}")
    for change in report.changes:
        print(f"  {'-' if change.breaking else '+'} {change.api}: {change.message}")
    return 0


def _webhook(args: argparse.Namespace) -> int:
    registry = client.connect(args.url, args.token)
    if args.webhook_action == "add":
        body: dict[str, Any] = {"url": args.target, "events": args.events.split(",")}
        if args.secret:
            body["secret"] = args.secret
        hook = registry.json("POST", "/webhooks", json=body)
        print(f"added webhook {hook['id']} -> {hook['url']} ({', '.join(hook['events'])})")
        if not args.secret:
            print(f"secret (shown once): {hook['secret']}")
    elif args.webhook_action == "list":
        for hook in registry.json("GET", "/webhooks")["webhooks"]:
            print(f"{hook['id']}  {hook['url']}  {','.join(hook['events'])}  created {hook['created_at']}")
    elif args.webhook_action == "remove":
        registry.request("DELETE", f"/webhooks/{args.target}")
        print(f"removed webhook {args.target}")
    else:
        for d in registry.json("GET", f"/webhooks/{args.target}/deliveries")["deliveries"]:
            answer, error = d["response_status"] or "-", d["error"] or ""
            print(f"{d['id']}  {d['event']:8}  {d['status']:9}  attempts {d['attempts']}  HTTP {answer}  {error}")
    return 0


def _from_to(event: HistoryEntry) -> str:
    return f"{event.from_version if event.from_version is not None else '-'} -> {event.to_version}"


def _describe(event: HistoryEntry) -> str:
    action, label, details = event.action, event.label, event.details or {}
    what = {
        "publish": f"published version {event.to_version}",
        "alias": f"moved @{label}: {_from_to(event)}",
        "rollback": f"rolled back @{label}: {_from_to(event)}",
        "tag": f"tagged version {event.to_version} #{label}",
        "untag": f"untagged version {event.from_version} #{label}",
        "delete": f"deleted version {event.from_version}",
        "policy": f"set @{label} to require {', '.join(details.get('requires', [])) or 'nothing'}",
        "verify": f"verified version {event.to_version}: {'passed' if details.get('passed') else 'FAILED'}",
    }.get(action, action)
    if details.get("forced"):
        what += " (FORCED past: " + "; ".join(p.lstrip("- ") for p in details["overridden"]) + ")"
    if event.reason:
        what += f": {event.reason}"
    return what


def _history(args: argparse.Namespace) -> int:
    for event in client.connect(args.url, args.token).history(args.name, args.alias):
        print(f"{event.at}  {event.actor}  {_describe(event)}")
    return 0


def add_registry_commands(commands: Any) -> None:
    """``serve``, ``token``, ``tag``, ``search``, ``versions``: run and administer a registry."""
    from bento_jupyter.registry.app.serve import DEFAULT_HOST, DEFAULT_PORT

    serve = commands.add_parser("serve", help="run a registry (SQLite and local blobs by default)")
    serve.add_argument("--host", default=DEFAULT_HOST)
    serve.add_argument("--port", type=port_number, default=DEFAULT_PORT, help="0 picks a free port")
    _db(serve)
    serve.add_argument("--storage", help="file:///PATH or s3://BUCKET/PREFIX (default: $BENTO_JUPYTER_HOME/registry)")
    serve.add_argument("--s3-endpoint", help="S3-compatible endpoint URL (MinIO, Ceph, ...); AWS when omitted")
    serve.add_argument("--open", action="store_true", help="no tokens: anyone may read and write (loopback only)")
    serve.add_argument("--max-blob-mb", type=float, default=64 * 1024, help="largest blob accepted (413 above)")
    serve.add_argument("--max-manifest-mb", type=float, default=16, help="largest JSON body accepted (413 above)")
    serve.add_argument("--log-level", default="warning")
    add_limit_arguments(serve)
    serve.add_argument(
        "--require-signature",
        action="append",
        default=[],
        metavar="PATTERN",
        help="publish NAMEs matching this glob only when signed by a --trusted-keys key (repeatable)",
    )
    serve.add_argument("--trusted-keys", help="a PEM public key, or a directory of *.pub / *.pem keys")
    serve.add_argument("--upgrade", action="store_true", help="migrate an older database's schema before serving")
    serve.add_argument("--webhook-attempts", type=int, default=8, help="tries per webhook delivery")
    serve.add_argument(
        "--webhook-backoff", type=float, default=1.0, help="seconds before a delivery's 2nd try; doubles, max 60"
    )
    serve.set_defaults(run=_serve)

    gc = commands.add_parser("gc", help="delete blobs no version references (a dry run unless --delete)")
    _db(gc)
    gc.add_argument("--storage", help="the blob store `registry serve` uses (default: $BENTO_JUPYTER_HOME/registry)")
    gc.add_argument("--s3-endpoint", help="S3-compatible endpoint URL; AWS when omitted")
    gc.add_argument("--grace-hours", type=float, default=24, help="keep blobs written or named by a push this recently")
    gc.add_argument("--delete", action="store_true", help="delete them (default: only report)")
    gc.add_argument("-v", "--verbose", action="store_true", help="list each unreferenced blob")
    gc.set_defaults(run=_gc)

    upgrade = commands.add_parser("upgrade", help="migrate the registry database to this release's schema")
    _db(upgrade)
    upgrade.set_defaults(run=_upgrade)

    token = commands.add_parser("token", help="create, list or revoke API tokens (on the database directly)")
    actions = token.add_subparsers(dest="token_action", required=True)
    create = actions.add_parser("create", help="create a token and print it (once)")
    create.add_argument("--scope", required=True, choices=["read", "write", "admin"])
    create.add_argument("--name", default="cli", help="a label recorded in the history as who acted")
    _db(create)
    _db(actions.add_parser("list", help="list tokens (never their secrets)"))
    revoke = actions.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id")
    _db(revoke)
    token.set_defaults(run=_token)

    tag = commands.add_parser("tag", help="tag a registry version: NAME:N TAG")
    tag.add_argument("ref")
    tag.add_argument("tag")
    tag.add_argument("--remove", action="store_true")
    _remote(tag)
    tag.set_defaults(run=_tag)

    search = commands.add_parser("search", help="find versions by notebook, cell, git commit or tag")
    for option in ("notebook", "cell", "commit", "tag", "name"):
        search.add_argument(f"--{option}")
    _remote(search)
    search.set_defaults(run=_search)

    policy = commands.add_parser("alias-policy", help="show or set what NAME@ALIAS requires before it moves")
    policy.add_argument("name")
    policy.add_argument("alias")
    policy.add_argument(
        "--require", help="comma list of compatible, verified ('none': no checks; default policy: compatible)"
    )
    _remote(policy)
    policy.set_defaults(run=_alias_policy)

    webhook = commands.add_parser("webhook", help="send registry events as signed JSON POSTs to a URL")
    hooks = webhook.add_subparsers(dest="webhook_action", required=True)
    add = hooks.add_parser("add", help="add a webhook: URL [--events E1,E2] [--secret S]")
    add.add_argument("target", metavar="URL")
    add.add_argument("--events", default="*", help="comma list of publish, alias, rollback, tag, untag, delete, ...")
    add.add_argument("--secret", help="HMAC-SHA256 key, 16-128 characters (default: generated and shown once)")
    hooks.add_parser("list", help="list webhooks (never their secrets)")
    remove = hooks.add_parser("remove", help="remove a webhook by id")
    remove.add_argument("target", metavar="ID")
    deliveries = hooks.add_parser("deliveries", help="a webhook's delivery log, newest first")
    deliveries.add_argument("target", metavar="ID")
    for sub in (add, remove, deliveries, hooks.choices["list"]):
        _remote(sub)
    webhook.set_defaults(run=_webhook)

    compare = commands.add_parser("compare", help="the API changes between two versions of a bento")
    compare.add_argument("name")
    compare.add_argument("old", type=int)
    compare.add_argument("new", type=int)
    _remote(compare)
    compare.set_defaults(run=_compare)

    versions = commands.add_parser("versions", help="list a bento's versions in the registry")
    versions.add_argument("name")
    _remote(versions)
    versions.set_defaults(run=_versions)


def add_client_commands(commands: Any) -> None:
    """``login``, ``push``, ``pull``, ``alias``, ``history``: use a registry."""
    login = commands.add_parser("login", help="save a registry URL and token in $BENTO_JUPYTER_HOME/config.json")
    login.add_argument("url")
    login.add_argument("--token", help="a token from `bento-jupyter registry token create` (omit for --open)")
    login.set_defaults(run=_login)

    push = commands.add_parser("push", help="publish a local bento NAME[:VERSION] to the registry")
    push.add_argument("tag")
    _remote(push)
    push.set_defaults(run=_push)

    pull = commands.add_parser("pull", help="fetch NAME[:N|@ALIAS] from the registry into the local store")
    pull.add_argument("ref")
    add_trust_argument(pull)
    add_signature_argument(pull, "pull")
    _remote(pull)
    pull.set_defaults(run=_pull)

    alias = commands.add_parser("alias", help="point NAME@ALIAS at version N (compare-and-set)")
    alias.add_argument("name")
    alias.add_argument("alias")
    alias.add_argument("version", type=int)
    alias.add_argument("--expect", help="the version the alias must point at now ('none': must not exist)")
    alias.add_argument("--reason", help="why, recorded in the history")
    alias.add_argument("--force", action="store_true", help="move past the alias's policy (admin token; recorded)")
    _remote(alias)
    alias.set_defaults(run=_alias)

    rollback = commands.add_parser("rollback", help="move NAME@ALIAS back to its previous target (repeatable)")
    rollback.add_argument("name")
    rollback.add_argument("alias")
    rollback.add_argument("--reason", help="why, recorded in the history")
    _remote(rollback)
    rollback.set_defaults(run=_rollback)

    what = f"every change to a bento, in order: {', '.join(HISTORY_CHANGES.values())}"
    history = commands.add_parser("history", help=what, description=what[0].upper() + what[1:])
    history.add_argument("name")
    history.add_argument("--alias", help="only this alias's moves, rollbacks and policy changes")
    _remote(history)
    history.set_defaults(run=_history)


def add_commands(commands: Any) -> None:
    """Wire into ``bento-jupyter``: ``registry ...`` plus the top-level client commands."""
    registry = commands.add_parser("registry", help="run and administer a bento registry")
    add_registry_commands(registry.add_subparsers(dest="registry_command", required=True))
    add_client_commands(commands)
