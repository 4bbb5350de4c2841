"""Shared fixtures.

``cluster`` is a broker of a test's own with its worker processes (tests/harness.py).
``broker`` is one embedded Tansu broker for the whole session: starting one
is cheap (~0.1 s) but tests share it to stay fast, so each test uses its own
topic and group names. It is stopped at the end even if the session fails,
and cannot outlive a crashed pytest: it runs in its own process group, is
stopped by atexit, and on Linux is SIGTERMed by the kernel when pytest dies
(see ``streams.devtools.broker``).

``pg_cluster`` (session) is a throwaway PostgreSQL 15 cluster on a free
loopback port (tests/pgcluster.py); ``pg_url`` gives each test a fresh
database of it. ``browser_context`` / ``browser_page`` drive Debian's Chromium
with Playwright (tests/browser.py), and save a screenshot and the HTML of the
page when the test fails.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import warnings

import pytest


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """A running embedded broker on a free port: ``.url`` and ``.bootstrap``."""
    from streams.devtools.broker import EmbeddedBroker, free_port

    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    instance = EmbeddedBroker(f"kafka://127.0.0.1:{free_port()}", log_path=log_path)
    instance.start()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def cluster(tmp_path):
    """A broker of its own and the worker processes a test starts (tests/harness.py),
    all stopped afterwards: for tests that stop, restart or kill workers."""
    from tests.harness import Cluster

    c = Cluster(tmp_path).start()
    try:
        yield c
    finally:
        c.close()


# ----------------------------------------------------------------------------
# PostgreSQL (tests/pgcluster.py)
# ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory):
    """One throwaway PostgreSQL 15 cluster for the session (tests/pgcluster.py):
    ``.url`` (database ``smstally``), ``.new_database(name) -> url``, ``.port``.
    Fails (never skips) when the PostgreSQL server binaries are missing.
    Stopped at the end of the session even if tests fail (and at exit)."""
    from tests.pgcluster import PgCluster, PgClusterError

    try:
        import psycopg  # noqa: F401 - start() needs it; say so clearly
    except ImportError as exc:
        pytest.fail(f"psycopg (v3) is needed for the PostgreSQL tests: {exc}", pytrace=False)
    cluster = PgCluster(tmp_path_factory.mktemp("postgres"))
    try:
        cluster.start()
    except PgClusterError as exc:
        pytest.fail(f"could not start a PostgreSQL test cluster: {exc}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.stop()


_pg_db_counter = itertools.count(1)


@pytest.fixture
def pg_url(pg_cluster, request):
    """A fresh, empty database of the session's cluster for this test:
    ``postgresql://postgres@127.0.0.1:PORT/t_<n>_<test name>``. Dropped after
    the test (WITH (FORCE): connections left open are closed)."""
    stem = re.sub(r"[^a-z0-9_]+", "_", request.node.name.lower()).strip("_")
    name = f"t{next(_pg_db_counter)}_{stem}"[:63].rstrip("_")
    url = pg_cluster.new_database(name)
    yield url
    try:
        pg_cluster.drop_database(name)
    except Exception as exc:  # the cluster is thrown away anyway
        warnings.warn(f"could not drop test database {name}: {exc}", stacklevel=1)


# ----------------------------------------------------------------------------
# Browser (tests/browser.py): Playwright + Debian's Chromium
# ----------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item (item.rep_setup, .rep_call,
    .rep_teardown), so that fixtures can tell whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def browser_context():
    """A Playwright (sync) persistent BrowserContext on Debian's Chromium, in a
    fresh empty profile: no cookies or storage shared between tests. Default
    timeout 10 s. Every Chromium process is gone after the test."""
    from tests.browser import BrowserUnavailable, ChromiumSession

    session = ChromiumSession()
    try:
        session.start()
    except BrowserUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield session.context
    finally:
        session.close()


@pytest.fixture
def browser_page(browser_context, request, tmp_path):
    """A Page of ``browser_context``. When the test fails, a full-page
    screenshot and the page's HTML are saved in the test's tmp_path
    (browser-failure.png / .html) and their paths printed and added to the
    failure report."""
    from tests.browser import save_page_artifacts

    page = browser_context.pages[0] if browser_context.pages else browser_context.new_page()
    yield page
    failed = [
        rep
        for rep in (getattr(request.node, "rep_setup", None), getattr(request.node, "rep_call", None))
        if rep is not None and rep.failed
    ]
    if not failed:
        return
    written = save_page_artifacts(page, tmp_path)
    text = "\n".join(str(p) for p in written) or "(the page could not be captured)"
    failed[-1].sections.append(("browser artifacts", text))
    # Printed live (capture suspended), not only in the captured teardown output.
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print()
        for path in written:
            print(f"[browser_page] saved {path}", flush=True)
