"""A worker whose output goes to a file writes plain log lines: no terminal control codes.

Faust's worker draws a progress spinner while it starts and, when done, writes the codes
that show the cursor again (``ESC[?25h``) whatever its output is; ``smstally worker``
turns the spinner off unless stdout and stderr are terminals (``streams.cli._plain_output``).
A real worker process, on the real embedded broker, started and stopped, output to a file.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_a_worker_logging_to_a_file_writes_no_escape_codes(cluster):
    w = cluster.worker()
    w.wait_ready(90)
    w.stop()
    log = w.log_path.read_bytes()
    assert b"worker starting" in log  # the log is this worker's
    assert b"\x1b" not in log, [line for line in log.splitlines() if b"\x1b" in line][:5]
    assert b"\x08" not in log  # nor the spinner's backspaces
    assert b"Ready" in log  # what Faust logs at the end of its start instead of the spinner
