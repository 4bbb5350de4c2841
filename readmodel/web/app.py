"""The HTTP side of ``smstally api``: the JSON routes of contract §10, health, metrics.

FastAPI for the OpenAPI document it derives from the routes (the contract asks for one,
and the schemathesis test reads it) and for query validation; the dashboard's pages are
in ``pages``. Handlers are plain functions: FastAPI runs them in its thread pool, where
each thread has its own database connection, so a slow query never blocks the event loop
that the projector and the live feed share.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

import orjson
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from processors.phones import normalize

from ..db import Database
from ..hub import Hub
from ..metrics import ApiMetrics
from ..projector import ProjectorStatus
from ..queries import BadRequest, ReadModel
from ..settings import ApiSettings
from . import models
from .auth import authorized
from .csv_export import csv_chunks
from .privacy import mask_phone, mask_record

MAX_TEXT = 256


@dataclass
class Services:
    settings: ApiSettings
    db: Database
    model: ReadModel
    hub: Hub
    status: ProjectorStatus
    metrics: ApiMetrics


class JSON(JSONResponse):  # a JSONResponse, so that FastAPI documents the response_model
    media_type = "application/json"

    def render(self, content) -> bytes:
        return orjson.dumps(content)


def _only(*names: str):
    """Unknown query parameters are an error (contract §10), not something to ignore."""
    allowed = set(names)

    async def check(request: Request) -> None:  # async: no thread-pool hop for a set difference
        extra = sorted(set(request.query_params.keys()) - allowed)
        if extra:
            takes = ", ".join(sorted(allowed)) or "no query parameters"
            raise HTTPException(400, f"unknown query parameter(s): {', '.join(extra)}; this route takes {takes}")

    return Depends(check)


class RefuseNul:
    """A NUL in a path or query value is the caller's error (400): PostgreSQL cannot even compare it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and (
            "\x00" in scope.get("path", "")
            or b"%00" in scope.get("query_string", b"")
            or b"%00" in scope.get("raw_path", b"")
        ):
            body = b'{"detail":"a NUL character (%00) is not allowed in a path or query parameter"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


class ResponseCache:
    """Response bodies by URL, valid until the projector's next commit (its generation)."""

    def __init__(self, size: int = 2048):
        self.size = size
        self.entries: dict[str, tuple[int, bytes]] = {}

    def get(self, key: str, generation: int) -> bytes | None:
        hit = self.entries.get(key)
        return hit[1] if hit is not None and hit[0] == generation else None

    def put(self, key: str, generation: int, body: bytes) -> None:
        if len(self.entries) >= self.size:
            self.entries.clear()
        self.entries[key] = (generation, body)


def _where(error: dict) -> str:
    """What a validation error is about: ``phones.3``, or ``body`` for the body as a whole (its
    JSON decode error is located at the character offset, which tells a caller nothing)."""
    loc = tuple(error.get("loc", ()))
    if loc[:1] == ("body",) and (len(loc) == 1 or error.get("type") == "json_invalid"):
        return "body"
    return ".".join(str(x) for x in loc[1:]) or "request"


def _same(phone: str) -> str:
    return phone


_bearer = HTTPBearer(auto_error=False, description="SMSTALLY_API_TOKEN, when one is configured")


