"""The registry's REST API under ``/api/v1``: one table of operations, each with the scope it needs; a handler's
docstring is its summary in the OpenAPI document."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bento_jupyter.errors import InvalidReference
from bento_jupyter.refs import check_label, check_name, parse_version, version_or_latest
from bento_jupyter.registry.app.openapi import openapi_document
from bento_jupyter.registry.app.operations import Context, Operation
from bento_jupyter.registry.auth import OPEN_PRINCIPAL, Principal, Scope
from bento_jupyter.registry.errors import InvalidRequest, PayloadTooLarge, RegistryError, Unauthorized
from bento_jupyter.registry.records import (
    AliasList,
    AliasMove,
    AliasPolicy,
    AliasTarget,
    ApiChange,
    BentoInfo,
    BentoList,
    Comparison,
    CreatedToken,
    CreatedWebhook,
    CreateToken,
    CreateWebhook,
    Deletion,
    Delivery,
    DeliveryList,
    Health,
    History,
    MissingBlobs,
    MissingBlobsQuery,
    MoveAlias,
    Published,
    PublishManifest,
    Record,
    RecordedVerification,
    RollbackAlias,
    SetPolicy,
    TokenList,
    UploadedBlob,
    VerificationList,
    VerificationReport,
    VersionDetail,
    VersionList,
    VersionSummary,
    WebhookList,
    parse_body,
)
from bento_jupyter.registry.storage.base import CHUNK
from bento_jupyter.registry.validation import (
    MAX_JSON_DEPTH,
    check_json_depth,
    check_manifest,
    check_record_id,
    check_sha256,
)

PREFIX = "/api/v1"
MAX_SEARCH_LENGTH = 1024
logger = logging.getLogger("bento_jupyter.registry")


# -- helpers --------------------------------------------------------------------------------------


def _declared_length(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length", "")
    if declared and (not declared.isascii() or not declared.isdigit() or int(declared) > limit):
        raise PayloadTooLarge(f"the body is over the {limit}-byte limit", limit=limit)


async def _json_body(request: Request, limit: int) -> Any:
    _declared_length(request, limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"the body is over the {limit}-byte limit", limit=limit)
    try:
        value = check_json_depth(json.loads(body))
        if _SURROGATE.search(body):  # a lone one has no UTF-8 form to store; pairs are fine
            json.dumps(value, ensure_ascii=False).encode()
        return value
    except RecursionError:
        raise InvalidRequest(f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except UnicodeEncodeError:
        raise InvalidRequest("the JSON body holds a lone surrogate (an unpaired \\udXXX escape): not text") from None
    except ValueError:
        raise InvalidRequest("the body is not valid JSON") from None


# A surrogate, escaped (\ud800) or as UTF-8 bytes (json.loads decodes bytes with surrogatepass).
_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def _name(request: Request) -> str:
    return check_name(request.path_params["name"])


async def _call(func: Callable[..., Any], *args: Any) -> Any:
    return await run_in_threadpool(func, *args)


def _answer(record: Record, status_code: int = 200) -> JSONResponse:
    return JSONResponse(record.to_json(), status_code=status_code)


# -- handlers -------------------------------------------------------------------------------------


async def health(ctx: Context, request: Request, who: Principal) -> Response:
    """Liveness, and whether the registry runs open"""
    return _answer(Health(status="ok", auth="open" if ctx.open else "token"))


async def openapi(ctx: Context, request: Request, who: Principal) -> Response:
    """This OpenAPI document"""
    return JSONResponse(openapi_document(OPERATIONS))


async def list_bentos(ctx: Context, request: Request, who: Principal) -> Response:
    """Every bento name with its latest version"""
    return _answer(BentoList(bentos=await _call(ctx.store.metadata.list_bentos)))


async def get_bento(ctx: Context, request: Request, who: Principal) -> Response:
    """A bento: its latest version and aliases"""
    return _answer(await _call(ctx.store.metadata.get_bento, _name(request)))


async def list_versions(ctx: Context, request: Request, who: Principal) -> Response:
    """The versions of a bento"""
    return _answer(VersionList(versions=await _call(ctx.store.metadata.list_versions, _name(request))))


async def publish(ctx: Context, request: Request, who: Principal) -> Response:
    """Publish a manifest whose blobs are stored"""
    name = _name(request)
    document = await _json_body(request, ctx.limits.max_json_bytes)
    # The body is the manifest; a signed bento's bento.sig rides along as "signature" (not part of the digest).
    signature = document.pop("signature", None) if isinstance(document, dict) else None
    ctx.signatures.check_signed(name, signature)
    manifest = await _call(check_manifest, document, name, PublishManifest)
    record = await _call(ctx.signatures.check, name, manifest, signature)
    summary, created = await _call(ctx.store.publish, name, manifest, who.actor, record)
    return _answer(Published(**dict(summary), created=created), status_code=201 if created else 200)


async def get_version(ctx: Context, request: Request, who: Principal) -> Response:
    """One version (N or latest) with its manifest"""
    number = version_or_latest(request.path_params["ref"])
    return _answer(await _call(ctx.store.metadata.get_version, _name(request), number))


async def delete_version(ctx: Context, request: Request, who: Principal) -> Response:
    """Delete a version no alias points at"""
    number = version_or_latest(request.path_params["ref"])
    if number is None:
        raise InvalidRequest("delete a numbered version, not 'latest'")
    return _answer(await _call(ctx.store.metadata.delete_version, _name(request), number, who.actor))


async def list_aliases(ctx: Context, request: Request, who: Principal) -> Response:
    """A bento's aliases and the versions they point at"""
    return _answer(AliasList(aliases=await _call(ctx.store.metadata.list_aliases, _name(request))))


