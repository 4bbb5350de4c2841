"""`./run test` installs Debian's chromium when it is missing (tests/browser.py
needs it). The real script runs in a copy of the repository's skeleton, with a
PATH of fakes: apt-get, sudo and id record their calls, .venv/bin/python
records how pytest would have been started."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOOLS = ["bash", "sh", "env", "dirname", "sha1sum", "cut", "cat", "rm", "touch", "chmod", "readlink", "true"]

FAKE_APT_GET = """#!/bin/sh
echo "apt-get $* frontend=$DEBIAN_FRONTEND stdin=$(readlink /proc/self/fd/0)" >> "$FAKE_LOG"
[ -n "$FAKE_APT_FAIL" ] && exit 100
case "$*" in
  *install*chromium*) printf '#!/bin/sh\\nexit 0\\n' > "$FAKE_BIN/chromium"; chmod +x "$FAKE_BIN/chromium" ;;
esac
exit 0
"""
FAKE_SUDO = """#!/bin/sh
echo "sudo $*" >> "$FAKE_LOG"
[ "$1" = "-n" ] || exit 1
shift
exec "$@"
"""
FAKE_ID = """#!/bin/sh
[ "$1" = "-u" ] && echo "$FAKE_UID" && exit 0
exit 1
"""
FAKE_PYTHON = """#!/bin/sh
echo "python $*" >> "$FAKE_LOG"
case "$*" in
  *"$FAKE_FAIL_CHECK"*) [ -n "$FAKE_FAIL_CHECK" ] && exit 1 ;;
esac
exit 0
"""
CHECKS = ["python -m ruff check --quiet .", "python -m ruff format --check --quiet .", "python -m mypy"]


def _exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def run_test(
    tmp_path: Path,
    *,
    uid: int = 0,
    chromium: bool = False,
    sudo: bool = False,
    apt_fail: bool = False,
    fail_check: str = "",
) -> tuple[subprocess.CompletedProcess, list[str], Path]:
    root = tmp_path / "repo"
    (root / ".venv" / "bin").mkdir(parents=True)
    shutil.copy2(REPO / "run", root / "run")
    (root / "pyproject.toml").write_text("[project]\nname = 'fake'\n")
    digest = hashlib.sha1((root / "pyproject.toml").read_bytes()).hexdigest()[:12]
    (root / ".venv" / f".installed-{digest}").touch()  # no pip install
    _exe(root / ".venv" / "bin" / "python", FAKE_PYTHON)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, f"{tool} is needed by this test"
        (bin_dir / tool).symlink_to(found)
    _exe(bin_dir / "apt-get", FAKE_APT_GET)
    _exe(bin_dir / "id", FAKE_ID)
    if sudo:
        _exe(bin_dir / "sudo", FAKE_SUDO)
    if chromium:
        _exe(bin_dir / "chromium", "#!/bin/sh\nexit 0\n")
    log = tmp_path / "calls.log"
    log.write_text("")
    env = {"PATH": str(bin_dir), "FAKE_LOG": str(log), "FAKE_BIN": str(bin_dir), "FAKE_UID": str(uid)}
    if apt_fail:
        env["FAKE_APT_FAIL"] = "1"
    if fail_check:
        env["FAKE_FAIL_CHECK"] = fail_check
    proc = subprocess.run(
        [str(bin_dir / "bash"), str(root / "run"), "test", "-k", "some test"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc, log.read_text().splitlines(), bin_dir


def test_installs_chromium_as_root_without_stdin(tmp_path):
    proc, calls, bin_dir = run_test(tmp_path, uid=0)
    assert proc.returncode == 0, proc.stderr
    assert calls == [
        *CHECKS,
        "apt-get update -qq frontend=noninteractive stdin=/dev/null",
        "apt-get install -y -qq chromium frontend=noninteractive stdin=/dev/null",
        "python -m pytest -q -k some test",
    ]
    assert "installing Debian's chromium" in proc.stderr
    assert (bin_dir / "chromium").exists()


def test_nothing_to_install_when_chromium_is_there(tmp_path):
    proc, calls, _ = run_test(tmp_path, uid=1000, chromium=True)
    assert proc.returncode == 0, proc.stderr
    assert calls == [*CHECKS, "python -m pytest -q -k some test"]
    assert "chromium" not in proc.stderr


def test_uses_sudo_n_when_not_root(tmp_path):
    proc, calls, _ = run_test(tmp_path, uid=1000, sudo=True)
    assert proc.returncode == 0, proc.stderr
    assert calls[:3] == CHECKS and calls[3] == "sudo -n true"
    assert "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium" in calls
    assert calls[-1] == "python -m pytest -q -k some test"


def test_fails_clearly_without_root_or_sudo(tmp_path):
    proc, calls, _ = run_test(tmp_path, uid=1000)
    assert proc.returncode == 1
    assert "needs root" in proc.stderr and "apt-get install -y chromium" in proc.stderr
    assert calls == CHECKS  # neither apt-get nor pytest ran


def test_fails_when_apt_get_fails(tmp_path):
    proc, calls, _ = run_test(tmp_path, uid=0, apt_fail=True)
    assert proc.returncode == 1
    assert "could not install chromium" in proc.stderr
    assert not any(c.startswith("python -m pytest") for c in calls)


def test_checks_run_first_and_a_failure_stops_the_run(tmp_path):
    for failing in ("ruff check", "ruff format", "mypy"):
        root = tmp_path / failing.replace(" ", "-")
        root.mkdir()
        proc, calls, _ = run_test(root, uid=1000, chromium=True, fail_check=failing)
        assert proc.returncode != 0, failing
        assert calls == CHECKS[: [failing in c for c in CHECKS].index(True) + 1], (failing, calls)
        assert not any("pytest" in c for c in calls), failing