def create_app(sv: Services) -> FastAPI:
    s = sv.settings
    app = FastAPI(
        title="smstally read API",
        version="1",
        docs_url=None,
        redoc_url=None,
        description="Live SMS campaign reception statistics (contract §10). Timestamps are epoch "
        "milliseconds; lists are paged with limit and an opaque cursor.",
    )
    app.state.services = sv
    app.add_middleware(RefuseNul)

    async def require_token(request: Request, _=Depends(_bearer)) -> None:
        if not authorized(request, s.token):
            raise HTTPException(
                401,
                "a valid token is required: Authorization: Bearer <SMSTALLY_API_TOKEN>",
                headers={"WWW-Authenticate": "Bearer"},
            )

    cache = ResponseCache()

    async def cached(request: Request, answer, missing: str = "") -> Response:
        """The campaign routes, the ones every dashboard and poller hits: one query per commit."""
        key = request.url.path + "?" + request.url.query
        body = cache.get(key, sv.status.generation)
        if body is None:
            generation = sv.status.generation  # before the query: never newer than what it read
            body = await run_in_threadpool(answer)
            if body is None:
                raise HTTPException(404, missing)
            cache.put(key, generation, body)
        return Response(body, media_type="application/json")

    def out(rec: dict) -> dict:
        return mask_record(rec) if s.masked else rec

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{_where(e)}: {e.get('msg', 'invalid')}" for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(parts) or "invalid request"}, status_code=400)

    @app.exception_handler(BadRequest)
    async def bad_cursor(request: Request, exc: BadRequest) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        from .pages import error_page, wants_html

        if exc.status_code in (401, 404) and wants_html(request):
            return error_page(request, exc.status_code, str(exc.detail))
        return JSONResponse(
            {"detail": str(exc.detail)}, status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    # -- open routes ------------------------------------------------------------------------
    @app.get("/health/live", response_model=models.Health, tags=["health"])
    async def live() -> dict:
        return {"alive": True}

    @app.get("/health/ready", tags=["health"], responses={503: {"description": "not ready"}})
    async def ready() -> Response:
        st = sv.status
        sv.metrics.ready.set(1 if st.ready else 0)
        return JSON(st.body(), status_code=200 if st.ready else 503)

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        sv.metrics.ready.set(1 if sv.status.ready else 0)
        return Response(generate_latest(sv.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # -- the API ----------------------------------------------------------------------------
    auth = Depends(require_token)  # first in every route's dependencies: 401 before any 400
    text = dict(max_length=MAX_TEXT)

    @app.get(
        "/api/campaigns",
        response_model=models.CampaignPage,
        response_class=JSON,
        tags=["campaigns"],
        dependencies=[auth, _only("q", "kind", "launched_from", "launched_to", "sort", "limit", "cursor")],
        responses=models.ERRORS,
    )
    async def campaigns(
        request: Request,
        q: str | None = Query(None, **text),
        kind: models.Kind | None = None,
        launched_from: int | None = Query(None, ge=0, le=2**62, description="epoch ms"),
        launched_to: int | None = Query(None, ge=0, le=2**62, description="epoch ms"),
        sort: models.Sort = "-launched_at",
        limit: int = Query(100, ge=1, le=1000),
        cursor: str | None = Query(None, max_length=2048),
    ):
        def answer() -> bytes:
            page = sv.model.campaigns(
                q=q,
                kind=kind,
                launched_from=launched_from,
                launched_to=launched_to,
                sort=sort,
                limit=limit,
                cursor=cursor,
            )
            return orjson.dumps({"items": page.items, "next_cursor": page.next_cursor})

        return await cached(request, answer)

    def known_campaign(campaign_id: str) -> dict | None:
        c = sv.model.campaign(campaign_id)
        if c is None and not sv.db.query("SELECT 1 FROM messages WHERE campaign_id = ? LIMIT 1", (campaign_id,)):
            raise HTTPException(404, f"no campaign {campaign_id!r} in the read model")
        return c

    message_filters = ("status", "category", "not_sent_reason", "error_code")

    @app.get(
        "/api/campaigns/{campaign_id:path}/messages",
        response_model=models.MessagePage,
        response_class=JSON,
        tags=["messages"],
        dependencies=[auth, _only(*message_filters, "limit", "cursor")],
        responses={**models.ERRORS, **models.NOT_FOUND},
    )
    def messages(
        campaign_id: str = Path(..., **text),
        status: models.Status | None = None,
        category: models.Category | None = None,
        not_sent_reason: models.NotSentReason | None = None,
        error_code: str | None = Query(None, **text),
        limit: int = Query(100, ge=1, le=1000),
        cursor: str | None = Query(None, max_length=2048),
    ):
        known_campaign(campaign_id)
        page = sv.model.messages(
            campaign_id,
            status=status,
            category=category,
            not_sent_reason=not_sent_reason,
            error_code=error_code,
            limit=limit,
            cursor=cursor,
        )
        return JSON({"items": [out(m) for m in page.items], "next_cursor": page.next_cursor})

    @app.get(
        "/api/campaigns/{campaign_id:path}/messages.csv",
        tags=["messages"],
        response_class=StreamingResponse,
        dependencies=[auth, _only(*message_filters)],
        responses={
            **models.ERRORS,
            **models.NOT_FOUND,
            200: {
                "content": {"text/csv": {"schema": {"type": "string"}}},
                "description": "RFC 4180 CSV with a header row",
            },
        },
    )
    def messages_csv(
        campaign_id: str = Path(..., **text),
        status: models.Status | None = None,
        category: models.Category | None = None,
        not_sent_reason: models.NotSentReason | None = None,
        error_code: str | None = Query(None, **text),
    ):
        known_campaign(campaign_id)
        chunks = sv.model.iter_messages(
            campaign_id, status=status, category=category, not_sent_reason=not_sent_reason, error_code=error_code
        )
        name = re.sub(r"[^A-Za-z0-9._-]", "_", campaign_id)[:80] or "campaign"
        return StreamingResponse(
            csv_chunks(chunks, s.masked),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}-messages.csv"'},
        )

    @app.get(
        "/api/campaigns/{campaign_id:path}",
        response_model=models.CampaignStats,
        response_class=JSON,
        tags=["campaigns"],
        dependencies=[auth, _only()],
        responses={**models.ERRORS, **models.NOT_FOUND},
    )
    async def campaign(request: Request, campaign_id: str = Path(..., **text)):
        def answer() -> bytes | None:
            c = sv.model.campaign(campaign_id)
            return None if c is None else orjson.dumps(c)

        return await cached(request, answer, f"no campaign {campaign_id!r} in the read model")

    @app.get(
        "/api/messages/{message_id:path}",
        response_model=models.MessageWithHistory,
        response_class=JSON,
        tags=["messages"],
        dependencies=[auth, _only()],
        responses={**models.ERRORS, **models.NOT_FOUND},
    )
    def message(message_id: str = Path(..., **text)):
        m = sv.model.message(message_id)
        if m is None:
            raise HTTPException(404, f"no message {message_id!r} in the read model")
        m = out(m)
        m["history"] = [out(h) for h in m["history"]]
        return JSON(m)

    @app.get(
        "/api/removals",
        response_model=models.RemovalPage,
        response_class=JSON,
        tags=["removals"],
        dependencies=[auth, _only("reason", "phone", "limit", "cursor")],
        responses=models.ERRORS,
    )
    def removals(
        reason: models.RemovalReason | None = None,
        phone: str | None = Query(None, max_length=64),
        limit: int = Query(100, ge=1, le=1000),
        cursor: str | None = Query(None, max_length=2048),
    ):
        page = sv.model.removals(
            reason=reason,
            phone=normalize(phone, s.stream.default_region)[0] if phone else None,
            limit=limit,
            cursor=cursor,
        )
        return JSON({"items": [out(r) for r in page.items], "next_cursor": page.next_cursor})

    region = s.stream.default_region

    @app.get(
        "/api/suppressions/{phone:path}",
        response_model=models.Suppression,
        response_class=JSON,
        tags=["suppressions"],
        dependencies=[auth, _only()],
        responses={**models.ERRORS, **models.NO_ROUTE},
    )
    def suppression(phone: str = Path(..., max_length=64)):
        """The phone's latest Suppression; a phone never seen is not suppressed (no 404: "never
        suppressed" is an answer a sender needs, not an error)."""
        wanted = normalize(phone, region)[0]
        rec = sv.model.suppression(wanted) or {"phone": wanted, "suppressed": False, "reasons": []}
        return JSON(out(rec))

    @app.post(
        "/api/suppressions/check",
        response_model=models.SuppressionCheckAnswer,
        response_class=JSON,
        tags=["suppressions"],
        dependencies=[auth, _only()],
        responses=models.ERRORS,
    )
    def check_suppressions(body: models.SuppressionCheck):
        """The phones of a send list that are suppressed now, in the list's order.

        Each answer carries ``index``, the phone's position in the request (a phone listed
        twice answers twice): without a token every phone in a response is masked (contract
        §10), and a caller must still be able to drop the suppressed ones from its list.
        ``phone`` is the normalized (E.164) form that was looked up."""
        phones = [normalize(p, region)[0] for p in body.phones]
        found = sv.model.suppressed_among(phones)
        mask = mask_phone if s.masked else _same
        hits = [{"index": i, "phone": mask(p), "reasons": found[p]} for i, p in enumerate(phones) if p in found]
        return JSON({"suppressed": hits})

    def all_campaigns() -> list[dict]:
        items, cursor = [], None
        while True:
            page = sv.model.campaigns(limit=1000, cursor=cursor)
            items += page.items
            if not (cursor := page.next_cursor):
                return items

    @app.get(
        "/api/events",
        tags=["live"],
        response_class=StreamingResponse,
        dependencies=[auth, _only("campaign_id")],
        responses={
            **models.ERRORS,
            200: {
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
                "description": "event: campaign, data: CampaignStats JSON",
            },
        },
    )
    async def events(request: Request, campaign_id: str | None = Query(None, **text)):
        """The latest CampaignStats of every campaign (or of ``campaign_id``) at once, then every change."""
        listener = sv.hub.subscribe()
        if campaign_id is not None:
            first = await asyncio.to_thread(sv.model.campaign, campaign_id)
            snapshot = [first] if first else []
        else:
            snapshot = await asyncio.to_thread(all_campaigns)

        async def stream():
            sv.metrics.sse_clients.inc()
            try:
                yield b"retry: 1000\n\n"
                for rec in snapshot:
                    yield b"event: campaign\ndata: " + orjson.dumps(rec) + b"\n\n"
                last_beat = time.monotonic()
                while True:
                    changes = await listener.next(1.0)
                    if await request.is_disconnected():
                        return
                    for rec in changes:
                        if campaign_id is None or rec["campaign_id"] == campaign_id:
                            yield b"event: campaign\ndata: " + orjson.dumps(rec) + b"\n\n"
                    if time.monotonic() - last_beat > 15:
                        last_beat = time.monotonic()
                        yield b": keep-alive\n\n"
            finally:
                sv.hub.unsubscribe(listener)
                sv.metrics.sse_clients.dec()

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )

    from .pages import add_pages

    add_pages(app, sv)
    return app