async def get_alias(ctx: Context, request: Request, who: Principal) -> Response:
    """The version an alias points at"""
    name, alias = _name(request), check_label(request.path_params["alias"])
    return _answer(AliasTarget(name=name, alias=alias, version=await _call(ctx.store.metadata.get_alias, name, alias)))


async def move_alias(ctx: Context, request: Request, who: Principal) -> Response:
    """Move an alias (compare-and-set on 'expected')"""
    name, alias = _name(request), check_label(request.path_params["alias"])
    move = parse_body(
        MoveAlias,
        await _json_body(request, ctx.limits.max_json_bytes),
        "send {'version': N, 'expected': M or null, 'reason'?: TEXT, 'force'?: BOOL} "
        "(compare-and-set on the current target)",
    )
    moved = await _call(
        lambda: ctx.store.promotions.move(
            name,
            alias,
            move.version,
            move.expected,
            who.actor,
            reason=move.reason or None,
            force=move.force,
            may_force=who.scope >= Scope.ADMIN,
        )
    )
    return _answer(moved)


async def rollback_alias(ctx: Context, request: Request, who: Principal) -> Response:
    """Move an alias back to its previous target (repeat to walk further back)"""
    name, alias = _name(request), check_label(request.path_params["alias"])
    usage = "send {'reason'?: TEXT, 'expected'?: N} (N: the version the alias points at now)"
    rollback = parse_body(RollbackAlias, await _json_body(request, ctx.limits.max_json_bytes), usage)
    moved = await _call(ctx.store.metadata.rollback, name, alias, who.actor, rollback.reason or None, rollback.expected)
    return _answer(moved)


async def get_policy(ctx: Context, request: Request, who: Principal) -> Response:
    """What an alias requires before it moves"""
    name, alias = _name(request), check_label(request.path_params["alias"])
    return _answer(await _call(ctx.store.promotions.policy, name, alias))


async def put_policy(ctx: Context, request: Request, who: Principal) -> Response:
    """Set what an alias requires"""
    name, alias = _name(request), check_label(request.path_params["alias"])
    usage = "send {'requires': ['compatible', 'verified']} ([] for no checks)"
    policy = parse_body(SetPolicy, await _json_body(request, ctx.limits.max_json_bytes), usage)
    return _answer(await _call(ctx.store.promotions.set_policy, name, alias, policy, who.actor))


async def list_verifications(ctx: Context, request: Request, who: Principal) -> Response:
    """A version's verifications"""
    number = version_or_latest(request.path_params["ref"])
    found = await _call(ctx.store.promotions.verifications, _name(request), number)
    return _answer(VerificationList(verifications=found))


async def post_verification(ctx: Context, request: Request, who: Principal) -> Response:
    """Record a verification (samples replayed by a client or CI)"""
    number = version_or_latest(request.path_params["ref"])
    if number is None:
        raise InvalidRequest("verify a numbered version, not 'latest'")
    usage = "send {'passed': true|false, ...report} (a verification of this version)"
    report = parse_body(VerificationReport, await _json_body(request, ctx.limits.max_json_bytes), usage)
    recorded = await _call(ctx.store.promotions.record_verification, _name(request), number, report, who.actor)
    return _answer(recorded, status_code=201)


