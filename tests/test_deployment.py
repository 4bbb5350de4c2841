"""The deployment files against the contract (CONTRACT.md sections 1, 9 and 10).

No Docker engine is needed: docker-compose.yml is parsed with PyYAML, the
Dockerfile with a small instruction parser, and deploy/create-topics.sh is both
parsed and run against a fake kafka-topics.sh that records its calls.

The contract's topic table and environment variables are read from
../shared/CONTRACT.md (relative to the repository) when it is there, else from
the lists below, which a test keeps equal to the contract.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CONTRACT = REPO.parent / "shared" / "CONTRACT.md"
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
SCRIPT = REPO / "deploy" / "create-topics.sh"

# Contract section 1: default topic name -> "in" | "compact" | "delete".
FALLBACK_TOPICS = {
    "sms.campaigns": "in",
    "sms.message-sent": "in",
    "sms.dlr": "in",
    "sms.unsubscribes": "in",
    "sms.campaign-stats": "compact",
    "sms.message-status": "compact",
    "sms.address-book-removals": "delete",
    "sms.dead-letter": "delete",
    "sms.suppressions": "compact",  # section 11
}
CO_PARTITIONED = ("sms.message-sent", "sms.dlr")

# Contract section 9.
FALLBACK_ENV = {
    "SMSTALLY_BROKER",
    "SMSTALLY_DATA_DIR",
    "SMSTALLY_WEB_PORT",
    "SMSTALLY_SCHEMA_REGISTRY_URL",
    "SMSTALLY_DEFAULT_REGION",
    "SMSTALLY_PARTITIONS",
    "SMSTALLY_BROKER_FLAVOR",
}
OPTIONAL_ENV = {"SMSTALLY_SCHEMA_REGISTRY_URL"}

# Contract section 10 (`smstally api`).
FALLBACK_API_ENV = {
    "SMSTALLY_READ_DB",
    "SMSTALLY_DATA_DIR",
    "SMSTALLY_API_HOST",
    "SMSTALLY_API_PORT",
    "SMSTALLY_API_TOKEN",
}

# What the compose file must configure the worker with.
EXPECTED_WORKER_ENV = {
    "SMSTALLY_BROKER": "kafka://kafka:9092",
    "SMSTALLY_DATA_DIR": "/var/lib/smstally",
    "SMSTALLY_WEB_PORT": "6066",
    "SMSTALLY_DEFAULT_REGION": "FR",
    "SMSTALLY_PARTITIONS": "8",
    "SMSTALLY_BROKER_FLAVOR": "kafka",
}

# What the compose file must configure the api with (the token and the read
# database are checked apart: one is required, the other points at postgres).
EXPECTED_API_ENV = {
    "SMSTALLY_BROKER": "kafka://kafka:9092",
    "SMSTALLY_BROKER_FLAVOR": "kafka",
    "SMSTALLY_API_HOST": "0.0.0.0",
    "SMSTALLY_API_PORT": "8080",
    "SMSTALLY_DATA_DIR": "/var/lib/smstally",
}
POSTGRES_IMAGE = re.compile(r"^postgres:15(\.\d+)?(-[a-z0-9]+)?$")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

MIN_LONG_RETENTION_MS = 7 * 24 * 3600 * 1000


# ----------------------------------------------------------------------------
# The contract
# ----------------------------------------------------------------------------


def _contract_section(text: str, number: int) -> str:
    match = re.search(rf"^## {number}\.[^\n]*\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"CONTRACT.md has no section {number}"
    return match.group(1)


def parse_contract_topics(text: str) -> dict[str, str]:
    topics = {}
    for line in _contract_section(text, 1).splitlines():
        row = re.match(r"^\|\s*`([^`]+)`\s*\|\s*([^|]+?)\s*\|", line)
        if not row:
            continue
        name, direction = row.group(1), row.group(2).lower()
        if direction.startswith("in"):
            topics[name] = "in"
        elif direction.startswith("out"):
            topics[name] = "compact" if "compact" in direction else "delete"
        else:  # pragma: no cover - a new kind of row must be looked at
            raise AssertionError(f"unknown direction {direction!r} for {name}")
    assert topics, "no topic rows found in section 1 of CONTRACT.md"
    # Section 11 adds topics in its prose: "`sms.suppressions` (out, compacted, key: phone)".
    for name, attrs in re.findall(r"`(sms\.[a-z.-]+)` \(((?:in|out)[^)]*)\)", _contract_section(text, 11)):
        topics[name] = "in" if attrs.startswith("in") else ("compact" if "compacted" in attrs else "delete")
    return topics


def parse_contract_env(text: str) -> set[str]:
    names = set(re.findall(r"\bSMSTALLY_[A-Z_]*[A-Z]\b", _contract_section(text, 9)))
    assert names, "no SMSTALLY_* variables found in section 9 of CONTRACT.md"
    return names


def parse_contract_api_env(text: str) -> set[str]:
    names = set(re.findall(r"\bSMSTALLY_[A-Z_]*[A-Z]\b", _contract_section(text, 10)))
    assert names, "no SMSTALLY_* variables found in section 10 of CONTRACT.md"
    return names


@pytest.fixture(scope="module")
def contract_topics() -> dict[str, str]:
    if CONTRACT.is_file():
        return parse_contract_topics(CONTRACT.read_text(encoding="utf-8"))
    return dict(FALLBACK_TOPICS)


@pytest.fixture(scope="module")
def contract_env() -> set[str]:
    if CONTRACT.is_file():
        return parse_contract_env(CONTRACT.read_text(encoding="utf-8"))
    return set(FALLBACK_ENV)


@pytest.fixture(scope="module")
def contract_api_env() -> set[str]:
    if CONTRACT.is_file():
        return parse_contract_api_env(CONTRACT.read_text(encoding="utf-8"))
    return set(FALLBACK_API_ENV)


@pytest.mark.skipif(not CONTRACT.is_file(), reason="no ../shared/CONTRACT.md next to the repo")
def test_fallback_lists_match_the_contract():
    text = CONTRACT.read_text(encoding="utf-8")
    assert parse_contract_topics(text) == FALLBACK_TOPICS
    assert parse_contract_env(text) == FALLBACK_ENV
    assert parse_contract_api_env(text) == FALLBACK_API_ENV


# ----------------------------------------------------------------------------
# Helpers: compose interpolation, environments, ports
# ----------------------------------------------------------------------------

_INTERPOLATION = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<default>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def interpolate(value, environ: dict[str, str] | None = None):
    """Compose-style ${VAR:-default} interpolation, against `environ` (default:
    an empty environment, so that the file's own defaults are what is checked)."""
    if not isinstance(value, str):
        return value
    environ = environ or {}

    def repl(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("braced") or m.group("bare")
        op, default = m.group("op"), m.group("default")
        current = environ.get(name)
        if op == ":-":
            return current if current else default
        if op == "-":
            return default if current is None else current
        if op == ":?" and current or op == "?" and current is not None:
            return current
        if op in (":?", "?"):
            raise AssertionError(f"${{{name}}} is required by the compose file")
        return current or ""

    return _INTERPOLATION.sub(repl, value)


def required_variables(value) -> set[str]:
    """Names a value requires with ${NAME:?message} / ${NAME?message}."""
    if not isinstance(value, str):
        return set()
    return {m.group("braced") for m in _INTERPOLATION.finditer(value) if (m.group("op") or "").endswith("?")}


def service_env(service: dict, environ: dict[str, str] | None = None) -> dict[str, str | None]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        env = {}
        for item in raw:
            key, sep, value = str(item).partition("=")
            env[key] = value if sep else None
        raw = env
    env = {}
    for key, value in raw.items():
        if value is None:
            env[str(key)] = None  # passed through from the host: not set by the file
        elif isinstance(value, bool):
            env[str(key)] = str(value).lower()
        else:
            env[str(key)] = str(interpolate(str(value), environ))
    return env


def depends_conditions(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def argv(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def parse_ports(service: dict) -> list[dict]:
    """Each published port as {"target": int, "published": str | None}."""
    ports = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            ports.append(
                {
                    "target": int(entry["target"]),
                    "published": None if published in (None, "") else str(interpolate(str(published))),
                }
            )
            continue
        spec = str(interpolate(str(entry))).split("/")[0]
        parts = spec.rsplit(":", 2) if spec.count(":") >= 2 else spec.split(":")
        if len(parts) == 1:
            ports.append({"target": int(parts[0]), "published": None})
        else:
            target = parts[-1]
            assert "-" not in target, f"container port ranges are not expected: {entry}"
            ports.append({"target": int(target), "published": parts[-2] or None})
    return ports


def parse_listeners(value: str) -> dict[str, tuple[str, int]]:
    listeners = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        m = re.match(r"^([A-Za-z0-9_]+)://([^:]*):(\d+)$", item)
        assert m, f"unparseable listener {item!r}"
        listeners[m.group(1)] = (m.group(2), int(m.group(3)))
    return listeners


def parse_voters(value: str) -> list[tuple[int, str, int]]:
    voters = []
    for item in value.split(","):
        m = re.match(r"^\s*(\d+)@([^:]+):(\d+)\s*$", item)
        assert m, f"unparseable controller quorum voter {item!r}"
        voters.append((int(m.group(1)), m.group(2), int(m.group(3))))
    return voters


@pytest.fixture(scope="module")
def compose() -> dict:
    assert COMPOSE.is_file(), "docker-compose.yml is missing"
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _services(compose: dict) -> dict:
    services = compose.get("services")
    assert isinstance(services, dict) and services, "docker-compose.yml has no services"
    return services


KAFKA_IMAGE = re.compile(r"^apache/kafka:(3\.9\.\d+|4\.\d+\.\d+)$")


# ----------------------------------------------------------------------------
# Checks (plain functions, so that the mutation tests at the end can prove each
# one fails on a broken file)
# ----------------------------------------------------------------------------


def check_kafka(compose: dict) -> None:
    services = _services(compose)
    assert "kafka" in services, "no `kafka` service"
    kafka = services["kafka"]
    assert KAFKA_IMAGE.match(str(kafka.get("image", ""))), (
        f"kafka must use a pinned apache/kafka 3.9.x or 4.x image, got {kafka.get('image')!r}"
    )
    env = service_env(kafka)
    required = [
        "KAFKA_NODE_ID",
        "KAFKA_PROCESS_ROLES",
        "KAFKA_LISTENERS",
        "KAFKA_ADVERTISED_LISTENERS",
        "KAFKA_CONTROLLER_LISTENER_NAMES",
        "KAFKA_CONTROLLER_QUORUM_VOTERS",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
        "KAFKA_INTER_BROKER_LISTENER_NAME",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
    ]
    missing = [k for k in required if not env.get(k)]
    assert not missing, f"kafka lacks KRaft settings {missing}"

    roles = {r.strip() for r in env["KAFKA_PROCESS_ROLES"].split(",")}
    assert roles == {"broker", "controller"}, f"single combined node expected, roles={roles}"
    node_id = int(env["KAFKA_NODE_ID"])

    listeners = parse_listeners(env["KAFKA_LISTENERS"])
    advertised = parse_listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocol_map = dict(item.strip().split(":", 1) for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    controller_names = [n.strip() for n in env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")]
    for name in listeners:
        assert name in protocol_map, f"listener {name} missing from the security protocol map"
    for name in controller_names:
        assert name in listeners, f"controller listener {name} not in KAFKA_LISTENERS"
        assert name not in advertised, "the controller listener must not be advertised to clients"
    inter_broker = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
    assert inter_broker in listeners and inter_broker in advertised
    assert inter_broker not in controller_names

    voters = parse_voters(env["KAFKA_CONTROLLER_QUORUM_VOTERS"])
    assert voters, "empty controller quorum"
    assert node_id in [v[0] for v in voters], "this node must be a voter of the quorum"
    controller_ports = {listeners[n][1] for n in controller_names}
    for _, host, port in voters:
        assert port in controller_ports, f"voter port {port} is not a controller listener port"
        assert host in (kafka.get("hostname"), "kafka", "localhost"), f"voter host {host!r} unreachable"

    assert int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == 1
    assert int(env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"]) == 1
    if "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR" in env:
        assert int(env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"]) == 1

    health = kafka.get("healthcheck") or {}
    assert health.get("test") and not health.get("disable"), "kafka needs a healthcheck"
    assert argv(health["test"])[0] in ("CMD", "CMD-SHELL")


def _script_mount(service: dict) -> str:
    """The path in the container where deploy/create-topics.sh is mounted."""
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            source, target = volume.get("source", ""), volume.get("target", "")
        else:
            source, _, rest = str(volume).partition(":")
            target = rest.split(":")[0]
        if source.startswith(".") and (REPO / source).resolve() == SCRIPT.resolve():
            return target
    raise AssertionError("the topics service does not mount ./deploy/create-topics.sh")


def check_topics_service(compose: dict) -> None:
    services = _services(compose)
    assert "topics" in services, "no one-shot `topics` service"
    topics = services["topics"]
    assert topics.get("image") == services["kafka"].get("image"), "topics must use the kafka image"
    assert depends_conditions(topics).get("kafka") == "service_healthy"
    assert str(topics.get("restart", "no")) in ("no", "False", "false"), "a one-shot job must not restart"
    target = _script_mount(topics)
    run = argv(topics.get("entrypoint")) + argv(topics.get("command"))
    assert target in run, f"the topics service does not run {target}: {run}"


def _script_assignments(text: str) -> dict[str, str]:
    return dict(re.findall(r'^([A-Z_][A-Z0-9_]*)="([^"\n]*)"\s*$', text, re.M))


def _resolve_script_value(token: str, assignments: dict[str, str], environ: dict[str, str]) -> str:
    """Resolve $VAR / ${VAR} in a create_topic argument with the script's own
    assignments (VAR="${ENV:-default}") evaluated against `environ`."""

    def var(name: str) -> str:
        if name in assignments:
            return str(interpolate(assignments[name], environ))
        return environ.get(name, "")

    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: var(m.group(1)), token)


def parse_create_calls(text: str, environ: dict[str, str] | None = None) -> dict[str, dict]:
    """Every `create_topic NAME PARTITIONS [--config k=v ...]` call of the script:
    name -> {"partitions_token", "partitions", "configs"}; asserts none is repeated."""
    environ = environ or {}
    assignments = _script_assignments(text)
    joined = re.sub(r"\\\n", " ", text)
    calls: dict[str, dict] = {}
    for line in joined.splitlines():
        stripped = line.strip()
        if not stripped.startswith("create_topic ") and stripped != "create_topic":
            continue
        words = shlex.split(stripped, comments=True)
        assert len(words) >= 3, f"create_topic needs a name and a partition count: {line!r}"
        name, partitions_token, rest = words[1], words[2], words[3:]
        configs: dict[str, str] = {}
        i = 0
        while i < len(rest):
            assert rest[i] == "--config" and i + 1 < len(rest), f"unexpected argument in {line!r}"
            key, _, value = rest[i + 1].partition("=")
            configs[key] = _resolve_script_value(value, assignments, environ)
            i += 2
        assert name not in calls, f"{name} is created twice"
        calls[name] = {
            "partitions_token": partitions_token,
            "partitions": _resolve_script_value(partitions_token, assignments, environ),
            "configs": configs,
        }
    return calls


def check_script(text: str, contract_topics: dict[str, str], environ: dict[str, str] | None = None) -> None:
    body = re.search(r"^create_topic\(\)\s*\{\n(.*?)^\}", text, re.M | re.S)
    assert body, "create-topics.sh has no create_topic() function"
    body_text = body.group(1)
    for flag in ("--create", "--if-not-exists", "--partitions", "--replication-factor", '"$@"'):
        assert flag in body_text, f"create_topic() must call kafka-topics.sh with {flag}"

    calls = parse_create_calls(text, environ)
    assert set(calls) == set(contract_topics), (
        f"topics differ from the contract: missing {sorted(set(contract_topics) - set(calls))}, "
        f"unexpected {sorted(set(calls) - set(contract_topics))}"
    )
    for name, kind in contract_topics.items():
        call = calls[name]
        assert call["partitions"].isdigit() and int(call["partitions"]) > 0, (name, call)
        policy = call["configs"].get("cleanup.policy", "delete")
        if kind == "compact":
            assert policy == "compact", f"{name} must be compacted, got {policy!r}"
        elif kind == "delete":
            assert policy == "delete", f"{name} must use cleanup.policy=delete, got {policy!r}"
            retention = int(call["configs"].get("retention.ms", "0"))
            assert retention == -1 or retention >= MIN_LONG_RETENTION_MS, (
                f"{name} needs a long retention (>= 7 days or -1), got {retention}"
            )
        else:
            assert "compact" not in policy, f"input {name} must not be compacted"

    first, second = (calls[t] for t in CO_PARTITIONED)
    assert first["partitions_token"] == second["partitions_token"], (
        f"{CO_PARTITIONED} must be created with the same partition count"
    )
    assert first["partitions"] == second["partitions"]


def check_worker(compose: dict, contract_env: set[str]) -> None:
    services = _services(compose)
    assert "smstally" in services, "no `smstally` worker service"
    worker = services["smstally"]

    build = worker.get("build")
    assert build, "the worker must be built from the repository"
    context = build if isinstance(build, str) else build.get("context", ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    assert (REPO / context).resolve() == REPO, f"build context {context!r} is not the repository"
    assert ((REPO / context) / dockerfile).resolve() == DOCKERFILE.resolve()

    entrypoint = argv(worker.get("entrypoint"))
    assert not entrypoint, "the worker must not override the image's entrypoint"
    assert argv(worker.get("command")) == ["smstally", "worker"]

    # Scaling: `--scale smstally=N` needs no fixed name and no fixed host port.
    assert "container_name" not in worker, "container_name prevents --scale"
    assert "hostname" not in worker, "a fixed hostname would be shared by all replicas"
    ports = parse_ports(worker)
    web = [p for p in ports if p["target"] == 6066]
    assert web, "the worker's web port 6066 is not published"
    for port in ports:
        published = port["published"]
        assert published is None or "-" in published, (
            f"host port {published} is fixed: a second replica could not bind it"
        )

    env = service_env(worker)
    for name in sorted(contract_env - OPTIONAL_ENV):
        assert env.get(name), f"the worker does not set {name}"
    for name, value in EXPECTED_WORKER_ENV.items():
        assert env.get(name) == value, f"{name}={env.get(name)!r}, expected {value!r}"

    broker = re.match(r"^kafka://([^:/]+):(\d+)$", env["SMSTALLY_BROKER"])
    assert broker and broker.group(1) in services, "SMSTALLY_BROKER must name a compose service"
    kafka_env = service_env(services[broker.group(1)])
    advertised = parse_listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    assert (broker.group(1), int(broker.group(2))) in advertised.values(), (
        "SMSTALLY_BROKER is not an advertised listener of the broker"
    )

    # Data dir on a named volume.
    named = set((compose.get("volumes") or {}).keys())
    mounts = {}
    for volume in worker.get("volumes") or []:
        if isinstance(volume, dict):
            mounts[volume.get("target")] = volume.get("source")
        else:
            source, _, rest = str(volume).partition(":")
            mounts[rest.split(":")[0]] = source
    data_dir = env["SMSTALLY_DATA_DIR"]
    assert mounts.get(data_dir) in named, f"{data_dir} is not on a named volume"

    # Same partition count as the topics job.
    topics_env = service_env(services["topics"])
    assert topics_env.get("SMSTALLY_PARTITIONS", "8") == env["SMSTALLY_PARTITIONS"]

    deps = depends_conditions(worker)
    assert deps.get(broker.group(1)) == "service_healthy", "the worker must wait for a healthy kafka"
    assert deps.get("topics") == "service_completed_successfully", "the worker must wait for the topics job to succeed"

    health = worker.get("healthcheck") or {}
    assert not health.get("disable")
    test = " ".join(argv(health.get("test")))
    assert f"http://localhost:{env['SMSTALLY_WEB_PORT']}/health/live" in test, (
        "the worker healthcheck must probe /health/live on the web port"
    )


def _mounts(service: dict) -> dict[str, str]:
    """Container path -> volume source (named volume or host path)."""
    mounts = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            mounts[volume.get("target")] = volume.get("source")
        else:
            source, _, rest = str(volume).partition(":")
            mounts[rest.split(":")[0]] = source
    return mounts


def check_postgres(compose: dict, environ: dict[str, str] | None = None) -> None:
    services = _services(compose)
    assert "postgres" in services, "no `postgres` service (the API's read model)"
    postgres = services["postgres"]
    assert POSTGRES_IMAGE.match(str(postgres.get("image", ""))), (
        f"postgres must use the official postgres:15 image, got {postgres.get('image')!r}"
    )
    env = service_env(postgres, environ)
    for name in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        assert env.get(name), f"postgres does not set {name}"
    assert env["POSTGRES_DB"] == "smstally"
    assert "POSTGRES_HOST_AUTH_METHOD" not in env, "no trust authentication in the deployment"

    named = set((compose.get("volumes") or {}).keys())
    data = env.get("PGDATA", "/var/lib/postgresql/data")
    mounts = _mounts(postgres)
    assert mounts.get(data) in named or mounts.get("/var/lib/postgresql/data") in named, (
        "the postgres data directory is not on a named volume"
    )
    assert not [p for p in parse_ports(postgres) if p["published"]], (
        "postgres must not be published on the host: only the api talks to it"
    )
    assert str(postgres.get("restart", "no")) in ("unless-stopped", "always")

    health = postgres.get("healthcheck") or {}
    assert health.get("test") and not health.get("disable"), "postgres needs a healthcheck"
    test = argv(health["test"])
    assert test[0] in ("CMD", "CMD-SHELL")
    probe = " ".join(test[1:])
    assert "pg_isready" in probe, "the postgres healthcheck must use pg_isready"
    assert env["POSTGRES_USER"] in probe or "$POSTGRES_USER" in probe or "$${POSTGRES_USER}" in probe


def check_api(compose: dict, contract_api_env: set[str], environ: dict[str, str] | None = None) -> None:
    """The api service, its environment evaluated against `environ` (default: a
    token and nothing else, so that the file's own defaults are what is checked)."""
    environ = {"SMSTALLY_API_TOKEN": "t0ken-for-the-test"} if environ is None else environ
    services = _services(compose)
    assert "api" in services, "no `api` service (`smstally api`)"
    api, worker = services["api"], services["smstally"]

    # The worker's image, another command.
    assert api.get("image") == worker.get("image") == "smstally:latest", (
        f"the api must run the worker's image smstally:latest, got {api.get('image')!r}"
    )
    build = api.get("build")
    if build:
        assert build == worker.get("build"), "the api must be built exactly like the worker"
    assert not argv(api.get("entrypoint")), "the api must not override the image's entrypoint"
    assert argv(api.get("command")) == ["smstally", "api"]
    assert api.get("init") is True, "init: true (signals and zombie reaping for the API process)"
    assert str(api.get("restart", "no")) == "unless-stopped"

    raw_env = api.get("environment") or {}
    if isinstance(raw_env, list):
        raw_env = dict(str(item).partition("=")[::2] for item in raw_env)
    raw = {str(k): v for k, v in raw_env.items()}
    env = service_env(api, environ)
    for name in sorted(contract_api_env):
        assert env.get(name), f"the api does not set {name}"
    for name, value in EXPECTED_API_ENV.items():
        assert env.get(name) == value, f"{name}={env.get(name)!r}, expected {value!r}"
    assert env["SMSTALLY_BROKER"] == service_env(worker)["SMSTALLY_BROKER"], (
        "the api must read the broker the worker writes to"
    )

    # The token: required from the operator, never a default in the file.
    token = str(raw.get("SMSTALLY_API_TOKEN", ""))
    assert required_variables(token) == {"SMSTALLY_API_TOKEN"} and token.startswith("${"), (
        f"SMSTALLY_API_TOKEN must be ${{SMSTALLY_API_TOKEN:?...}}, got {token!r}"
    )
    assert env["SMSTALLY_API_TOKEN"] == environ.get("SMSTALLY_API_TOKEN")
    try:
        service_env(api, {k: v for k, v in environ.items() if k != "SMSTALLY_API_TOKEN"})
    except AssertionError:
        pass
    else:
        raise AssertionError("the compose file must refuse to start without SMSTALLY_API_TOKEN")
    if env["SMSTALLY_API_HOST"] not in LOOPBACK:
        assert env["SMSTALLY_API_TOKEN"], "a non-loopback API address needs a token"

    # The read model is the postgres service, with its credentials.
    url = urlsplit(env["SMSTALLY_READ_DB"])
    assert url.scheme in ("postgresql", "postgres"), f"SMSTALLY_READ_DB is not PostgreSQL: {url.scheme}"
    assert url.hostname in services, "SMSTALLY_READ_DB must name a compose service"
    database = services[url.hostname]
    assert POSTGRES_IMAGE.match(str(database.get("image", ""))), "SMSTALLY_READ_DB is not the postgres service"
    db_env = service_env(database, environ)
    assert (url.port or 5432) == 5432
    assert unquote(url.username or "") == db_env["POSTGRES_USER"], "SMSTALLY_READ_DB user != POSTGRES_USER"
    assert unquote(url.password or "") == db_env["POSTGRES_PASSWORD"], "SMSTALLY_READ_DB password != POSTGRES_PASSWORD"
    assert url.path.lstrip("/") == db_env["POSTGRES_DB"], "SMSTALLY_READ_DB database != POSTGRES_DB"

    deps = depends_conditions(api)
    broker = re.match(r"^kafka://([^:/]+):(\d+)$", env["SMSTALLY_BROKER"])
    assert broker and deps.get(broker.group(1)) == "service_healthy", "the api must wait for a healthy kafka"
    assert deps.get("topics") == "service_completed_successfully", "the api must wait for the topics job to succeed"
    assert deps.get(url.hostname) == "service_healthy", "the api must wait for a healthy postgres"

    port = int(env["SMSTALLY_API_PORT"])
    published = [p for p in parse_ports(api) if p["target"] == port]
    assert published and published[0]["published"] == str(port), f"the api's port {port} is not published"

    named = set((compose.get("volumes") or {}).keys())
    mounts = _mounts(api)
    data_dir = env["SMSTALLY_DATA_DIR"]
    assert mounts.get(data_dir) in named, f"the api's {data_dir} is not on a named volume"
    assert mounts.get(data_dir) not in set(_mounts(worker).values()), "the api must not share the workers' state volume"

    health = api.get("healthcheck") or {}
    assert not health.get("disable")
    test = " ".join(argv(health.get("test")))
    assert f"http://localhost:{port}/health/live" in test, "the api healthcheck must probe /health/live on the API port"


# ----------------------------------------------------------------------------
# Dockerfile
# ----------------------------------------------------------------------------


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    instructions = []
    current = ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if current and line.lstrip().startswith("#"):
            continue  # comment inside a continued instruction
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        keyword, _, args = current.strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        current = ""
    if current.strip():
        keyword, _, args = current.strip().partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def exec_form(args: str) -> list[str]:
    try:
        value = json.loads(args)
    except json.JSONDecodeError:
        return ["/bin/sh", "-c", args]
    assert isinstance(value, list)
    return [str(v) for v in value]


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (k, _) in enumerate(instructions) if k == "FROM"]
    assert starts, "Dockerfile has no FROM"
    return instructions[starts[-1] :]


def check_dockerfile(text: str, compose: dict) -> None:
    instructions = parse_dockerfile(text)
    stage = final_stage(instructions)
    base = stage[0][1].split()[0]
    assert base == "python:3.11-slim", f"runtime image must be python:3.11-slim, got {base}"
    for keyword, args in instructions:
        if keyword == "FROM":
            assert args.split()[0] == "python:3.11-slim", f"unexpected base image {args}"

    runs = [args for keyword, args in instructions if keyword == "RUN"]
    assert any(re.search(r"\bpip install\b(?:(?!&&|;|\|\|).)*\s\.(?=\s|$|&&|;)", run) for run in runs), (
        "the project must be installed with `pip install .`"
    )
    for run in runs:
        assert "embedded" not in run and "calfkit" not in run, "no embedded broker in the image"
        assert not re.search(r"pip install[^&;]*\s-e\s", run), "no editable install in the image"

    # The build context must bring the whole project (every package of pyproject).
    copies = [args for keyword, args in instructions if keyword == "COPY" and "--from" not in args]
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    copied_all = any(re.match(r"^(--\S+\s+)*\.\s", c) for c in copies)
    for package in packages:
        assert copied_all or any(re.search(rf"(^|\s){package}/?(\s|$)", c) for c in copies), (
            f"package {package} is not copied into the image"
        )
    assert any("pyproject.toml" in c for c in copies) or copied_all

    users = [args for keyword, args in stage if keyword == "USER"]
    assert users, "the image must not run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), "the image must not run as root"

    exposed = {p.split("/")[0] for keyword, args in stage if keyword == "EXPOSE" for p in args.split()}
    assert "6066" in exposed, "EXPOSE 6066 missing"
    assert "8080" in exposed, "EXPOSE 8080 missing (the same image runs `smstally api`)"

    entrypoint = [exec_form(a) for k, a in stage if k == "ENTRYPOINT"]
    cmd = [exec_form(a) for k, a in stage if k == "CMD"]
    image_argv = (entrypoint[-1] if entrypoint else []) + (cmd[-1] if cmd else [])
    assert image_argv == ["smstally", "worker"], f"the image runs {image_argv}, not smstally worker"
    # The compose command replaces CMD but not ENTRYPOINT: together they must still be the worker.
    command = argv(_services(compose)["smstally"].get("command"))
    if command:
        assert (entrypoint[-1] if entrypoint else []) + command == ["smstally", "worker"]
    api = _services(compose).get("api")
    if api is not None:
        assert (entrypoint[-1] if entrypoint else []) + argv(api.get("command")) == ["smstally", "api"]

    data_dir = service_env(_services(compose)["smstally"])["SMSTALLY_DATA_DIR"]
    volumes = []
    for keyword, args in stage:
        if keyword == "VOLUME":
            volumes += exec_form(args) if args.startswith("[") else args.split()
    assert data_dir in volumes, f"the image must declare {data_dir} as a volume"


# ----------------------------------------------------------------------------
# The tests
# ----------------------------------------------------------------------------


def test_pyproject_declares_the_console_script():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["smstally"]


def test_kafka_runs_kraft_combined_single_node(compose):
    check_kafka(compose)


def test_topics_service_is_a_one_shot_job_running_the_script(compose):
    check_topics_service(compose)


def test_script_creates_exactly_the_contract_topics(compose, contract_topics):
    topics_env = {k: v for k, v in service_env(_services(compose)["topics"]).items() if v is not None}
    check_script(SCRIPT.read_text(encoding="utf-8"), contract_topics, topics_env)


def test_script_partition_count_comes_from_the_environment_default_8():
    text = SCRIPT.read_text(encoding="utf-8")
    calls = parse_create_calls(text, {})
    assert {c["partitions"] for c in calls.values()} == {"8"}
    calls = parse_create_calls(text, {"SMSTALLY_PARTITIONS": "12"})
    assert {c["partitions"] for c in calls.values()} == {"12"}


def test_worker_service(compose, contract_env):
    check_worker(compose, contract_env)


def test_postgres_service(compose):
    check_postgres(compose)


def test_api_service(compose, contract_api_env):
    check_api(compose, contract_api_env)


def test_api_and_postgres_agree_on_a_custom_password(compose, contract_api_env):
    environ = {"SMSTALLY_API_TOKEN": "tok", "SMSTALLY_PG_PASSWORD": "s3cret-pw"}
    check_postgres(compose, environ)
    check_api(compose, contract_api_env, environ)
    api_env = service_env(_services(compose)["api"], environ)
    assert urlsplit(api_env["SMSTALLY_READ_DB"]).password == "s3cret-pw"


def test_the_api_token_is_required(compose):
    api = _services(compose)["api"]
    with pytest.raises(AssertionError, match="SMSTALLY_API_TOKEN"):
        service_env(api, {})
    with pytest.raises(AssertionError, match="SMSTALLY_API_TOKEN"):
        service_env(api, {"SMSTALLY_API_TOKEN": ""})
    assert service_env(api, {"SMSTALLY_API_TOKEN": "abc"})["SMSTALLY_API_TOKEN"] == "abc"


def test_dockerfile(compose):
    check_dockerfile(DOCKERFILE.read_text(encoding="utf-8"), compose)


def test_dockerignore_keeps_the_build_context_small_and_complete():
    patterns = {
        line.strip().strip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for required in (".venv", ".git"):
        assert required in patterns, f".dockerignore must exclude {required}"
    assert "data" in patterns
    assert any("__pycache__" in p for p in patterns)
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    for needed in ["pyproject.toml", "README.md", *packages]:
        assert needed not in patterns and "*" not in patterns and "*.md" not in patterns, (
            f".dockerignore excludes {needed}, which `pip install .` needs"
        )


# --- the script, run for real against a fake kafka-topics.sh ----------------------

FAKE_KAFKA_TOPICS = """#!/bin/sh
printf '%s\\n' "$*" >> "$FAKE_LOG"
case "$*" in
  *--describe*--topic\\ sms.dlr*) echo "Topic: sms.dlr	TopicId: x	PartitionCount: ${FAKE_DLR_PARTITIONS:-$SMSTALLY_PARTITIONS_SEEN}	ReplicationFactor: 1	Configs: " ;;
  *--describe*) echo "Topic: t	TopicId: y	PartitionCount: ${SMSTALLY_PARTITIONS_SEEN}	ReplicationFactor: 1	Configs: " ;;
esac
exit 0
"""


def run_script(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    shell = shutil.which("sh")
    if not shell:
        pytest.skip("no POSIX shell")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "kafka-topics.sh"
    fake.write_text(FAKE_KAFKA_TOPICS)
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "calls.log"
    log.write_text("")
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "KAFKA_BIN": str(bin_dir),
        "FAKE_LOG": str(log),
        "WAIT_SECONDS": "0",
        "SMSTALLY_PARTITIONS_SEEN": env.get("SMSTALLY_PARTITIONS", "8"),
        **env,
    }
    proc = subprocess.run([shell, str(SCRIPT)], env=environ, capture_output=True, text=True, timeout=60)
    calls = [shlex.split(line) for line in log.read_text().splitlines() if line.strip()]
    return proc, calls


def _created(calls: list[list[str]]) -> dict[str, list[str]]:
    created = {}
    for call in calls:
        if "--create" in call:
            created[call[call.index("--topic") + 1]] = call
    return created


def _option(call: list[str], flag: str) -> list[str]:
    return [call[i + 1] for i, word in enumerate(call) if word == flag]


def test_script_run_creates_every_topic_idempotently(tmp_path, contract_topics):
    proc, calls = run_script(tmp_path)
    assert proc.returncode == 0, proc.stderr
    created = _created(calls)
    assert set(created) == set(contract_topics)
    for name, call in created.items():
        assert "--if-not-exists" in call, f"{name} is not created idempotently"
        assert _option(call, "--bootstrap-server") == ["kafka:9092"]
        assert _option(call, "--partitions") == ["8"]
        configs = dict(c.split("=", 1) for c in _option(call, "--config"))
        expected = "compact" if contract_topics[name] == "compact" else "delete"
        assert configs.get("cleanup.policy", "delete") == expected, (name, configs)
        if contract_topics[name] == "delete":
            assert int(configs["retention.ms"]) >= MIN_LONG_RETENTION_MS, (name, configs)


def test_script_run_honours_the_partition_count(tmp_path):
    proc, calls = run_script(tmp_path, SMSTALLY_PARTITIONS="3")
    assert proc.returncode == 0, proc.stderr
    assert {tuple(_option(c, "--partitions")) for c in _created(calls).values()} == {("3",)}


def test_script_run_rejects_existing_inputs_that_are_not_co_partitioned(tmp_path):
    proc, _ = run_script(tmp_path, FAKE_DLR_PARTITIONS="5")
    assert proc.returncode != 0
    assert "sms.dlr" in proc.stderr


def test_script_run_rejects_a_bad_partition_count(tmp_path):
    proc, calls = run_script(tmp_path, SMSTALLY_PARTITIONS="eight")
    assert proc.returncode != 0
    assert not _created(calls)


# --- the checks themselves fail on broken files ------------------------------------


def _fails(check, *args) -> bool:
    try:
        check(*args)
    except AssertionError:
        return True
    return False


def test_checks_fail_on_a_broken_script(contract_topics):
    text = SCRIPT.read_text(encoding="utf-8")
    missing = re.sub(r"^create_topic sms\.dlr .*\n", "", text, flags=re.M)
    assert missing != text and _fails(check_script, missing, contract_topics)
    not_compacted = text.replace(
        'create_topic sms.message-status "$PARTITIONS" --config cleanup.policy=compact',
        'create_topic sms.message-status "$PARTITIONS"',
    )
    assert not_compacted != text and _fails(check_script, not_compacted, contract_topics)
    not_co_partitioned = re.sub(r"^create_topic sms\.dlr \"\$PARTITIONS\"", "create_topic sms.dlr 4", text, flags=re.M)
    assert not_co_partitioned != text and _fails(check_script, not_co_partitioned, contract_topics)
    renamed = text.replace("sms.dead-letter", "sms.deadletter")
    assert _fails(check_script, renamed, contract_topics)
    not_idempotent = text.replace("--if-not-exists", "")
    assert _fails(check_script, not_idempotent, contract_topics)


def test_checks_fail_on_a_broken_compose(compose, contract_env):
    broken = copy.deepcopy(compose)
    broken["services"]["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] = "broker"
    assert _fails(check_kafka, broken)

    broken = copy.deepcopy(compose)
    del broken["services"]["kafka"]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    assert _fails(check_kafka, broken)

    broken = copy.deepcopy(compose)
    broken["services"]["kafka"]["image"] = "bitnami/kafka:latest"
    assert _fails(check_kafka, broken)

    for name in sorted(contract_env - OPTIONAL_ENV):
        broken = copy.deepcopy(compose)
        del broken["services"]["smstally"]["environment"][name]
        assert _fails(check_worker, broken, contract_env), name

    broken = copy.deepcopy(compose)
    broken["services"]["smstally"]["depends_on"]["kafka"]["condition"] = "service_started"
    assert _fails(check_worker, broken, contract_env)

    broken = copy.deepcopy(compose)
    broken["services"]["smstally"]["ports"] = ["6066:6066"]
    assert _fails(check_worker, broken, contract_env)

    broken = copy.deepcopy(compose)
    broken["services"]["smstally"]["container_name"] = "smstally"
    assert _fails(check_worker, broken, contract_env)


def test_checks_fail_on_a_broken_api_or_postgres(compose, contract_api_env):
    def broken(mutate):
        copied = copy.deepcopy(compose)
        mutate(copied["services"])
        return copied

    def unset(service, key):
        return lambda s: s[service].pop(key)

    def setenv(service, key, value):
        return lambda s: s[service]["environment"].__setitem__(key, value)

    def depends(service, name, condition):
        return lambda s: s[service]["depends_on"][name].__setitem__("condition", condition)

    api_mutations = {
        "no api": lambda s: s.pop("api"),
        "worker command": lambda s: s["api"].__setitem__("command", ["smstally", "worker"]),
        "other image": lambda s: s["api"].__setitem__("image", "smstally-api:latest"),
        "entrypoint": lambda s: s["api"].__setitem__("entrypoint", ["smstally"]),
        "token default": setenv("api", "SMSTALLY_API_TOKEN", "${SMSTALLY_API_TOKEN:-changeme}"),
        "token literal": setenv("api", "SMSTALLY_API_TOKEN", "changeme"),
        "no token": lambda s: s["api"]["environment"].pop("SMSTALLY_API_TOKEN"),
        "no read db": lambda s: s["api"]["environment"].pop("SMSTALLY_READ_DB"),
        "sqlite": setenv("api", "SMSTALLY_READ_DB", "sqlite:////var/lib/smstally/read.db"),
        "wrong host": setenv(
            "api", "SMSTALLY_READ_DB", "postgresql://smstally:${SMSTALLY_PG_PASSWORD:-smstally-local}@db:5432/smstally"
        ),
        "wrong password": setenv("api", "SMSTALLY_READ_DB", "postgresql://smstally:other@postgres:5432/smstally"),
        "wrong database": setenv(
            "api", "SMSTALLY_READ_DB", "postgresql://smstally:${SMSTALLY_PG_PASSWORD:-smstally-local}@postgres/x"
        ),
        "loopback only": setenv("api", "SMSTALLY_API_HOST", "127.0.0.1"),
        "other broker": setenv("api", "SMSTALLY_BROKER", "kafka://kafka:9094"),
        "kafka started": depends("api", "kafka", "service_started"),
        "topics started": depends("api", "topics", "service_started"),
        "postgres started": depends("api", "postgres", "service_started"),
        "no postgres dep": lambda s: s["api"]["depends_on"].pop("postgres"),
        "no port": unset("api", "ports"),
        "no healthcheck": unset("api", "healthcheck"),
        "worker probe": lambda s: s["api"]["healthcheck"].__setitem__(
            "test", ["CMD", "curl", "-f", "http://localhost:6066/health/live"]
        ),
        "no init": unset("api", "init"),
        "worker state": lambda s: s["api"].__setitem__("volumes", ["smstally-data:/var/lib/smstally"]),
    }
    for label, mutate in api_mutations.items():
        assert _fails(check_api, broken(mutate), contract_api_env), label

    postgres_mutations = {
        "no postgres": lambda s: s.pop("postgres"),
        "postgres 16": lambda s: s["postgres"].__setitem__("image", "postgres:16"),
        "no password": lambda s: s["postgres"]["environment"].pop("POSTGRES_PASSWORD"),
        "trust": setenv("postgres", "POSTGRES_HOST_AUTH_METHOD", "trust"),
        "other db": setenv("postgres", "POSTGRES_DB", "postgres"),
        "no volume": unset("postgres", "volumes"),
        "published": lambda s: s["postgres"].__setitem__("ports", ["5432:5432"]),
        "no healthcheck": unset("postgres", "healthcheck"),
        "not pg_isready": lambda s: s["postgres"]["healthcheck"].__setitem__("test", ["CMD", "true"]),
    }
    for label, mutate in postgres_mutations.items():
        assert _fails(check_postgres, broken(mutate)), label
    # The api's read database must follow the postgres service's credentials.
    assert _fails(check_api, broken(setenv("postgres", "POSTGRES_USER", "someone")), contract_api_env)


def test_checks_fail_on_a_broken_dockerfile(compose):
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert _fails(check_dockerfile, text.replace('CMD ["smstally", "worker"]', 'CMD ["smstally"]'), compose)
    assert _fails(check_dockerfile, text + '\nENTRYPOINT ["smstally"]\n', compose)
    assert _fails(check_dockerfile, re.sub(r"^USER .*$", "USER root", text, flags=re.M), compose)
    assert _fails(check_dockerfile, text.replace("pip install .", "pip install smstally"), compose)
    assert _fails(check_dockerfile, text.replace("EXPOSE 6066 8080", "EXPOSE 6066"), compose)
