"""``smstally``: worker, broker, simulate, report, api, export, demo."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
import time
from typing import TYPE_CHECKING

from .config import Settings, from_env

if TYPE_CHECKING:
    import faust

log = logging.getLogger("smstally")


def _settings(args: argparse.Namespace) -> Settings:
    """Flags mirror the environment: a flag given wins over its variable."""
    env = dict(os.environ)
    for flag, var in (
        ("broker", "SMSTALLY_BROKER"),
        ("data_dir", "SMSTALLY_DATA_DIR"),
        ("web_port", "SMSTALLY_WEB_PORT"),
        ("flavor", "SMSTALLY_BROKER_FLAVOR"),
        ("partitions", "SMSTALLY_PARTITIONS"),
        ("store", "SMSTALLY_STORE"),
    ):
        v = getattr(args, flag, None)
        if v is not None:
            env[var] = str(v)
    return from_env(env)


async def _resolve_flavor(s: Settings) -> Settings:
    if s.broker_flavor != "auto":
        return s
    from .compat.tansu import detect_flavor

    flavor = await detect_flavor(s.bootstrap)
    log.info("broker flavor detected: %s", flavor)
    return s.with_(broker_flavor=flavor)


async def _wait_broker(s: Settings) -> None:
    """Wait for the broker with one clear line now and then, instead of a crash loop."""
    from .broker_wait import wait_for_broker

    started = time.monotonic()
    timeout = 1.0  # the first line comes at once; then one every 5 s
    while True:
        try:
            await wait_for_broker(s.broker, timeout=timeout)
            return
        except Exception as exc:  # noqa: BLE001 - any failure means: not reachable yet
            log.warning("waiting for the broker at %s (%.0fs so far): %s", s.broker, time.monotonic() - started, exc)
            timeout = 5.0


_PRESTART_ANSWERS = {
    "/health/live": (200, b'{"alive":true}'),
    "/health/ready": (503, b'{"ready":false,"starting":"waiting for the broker"}'),
}


async def _prestart_health(s: Settings) -> asyncio.AbstractServer | None:
    """Answer health checks on the web port until Faust's web server takes it over.

    While the worker waits for the broker (and creates its topics) the Faust app, and so
    its web server, is not started yet. Without this a liveness probe would fail and the
    orchestrator would restart a worker that is only waiting: a crash loop by other means.
    ``/health/live`` is 200 (the process is alive and doing what it should),
    ``/health/ready`` and everything else 503.
    """

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5.0)
            while (await asyncio.wait_for(reader.readline(), 5.0)).strip():
                pass  # headers
            parts = request.split()
            path = parts[1].decode("latin-1").split("?", 1)[0] if len(parts) > 1 else "/"
            status, body = _PRESTART_ANSWERS.get(path, (503, b'{"starting":"waiting for the broker"}'))
            reason = b"OK" if status == 200 else b"Service Unavailable"
            writer.write(
                b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                b"Connection: close\r\n\r\n%s" % (status, reason, len(body), body)
            )
            await writer.drain()
        except Exception:  # noqa: BLE001 - a broken probe connection is the prober's problem
            pass
        finally:
            writer.close()

    try:
        return await asyncio.start_server(answer, s.web_host, s.web_port)
    except OSError as exc:  # port taken: Faust will fail on it later, with its own message
        log.warning("cannot answer health checks on port %d while starting: %s", s.web_port, exc)
        return None


def _plain_output(worker: faust.Worker) -> None:
    """No progress spinner unless both output streams are terminals.

    Faust's worker draws a spinner on its stdout while it starts (one character per log
    line) and, when done, writes the terminal codes that show the cursor again
    (``ESC[?25h``) whatever the stream is. Logs redirected to a file or a pipe then get
    control codes and backspaces; without the spinner Faust logs "Ready" instead.
    """
    if not (_isatty(worker.stdout) and _isatty(worker.stderr)):
        worker.spinner = None


def _isatty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except (OSError, ValueError):  # closed or detached
        return False


def cmd_worker(args: argparse.Namespace) -> int:
    import faust

    from .adapters.versions import UntestedLibraries, check_versions
    from .app import build
    from .topics import TopicLayoutError, TopicPlan, ensure_topics

    s = _settings(args)
    logging.basicConfig(level=s.log_level.upper(), format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    try:
        check_versions(os.environ)
    except UntestedLibraries as exc:
        log.error("refusing to start: %s", exc)
        return 2

    async def prepare() -> tuple[Settings, TopicPlan]:
        health = await _prestart_health(s)
        try:
            await _wait_broker(s)
            s2 = await _resolve_flavor(s)
            return s2, await ensure_topics(s2)
        finally:
            if health is not None:  # free the port for Faust's web server
                health.close()
                await health.wait_closed()

    try:
        s, plan = asyncio.run(prepare())
    except TopicLayoutError as exc:
        log.error("%s", exc)
        return 2
    asyncio.set_event_loop(asyncio.new_event_loop())
    app, _ = build(s, plan)
    log.info(
        "worker starting: broker %s (%s), store %s in %s, web port %d, partitions %s",
        s.broker,
        s.broker_flavor,
        s.store,
        s.data_dir,
        s.web_port,
        plan,
    )
    worker = faust.Worker(app, loglevel=s.log_level, quiet=True, override_logging=False)
    _plain_output(worker)
    worker.execute_from_commandline()
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    from .devtools.broker import run_broker_cli

    return run_broker_cli(_settings(args).broker)


def _topic_partitioner(value: str) -> str:
    from processors.partitioner import PARTITIONERS

    topic, _, name = value.partition("=")
    if not topic or name not in PARTITIONERS:
        raise argparse.ArgumentTypeError(f"expected TOPIC=NAME with NAME one of {', '.join(PARTITIONERS)}")
    return value


def cmd_simulate(args: argparse.Namespace) -> int:
    from simulator.scenario import generate

    from .devtools.simulate import run_simulation

    s = _settings(args)
    logging.basicConfig(level=logging.WARNING)
    scenario = generate(seed=args.seed, messages=args.messages, campaigns=args.campaigns)
    print(scenario.summary(), flush=True)
    partitioners = dict(p.split("=", 1) for p in args.partitioner)
    ok = asyncio.run(
        run_simulation(s, scenario, wait=not args.no_wait, timeout=args.timeout, partitioners=partitioners)
    )
    return 0 if ok else 1


def cmd_report(args: argparse.Namespace) -> int:
    from .devtools.simulate import read_stats
    from .ops.report import render

    s = _settings(args)
    logging.basicConfig(level=logging.WARNING)
    stats = asyncio.run(read_stats(s, idle_ms=args.wait_ms))
    wanted = [args.campaign] if args.campaign else sorted(stats)
    if not wanted:
        print("no CampaignStats on", s.topics.campaign_stats)
        return 1
    for cid in wanted:
        if cid not in stats:
            print(f"campaign {cid!r}: no CampaignStats on {s.topics.campaign_stats}", file=sys.stderr)
            return 1
        print(render(stats[cid]))
        print()
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    """The read side: its own package, none of the worker's runtime (contract §10)."""
    from readmodel.service import run_api
    from readmodel.settings import UnsafeListenAddress, api_from_env

    env = dict(os.environ)
    for flag, var in (
        ("broker", "SMSTALLY_BROKER"),
        ("flavor", "SMSTALLY_BROKER_FLAVOR"),
        ("host", "SMSTALLY_API_HOST"),
        ("port", "SMSTALLY_API_PORT"),
        ("read_db", "SMSTALLY_READ_DB"),
        ("data_dir", "SMSTALLY_DATA_DIR"),
    ):
        v = getattr(args, flag, None)
        if v is not None:
            env[var] = str(v)
    s = api_from_env(env)
    logging.basicConfig(level=s.stream.log_level.upper(), format="[%(asctime)s] %(levelname)s %(name)s: %(message)s")
    if s.stream.broker_flavor == "auto":
        s = dataclasses.replace(s, stream=asyncio.run(_resolve_flavor(s.stream)))
    try:
        return run_api(s)
    except UnsafeListenAddress as exc:
        log.error("%s", exc)
        return 2


def cmd_export(args: argparse.Namespace) -> int:
    from readmodel.export import cmd_export as run

    return run(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from .devtools.demo import run_demo

    return run_demo(
        messages=args.messages, seed=args.seed, campaigns=args.campaigns, timeout=args.timeout, keep=args.keep
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="smstally", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--broker", help="Kafka URL (SMSTALLY_BROKER), e.g. kafka://127.0.0.1:9092")
        sp.add_argument("--flavor", choices=["kafka", "tansu", "auto"], help="SMSTALLY_BROKER_FLAVOR")

    w = sub.add_parser("worker", help="run the stream processor")
    common(w)
    w.add_argument("--data-dir")
    w.add_argument("--web-port", type=int)
    w.add_argument("--partitions", type=int)
    w.add_argument("--store", choices=["rocksdb", "memory"])
    w.set_defaults(fn=cmd_worker)

    b = sub.add_parser("broker", help="start the embedded Tansu broker (memory storage) on SMSTALLY_BROKER")
    b.add_argument("--broker")
    b.set_defaults(fn=cmd_broker)

    sm = sub.add_parser("simulate", help="publish a messy simulated campaign day and print the expected totals")
    common(sm)
    sm.add_argument("--seed", type=int, default=1)
    sm.add_argument("--messages", type=int, default=5000)
    sm.add_argument("--campaigns", type=int, default=5)
    sm.add_argument(
        "--no-wait", action="store_true", help="publish STOP replies at once instead of after the sends are counted"
    )
    sm.add_argument("--timeout", type=float, default=300.0)
    sm.add_argument(
        "--partitioner",
        action="append",
        default=[],
        type=_topic_partitioner,
        metavar="TOPIC=NAME",
        help="publish TOPIC with another client's partitioner (crc32: librdkafka, fnv1a: Sarama), e.g. sms.dlr=crc32",
    )
    sm.set_defaults(fn=cmd_simulate)

    r = sub.add_parser("report", help="terminal report of a campaign, from sms.campaign-stats")
    common(r)
    r.add_argument("campaign", nargs="?", help="campaign id (all campaigns when omitted)")
    r.add_argument("--wait-ms", type=int, default=1500, help="stop reading after this long without records")
    r.set_defaults(fn=cmd_report)

    a = sub.add_parser("api", help="the read side: read model, HTTP API and live dashboard (SMSTALLY_API_*)")
    common(a)
    a.add_argument("--host", help="SMSTALLY_API_HOST (default 127.0.0.1)")
    a.add_argument("--port", type=int, help="SMSTALLY_API_PORT (default 8080)")
    a.add_argument("--read-db", help="SMSTALLY_READ_DB: sqlite:///PATH or postgresql://...")
    a.add_argument("--data-dir", help="SMSTALLY_DATA_DIR (the default SQLite file lives there)")
    a.set_defaults(fn=cmd_api)

    ex = sub.add_parser(
        "export", help="a campaign's contacts as CSV, through the API (SMSTALLY_API_URL, SMSTALLY_API_TOKEN)"
    )
    ex.add_argument("campaign", help="campaign id")
    ex.add_argument("--status", help="canonical status, e.g. HARD_BOUNCE")
    ex.add_argument("--category", help="e.g. permanent_error")
    ex.add_argument("--reason", help="not-sent reason, e.g. OPTED_OUT")
    ex.add_argument("--error-code", help="raw error code")
    ex.add_argument("-o", "--output", help="file to write (default: standard output)")
    ex.set_defaults(fn=cmd_export)

    d = sub.add_parser("demo", help="embedded broker + worker + simulated traffic + live report")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--messages", type=int, default=10000)
    d.add_argument("--campaigns", type=int, default=5)
    d.add_argument("--timeout", type=float, default=600.0)
    d.add_argument("--keep", action="store_true", help="keep the work directory (logs, state)")
    d.set_defaults(fn=cmd_demo)

    args = p.parse_args(argv)
    code: int = args.fn(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