async def compare_versions(ctx: Context, request: Request, who: Principal) -> Response:
    """API changes between two versions (?from=N&to=M)"""
    query = request.query_params
    if "from" not in query or "to" not in query:
        raise InvalidRequest("compare two numbered versions: ?from=N&to=M")
    old, new = parse_version(query["from"], "from"), parse_version(query["to"], "to")
    changes = await _call(ctx.store.promotions.compare, _name(request), old, new)
    return _answer(
        Comparison(
            from_version=old,
            to_version=new,
            compatible=not any(c.breaking for c in changes),
            changes=[ApiChange(api=c.api, message=c.message, breaking=c.breaking) for c in changes],
        )
    )


async def put_tag(ctx: Context, request: Request, who: Principal) -> Response:
    """Tag a version"""
    return await _set_tag(ctx, request, who, present=True)


async def delete_tag(ctx: Context, request: Request, who: Principal) -> Response:
    """Remove a tag from a version"""
    return await _set_tag(ctx, request, who, present=False)


async def _set_tag(ctx: Context, request: Request, who: Principal, present: bool) -> Response:
    name, tag = _name(request), check_label(request.path_params["tag"], "tag")
    number = version_or_latest(request.path_params["ref"])
    if number is None:
        raise InvalidRequest("tag a numbered version, not 'latest'")
    return _answer(await _call(ctx.store.metadata.set_tag, name, number, tag, present, who.actor))


async def get_history(ctx: Context, request: Request, who: Principal) -> Response:
    """Changes in order: publish, alias, rollback, tag, untag, delete, policy, verify (?alias=A: one alias's)"""
    alias = request.query_params.get("alias")
    return _answer(History(history=await _call(ctx.store.metadata.history, _name(request), alias)))


async def search(ctx: Context, request: Request, who: Principal) -> Response:
    """Versions by lineage: notebook, cell, commit, tag (none: every version, first 1,000)"""
    query = request.query_params
    filters = {key: query.get(key) for key in ("notebook", "cell", "commit", "tag", "name")}
    for key, value in filters.items():
        if value is not None and ("\x00" in value or len(value) > MAX_SEARCH_LENGTH):
            raise InvalidRequest(f"{key}: at most {MAX_SEARCH_LENGTH} characters, no NUL")
    if filters["name"] is not None:
        check_name(filters["name"])
    return _answer(VersionList(versions=await _call(lambda: ctx.store.metadata.search(**filters))))


async def missing_blobs(ctx: Context, request: Request, who: Principal) -> Response:
    """Which of these sha256 digests are not stored"""
    usage = "send {'digests': [sha256, ...]} (at most 100000)"
    query = parse_body(MissingBlobsQuery, await _json_body(request, ctx.limits.max_json_bytes), usage)
    return _answer(MissingBlobs(missing=await _call(ctx.store.missing, query.digests)))


def _blob_digest(request: Request) -> str:
    """The path's sha256; ``/blobs/missing`` is another operation's path, so a method it lacks is a 405."""
    if request.path_params["sha256"] == "missing":
        raise HTTPException(405, "POST /blobs/missing is the only method there", headers={"Allow": "POST"})
    return check_sha256(request.path_params["sha256"])


async def put_blob(ctx: Context, request: Request, who: Principal) -> Response:
    """Upload a blob (verified against its sha256)

    Stream the body into the blob store, hashing on the way; it lands only if the digest matches."""
    sha256 = _blob_digest(request)
    limit = ctx.limits.max_blob_bytes
    _declared_length(request, limit)
    upload = await _call(ctx.store.blobs.begin, sha256)
    received, pending = 0, bytearray()
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise PayloadTooLarge(f"the blob is over the {limit}-byte limit", limit=limit)
            pending += chunk
            if len(pending) >= CHUNK:
                await _call(upload.write, bytes(pending))
                pending.clear()
        if pending:
            await _call(upload.write, bytes(pending))
        await _call(upload.commit)
    except ClientDisconnect:
        await _call(upload.abort)
        return Response(status_code=400)
    except BaseException:
        await _call(upload.abort)
        raise
    return _answer(UploadedBlob(sha256=sha256, size=received), status_code=201)


async def get_blob(ctx: Context, request: Request, who: Principal) -> Response:
    """Download a blob"""
    sha256 = _blob_digest(request)
    size = await _call(ctx.store.blobs.size, sha256)
    chunks = await _call(ctx.store.blobs.open, sha256)
    headers = {"ETag": f'"{sha256}"', "Cache-Control": "public, max-age=31536000, immutable"}
    if size is not None:
        headers["Content-Length"] = str(size)
    return StreamingResponse(chunks, media_type="application/octet-stream", headers=headers)


