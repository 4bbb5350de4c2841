"""``smstally api``: the projector and the HTTP server in one process, one event loop.

The database comes first (the schema is created, or found), then the HTTP server starts
answering at once from what the database holds, while the projector catches up in the
background; ``/health/ready`` says when it has. SIGTERM or Ctrl-C stop both cleanly; a
SIGKILL loses nothing, since the offsets are in the database with the rows.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .db import Database, DatabaseError
from .hub import Hub
from .metrics import ApiMetrics
from .projector import Projector, ProjectorStatus
from .queries import ReadModel
from .settings import ApiSettings, check_listen_address
from .web.privacy import install_log_scrubbing

log = logging.getLogger("smstally.api")


def open_database(s: ApiSettings, timeout: float = 60.0) -> Database:
    db = Database(s.read_db)
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.create_schema()
            return db
        except DatabaseError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. PostgreSQL still starting: one clear line, retry
            if time.monotonic() > deadline:
                raise DatabaseError(f"cannot open the read model at {db.target.display}: {exc}") from exc
            log.warning("waiting for the read model's database at %s: %s", db.target.display, exc)
            db.reset_thread()
            time.sleep(2.0)


def build(s: ApiSettings):
    """The app and its parts, for the service and for tests that drive it in-process."""
    from .web.app import Services, create_app

    db = open_database(s)
    status = ProjectorStatus()
    metrics = ApiMetrics()
    hub = Hub()
    sv = Services(settings=s, db=db, model=ReadModel(db), hub=hub, status=status, metrics=metrics)
    projector = Projector(s, db, hub, metrics, status)
    return create_app(sv), projector, sv


def run_api(s: ApiSettings) -> int:
    import uvicorn

    check_listen_address(s)
    install_log_scrubbing()
    app, projector, sv = build(s)

    async def main() -> None:
        config = uvicorn.Config(
            app,
            host=s.host,
            port=s.port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=3,
            lifespan="off",
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(projector.run(), name="projector")

        def crashed(t: asyncio.Task) -> None:
            if not t.cancelled() and t.exception() is not None:
                log.error("the projector stopped: %r; the API keeps serving what it has", t.exception())
                sv.status.last_error = f"projector stopped: {t.exception()!r}"[:300]
                sv.status.broker_ok = False

        task.add_done_callback(crashed)
        log.info(
            "smstally api on http://%s:%d (read model %s, %s)",
            s.host,
            s.port,
            sv.db.target.display,
            "token required" if s.token else "no token: loopback only, phone numbers masked",
        )
        try:
            await server.serve()
        finally:
            projector.stop()
            try:
                await asyncio.wait_for(task, 10)
            except (TimeoutError, Exception):  # noqa: BLE001 - leaving anyway
                task.cancel()
            sv.db.close()

    try:  # uvloop when installed: the same asyncio, a faster loop (and httptools, picked by uvicorn)
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
    return 0