async def list_webhooks(ctx: Context, request: Request, who: Principal) -> Response:
    """List webhooks (never their secrets)"""
    return _answer(WebhookList(webhooks=await _call(ctx.store.webhooks.list)))


async def create_webhook(ctx: Context, request: Request, who: Principal) -> Response:
    """Add a webhook; its secret is shown once"""
    usage = (
        "send {'url': 'http(s)://HOST[:PORT]/PATH', 'events': ['alias', ...] or '*', 'secret'?: 16 to 128 characters}"
    )
    wanted = parse_body(CreateWebhook, await _json_body(request, ctx.limits.max_json_bytes), usage)
    hook = await _call(ctx.store.webhooks.create, wanted, who.actor)
    return _answer(hook, status_code=201)


async def delete_webhook(ctx: Context, request: Request, who: Principal) -> Response:
    """Remove a webhook"""
    await _call(ctx.store.webhooks.delete, check_record_id(request.path_params["hook_id"], "webhook"))
    return Response(status_code=204)


async def list_deliveries(ctx: Context, request: Request, who: Principal) -> Response:
    """A webhook's delivery log"""
    hook = check_record_id(request.path_params["hook_id"], "webhook")
    return _answer(DeliveryList(deliveries=await _call(ctx.store.webhooks.deliveries, hook)))


async def redeliver(ctx: Context, request: Request, who: Principal) -> Response:
    """Send a delivery again"""
    delivery = request.path_params["delivery_id"]
    if not delivery.isascii() or not delivery.isdigit() or len(delivery) > 18:
        raise InvalidRequest(f"invalid delivery id {delivery!r}: a number")
    found = await _call(
        ctx.store.webhooks.redeliver, check_record_id(request.path_params["hook_id"], "webhook"), int(delivery)
    )
    return _answer(found, status_code=202)


async def create_token(ctx: Context, request: Request, who: Principal) -> Response:
    """Create a token; its secret is shown once"""
    usage = "send {'scope': 'read'|'write'|'admin', 'name': NAME}"
    wanted = parse_body(CreateToken, await _json_body(request, ctx.limits.max_json_bytes), usage)
    secret, record = await _call(ctx.tokens.create, Scope.parse(wanted.scope), wanted.name)
    return _answer(CreatedToken(**dict(record), token=secret), status_code=201)


async def list_tokens(ctx: Context, request: Request, who: Principal) -> Response:
    """List tokens (never their secrets)"""
    return _answer(TokenList(tokens=await _call(ctx.tokens.list)))


async def revoke_token(ctx: Context, request: Request, who: Principal) -> Response:
    """Revoke a token"""
    await _call(ctx.tokens.revoke, check_record_id(request.path_params["token_id"], "token"))
    return Response(status_code=204)


_B = PREFIX + "/bentos/{name}"
OPERATIONS: list[Operation] = [
    Operation("GET", PREFIX + "/health", None, health, result=Health),
    Operation("GET", PREFIX + "/openapi.json", None, openapi),
    Operation("GET", PREFIX + "/bentos", Scope.READ, list_bentos, result=BentoList),
    Operation("GET", _B, Scope.READ, get_bento, result=BentoInfo),
    Operation("GET", _B + "/versions", Scope.READ, list_versions, result=VersionList),
    Operation("POST", _B + "/versions", Scope.WRITE, publish, request=PublishManifest, result=Published),
    Operation("GET", _B + "/versions/{ref}", Scope.READ, get_version, result=VersionDetail),
    Operation("DELETE", _B + "/versions/{ref}", Scope.WRITE, delete_version, result=Deletion),
    Operation("PUT", _B + "/versions/{ref}/tags/{tag}", Scope.WRITE, put_tag, result=VersionSummary),
    Operation("DELETE", _B + "/versions/{ref}/tags/{tag}", Scope.WRITE, delete_tag, result=VersionSummary),
    Operation("GET", _B + "/aliases", Scope.READ, list_aliases, result=AliasList),
    Operation("GET", _B + "/aliases/{alias}", Scope.READ, get_alias, result=AliasTarget),
    Operation("PUT", _B + "/aliases/{alias}", Scope.WRITE, move_alias, request=MoveAlias, result=AliasMove),
    Operation(
        "POST", _B + "/aliases/{alias}/rollback", Scope.WRITE, rollback_alias, request=RollbackAlias, result=AliasMove
    ),
    Operation("GET", _B + "/aliases/{alias}/policy", Scope.READ, get_policy, result=AliasPolicy),
    Operation("PUT", _B + "/aliases/{alias}/policy", Scope.ADMIN, put_policy, request=SetPolicy, result=AliasPolicy),
    Operation("GET", _B + "/versions/{ref}/verifications", Scope.READ, list_verifications, result=VerificationList),
    Operation(
        "POST",
        _B + "/versions/{ref}/verifications",
        Scope.WRITE,
        post_verification,
        request=VerificationReport,
        result=RecordedVerification,
    ),
    Operation("GET", _B + "/compare", Scope.READ, compare_versions, result=Comparison),
    Operation("GET", _B + "/history", Scope.READ, get_history, result=History),
    Operation("GET", PREFIX + "/search", Scope.READ, search, result=VersionList),
    Operation(
        "POST", PREFIX + "/blobs/missing", Scope.READ, missing_blobs, request=MissingBlobsQuery, result=MissingBlobs
    ),
    Operation("PUT", PREFIX + "/blobs/{sha256}", Scope.WRITE, put_blob, binary=True, result=UploadedBlob),
    Operation("GET", PREFIX + "/blobs/{sha256}", Scope.READ, get_blob),
    Operation("GET", PREFIX + "/webhooks", Scope.ADMIN, list_webhooks, result=WebhookList),
    Operation("POST", PREFIX + "/webhooks", Scope.ADMIN, create_webhook, request=CreateWebhook, result=CreatedWebhook),
    Operation("DELETE", PREFIX + "/webhooks/{hook_id}", Scope.ADMIN, delete_webhook),
    Operation("GET", PREFIX + "/webhooks/{hook_id}/deliveries", Scope.ADMIN, list_deliveries, result=DeliveryList),
    Operation(
        "POST",
        PREFIX + "/webhooks/{hook_id}/deliveries/{delivery_id}/redeliver",
        Scope.ADMIN,
        redeliver,
        result=Delivery,
    ),
    Operation("GET", PREFIX + "/tokens", Scope.ADMIN, list_tokens, result=TokenList),
    Operation("POST", PREFIX + "/tokens", Scope.ADMIN, create_token, request=CreateToken, result=CreatedToken),
    Operation("DELETE", PREFIX + "/tokens/{token_id}", Scope.ADMIN, revoke_token),
]


# -- the application ------------------------------------------------------------------------------


def _error_response(exc: RegistryError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Bearer realm="bento-jupyter registry"'} if isinstance(exc, Unauthorized) else None
    return JSONResponse(exc.to_json(), status_code=exc.status, headers=headers)


def _endpoint(ctx: Context, operation: Operation) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            who = OPEN_PRINCIPAL
            if operation.scope is not None and not ctx.open:
                who = await _call(ctx.tokens.authenticate, request.headers.get("authorization"))
            if operation.scope is not None:
                who.require(operation.scope)
            return await operation.handler(ctx, request, who)
        except RegistryError as exc:
            return _error_response(exc)
        except InvalidReference as exc:  # a malformed name, alias, tag or version anywhere below: a 400
            return _error_response(InvalidRequest(str(exc)))

    return endpoint


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    return JSONResponse(
        {"error": exc.detail, "code": codes.get(exc.status_code, "http_error")},
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    logger.exception("registry: %s %s failed", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"error": "internal error: see the registry's log", "code": "internal"}, status_code=500)


def _by_path(operations: list[Operation]) -> dict[str, dict[str, Operation]]:
    paths: dict[str, dict[str, Operation]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method] = op
    return paths


def _dispatch(ctx: Context, ops: dict[str, Operation]) -> Callable[[Request], Awaitable[Response]]:
    """One route per path, so a wrong method gets 405 with an ``Allow`` header naming every method it has."""
    endpoints = {method: _endpoint(ctx, op) for method, op in ops.items()}

    async def endpoint(request: Request) -> Response:
        return await endpoints["GET" if request.method == "HEAD" else request.method](request)

    return endpoint


def create_app(ctx: Context) -> Starlette:
    """The ASGI app serving ``ctx``'s registry."""
    routes = [Route(path, _dispatch(ctx, ops), methods=list(ops)) for path, ops in _by_path(OPERATIONS).items()]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error, Exception: _internal_error})
    app.state.context = ctx
    return app
