"""The deployment kit in deploy/, checked with the real tools that read it.

- ``caddy validate`` on the Caddyfile, and Caddy from that Caddyfile in front of a real
  ``openprimary serve --workers 2``: a signed Twilio webhook over HTTPS gets its TwiML.
- ``systemd-analyze verify`` and ``systemd-analyze security`` on the units.
- ``promtool check rules``, ``promtool test rules`` and ``promtool check config``.
- The compose files against the Compose Specification's JSON schema (deploy/compose-spec/).
- ``shellcheck`` on the scripts; setup-secrets.sh and install.sh run for real (into a
  temporary folder), twice, to show they are idempotent.
- Every metric the alert rules and the Grafana dashboard name is one serve exports.

The tools come from Debian's packages (caddy, prometheus for promtool, systemd, shellcheck);
``.ci/run`` installs them.  Without one, its tests skip, saying which package to install; with
``OPENPRIMARY_REQUIRE_DEPLOY_TOOLS=1`` (set by ``.ci/run``) they fail instead.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from aiohttp import ClientError, ClientSession, TCPConnector
from redis.asyncio import Redis

from bot.metrics import REGISTRY
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID, TwilioPhone
from tests.factories import sample_election
from tests.faults.support import free_port
from tests.sms_support import ANN, AUTH_TOKEN, serve_env, serve_workers

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
STRICT = os.environ.get("OPENPRIMARY_REQUIRE_DEPLOY_TOOLS") == "1"
#: The Debian package each tool comes in.
PACKAGES = {
    "caddy": "caddy",
    "promtool": "prometheus",
    "systemd-analyze": "systemd",
    "shellcheck": "shellcheck",
}
METRICS_TOKEN = "metrics-token-for-the-deploy-kit-test-0123456789"


def tool(name: str) -> str:
    """The tool's path; skip the test without it (fail, under OPENPRIMARY_REQUIRE_DEPLOY_TOOLS)."""
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed: apt-get install {PACKAGES[name]}"
    if STRICT:
        pytest.fail(message + " (OPENPRIMARY_REQUIRE_DEPLOY_TOOLS=1)")
    pytest.skip(message)


def run(*command: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=300, **kwargs)


def caddy_env(tmp_path: Path, **more: str) -> dict[str, str]:
    """Caddy's environment for a test: its files under tmp_path, its admin API off."""
    return {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "CADDY_ADMIN": "off",
        **more,
    }


# --- Caddy --------------------------------------------------------------------------------


def test_the_caddyfile_is_valid_and_formatted(tmp_path: Path) -> None:
    caddy = tool("caddy")
    caddyfile = DEPLOY / "Caddyfile"
    # As compose.yaml and a host run it: the defaults (vote.example.org, 127.0.0.1:8080),
    # with the upstream moved to a closed loopback port (validating starts its health check).
    env = caddy_env(tmp_path, OPENPRIMARY_UPSTREAM=f"127.0.0.1:{free_port()}")
    checked = run(caddy, "validate", "--config", str(caddyfile), "--adapter", "caddyfile", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Valid configuration" in checked.stdout + checked.stderr
    formatted = run(caddy, "fmt", str(caddyfile), env=env)
    assert formatted.returncode == 0 and formatted.stdout == caddyfile.read_text()


async def _wait_for_https(url: str, context: ssl.SSLContext) -> None:
    async with asyncio.timeout(60):
        while True:
            try:
                async with (
                    ClientSession(connector=TCPConnector(ssl=context, force_close=True)) as s,
                    s.get(url) as resp,
                ):
                    if resp.status == 200:
                        return
            except (ClientError, ssl.SSLError, OSError):
                pass
            await asyncio.sleep(0.2)


@asynccontextmanager
async def caddy_in_front(tmp_path: Path, port: int, upstream: str) -> AsyncIterator[Path]:
    """Caddy from deploy/Caddyfile serving https://localhost:PORT in front of ``upstream``;
    the root certificate of Caddy's own CA, once it exists.

    The site address comes in through OPENPRIMARY_SITE_ADDRESS, as in production.  For
    ``localhost`` Caddy issues the certificate from its own local CA (what ``tls internal``
    asks for; a public CA will not certify localhost), and the test trusts that CA's root.
    """
    env = caddy_env(
        tmp_path,
        OPENPRIMARY_SITE_ADDRESS=f"localhost:{port}",
        OPENPRIMARY_UPSTREAM=upstream,
        CADDY_HTTP_PORT=str(free_port()),
        CADDY_HTTPS_PORT=str(port),
    )
    log = (tmp_path / "caddy.log").open("w")
    proc = await asyncio.create_subprocess_exec(
        tool("caddy"), "run", "--config", str(DEPLOY / "Caddyfile"), "--adapter", "caddyfile",
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    root = tmp_path / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"
    try:
        async with asyncio.timeout(60):
            while not root.exists():
                assert proc.returncode is None, (tmp_path / "caddy.log").read_text()
                await asyncio.sleep(0.1)
        yield root
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                await proc.wait()
        log.close()


async def test_caddy_passes_a_signed_twilio_webhook_over_https_to_serve(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    """The whole path a text takes: Twilio signs the public https URL; Caddy ends TLS and
    passes the request on; serve checks the signature against OPENPRIMARY_PUBLIC_URL and the
    path (not the Host or scheme it saw), answers TwiML, and Caddy brings it back."""
    election = await sample_election(  # open whenever the test runs
        redis, opens=datetime(2020, 1, 1, tzinfo=UTC), closes=datetime(2099, 1, 1, tzinfo=UTC)
    )
    async with TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        caddy_port = free_port()
        public = f"https://localhost:{caddy_port}"
        env = {
            **serve_env(redis_url, twilio.base_url),
            "OPENPRIMARY_PUBLIC_URL": public,
            "OPENPRIMARY_TRUSTED_PROXIES": "127.0.0.1, ::1",
            "OPENPRIMARY_METRICS_TOKEN": METRICS_TOKEN,
        }
        async with serve_workers(env, "--election", election.id) as (direct, _):
            upstream = direct.removeprefix("http://")
            async with caddy_in_front(tmp_path, caddy_port, upstream) as root:
                await _check_through_caddy(public, root, direct)


async def _check_through_caddy(url: str, root: Path, direct: str) -> None:
    context = ssl.create_default_context(cafile=str(root))
    await _wait_for_https(url + "/healthz", context)
    async with ClientSession(connector=TCPConnector(ssl=context)) as session:
        phone = TwilioPhone(session, url, public_url=url, auth_token=AUTH_TOKEN, number=ANN)
        [reply] = await phone.text("Hi")
        code = re.search(r"\b(\d{6})\b", reply)
        assert code, reply
        await phone.text(code.group(1))
        await phone.text("2 1")
        done = " ".join(await phone.text("YES"))
        assert "Vote cast" in done, done
        # A signature made for another URL is refused through the proxy too.
        forged = await phone.post(
            {"Body": "hi"}, sign_for="https://elsewhere.example.org/sms/twilio"
        )
        assert forged.status == 403
        async with session.get(url + "/healthz") as resp:
            assert resp.status == 200
            assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
        # /metrics is not served to the internet, token or not...
        headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        async with session.get(url + "/metrics", headers=headers) as resp:
            assert resp.status == 404
    # ...only to whoever reaches serve itself, with the token.
    async with ClientSession() as session:
        async with session.get(direct + "/metrics") as resp:
            assert resp.status == 401
        async with session.get(direct + "/metrics", headers=headers) as resp:
            assert resp.status == 200
            text = await resp.text()
    assert 'openprimary_http_responses_total{code="200",route="sms"} 4.0' in text
    assert 'openprimary_http_responses_total{code="403",route="sms"} 1.0' in text


# --- systemd ------------------------------------------------------------------------------

UNITS = ("openprimary-serve.service", "openprimary-remind@.service")


@pytest.mark.parametrize("unit", UNITS)
def test_the_systemd_units_verify_and_are_hardened(unit: str, tmp_path: Path) -> None:
    """``systemd-analyze verify`` checks that ExecStart's program exists, so it runs on a
    copy whose ExecStart names this checkout's own ``openprimary`` (the unit's path,
    /opt/openprimary/venv/bin/openprimary, is made by install.sh, not here); every other line
    is as written.  Any warning fails the test, not just an error (verify exits 0 on
    "Unknown key", say).  Then ``systemd-analyze security --offline`` scores the hardening."""
    analyze = tool("systemd-analyze")
    program = Path(sys.executable).with_name("openprimary")
    assert program.is_file(), program
    text = (DEPLOY / "systemd" / unit).read_text()
    assert "/opt/openprimary/venv/bin/openprimary " in text
    copy = tmp_path / unit
    copy.write_text(text.replace("/opt/openprimary/venv/bin/openprimary ", f"{program} "))
    verified = run(analyze, "verify", str(copy))
    assert verified.returncode == 0 and verified.stderr == "", verified.stderr
    # Exposure is out of 10 (lower is safer); the threshold is in tenths.
    security = run(analyze, "security", "--offline=yes", "--threshold=20", str(copy))
    assert security.returncode == 0, security.stdout + security.stderr
    for setting in (
        "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectHome=yes",
        "CapabilityBoundingSet=\n", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service", "ReadWritePaths=/var/lib/openprimary",
        "EnvironmentFile=/etc/openprimary/openprimary.env", "LoadCredential=redis-url:",
    ):  # fmt: skip
        assert setting in text, setting


# --- Prometheus and Grafana ---------------------------------------------------------------


def test_the_alert_rules_load_and_pass_their_unit_tests() -> None:
    promtool = tool("promtool")
    rules = DEPLOY / "prometheus" / "openprimary.rules.yml"
    checked = run(promtool, "check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = run(promtool, "test", "rules", str(rules.with_name("openprimary.rules.test.yml")))
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_the_prometheus_config_loads(tmp_path: Path) -> None:
    """promtool checks that the token file exists: a copy names one made here."""
    promtool = tool("promtool")
    for name in ("prometheus.yml", "openprimary.rules.yml"):
        shutil.copy(DEPLOY / "prometheus" / name, tmp_path / name)
    token = tmp_path / "token"
    token.write_text(METRICS_TOKEN)
    config = tmp_path / "prometheus.yml"
    text = config.read_text()
    assert "/etc/prometheus/openprimary-metrics-token" in text
    config.write_text(text.replace("/etc/prometheus/openprimary-metrics-token", str(token)))
    checked = run(promtool, "check", "config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _dashboard_queries() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "openprimary.json").read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def test_the_dashboard_queries_are_promql(tmp_path: Path) -> None:
    """Each query, as a recording rule, through promtool's parser ($__range: Grafana's)."""
    promtool = tool("promtool")
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{i}", "expr": q.replace("$__range", "1h")}
                    for i, q in enumerate(_dashboard_queries())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump(rules))
    checked = run(promtool, "check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def exported_names() -> set[str]:
    """Every sample name serve's /metrics can have."""
    names = {"up"}
    for family in REGISTRY.collect():
        if family.type == "counter":
            names |= {family.name + "_total", family.name + "_created"}
        elif family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_sum", "_count", "_created")}
        else:
            names.add(family.name)
    return names


def test_every_metric_the_rules_and_dashboard_name_exists() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "openprimary.rules.yml").read_text())
    exprs = [r["expr"] for g in rules["groups"] for r in g["rules"]] + _dashboard_queries()
    named = {m for e in exprs for m in re.findall(r"\b(openprimary_[a-z_]+|up)\b", e)}
    assert named and named <= exported_names(), named - exported_names()
    # Each alert the brief asks for is there.
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert {
        "OpenPrimaryNoInboundMessages", "OpenPrimaryWebhookErrors", "OpenPrimaryRedisNotWritable",
        "OpenPrimaryReminderStalled", "OpenPrimarySmsBudgetNear",
        "OpenPrimaryPlatformCopiesFailing", "OpenPrimaryServeDown",
    } <= alerts  # fmt: skip


# --- Compose ----------------------------------------------------------------------------

COMPOSE_FILES = ("compose.yaml", "compose.sentinel.yaml")


def compose_validator() -> jsonschema.Draft201909Validator:
    schema = json.loads((DEPLOY / "compose-spec" / "compose-spec.json").read_text())
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


@pytest.mark.parametrize("name", COMPOSE_FILES)
def test_the_compose_files_follow_the_compose_specification(name: str) -> None:
    doc = yaml.safe_load((DEPLOY / name).read_text())
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in compose_validator().iter_errors(doc)
    ]
    assert errors == []


def test_the_schema_catches_a_mistake() -> None:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    doc["services"]["serve"]["restart_policy"] = "always"  # not a service key
    doc["services"]["redis"]["ports"] = [{"target": "6379"}]  # a string, not a number
    assert len(list(compose_validator().iter_errors(doc))) == 2


def test_the_compose_files_use_what_setup_secrets_makes(tmp_path: Path) -> None:
    made = _setup_secrets(tmp_path / "secrets")
    base, sentinel = (yaml.safe_load((DEPLOY / n).read_text()) for n in COMPOSE_FILES)
    for doc in (base, sentinel):
        for secret in doc["secrets"].values():
            assert secret["file"].startswith("./secrets/")
            assert secret["file"].removeprefix("./secrets/") in made, secret
        for service in doc["services"].values():
            for env_file in service.get("env_file", []):
                assert env_file.removeprefix("secrets/") in made
            for volume in service.get("volumes", []):
                source = str(volume).split(":")[0]
                if source.startswith("./") and source != "./work":
                    assert (DEPLOY / source).exists(), volume
            for secret in service.get("secrets", []):
                assert secret in base["secrets"] or secret in sentinel["secrets"]
    services = base["services"]
    # Least privilege: serve logs in to Redis as its own user, the other programs as the CLI's.
    assert "cli-redis-url" not in services["serve"]["secrets"]
    assert services["remind"]["environment"]["OPENPRIMARY_REDIS_URL_FILE"].endswith("cli-redis-url")
    assert services["remind"]["command"][:2] == ["remind", "--resume"]
    assert "--workers" in services["serve"]["command"]
    assert base["networks"]["back"]["internal"] is True
    # Caddy's fixed address is serve's one trusted proxy.
    caddy = services["caddy"]["networks"]["front"]["ipv4_address"]
    assert services["serve"]["environment"]["OPENPRIMARY_TRUSTED_PROXIES"] == caddy


def test_the_dockerfile_builds_from_the_lock_as_a_non_root_user() -> None:
    """Static checks (no daemon to build with here): two stages, the lock with its hashes,
    the project without dependencies, a non-root user, a health check on /healthz, and every
    file it copies there and let in by .dockerignore."""
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+ AS (\w+)$", text, re.M)
    assert stages == ["build", "runtime"]
    assert "pip install --require-hashes -r /src/requirements/runtime.txt" in text
    assert "pip install --no-deps --no-build-isolation /src" in text
    runtime = text.split("AS runtime", 1)[1]
    assert re.search(r"^USER openprimary:openprimary$", runtime, re.M)
    assert re.search(r"^HEALTHCHECK .*\n.*127\.0\.0\.1:8080/healthz", runtime, re.M)
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    ]
    for line in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):
        for source in line.split():
            assert (ROOT / source).exists(), source
            assert source in allowed, f"{source} is kept out by .dockerignore"


# --- scripts ------------------------------------------------------------------------------

SCRIPTS = ("install.sh", "setup-secrets.sh")


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_scripts_are_shellcheck_clean(script: str) -> None:
    checked = run(tool("shellcheck"), str(DEPLOY / script))
    assert checked.returncode == 0, checked.stdout


def _setup_secrets(target: Path, **env: str) -> set[str]:
    done = run(str(DEPLOY / "setup-secrets.sh"), str(target), env={**os.environ, **env})
    assert done.returncode == 0, done.stderr
    return {p.name for p in target.iterdir()}


def test_setup_secrets_makes_each_secret_once(tmp_path: Path) -> None:
    target = tmp_path / "secrets"
    made = _setup_secrets(target, OPENPRIMARY_REDIS_HOST="127.0.0.1")
    assert target.stat().st_mode & 0o777 == 0o700
    before = {name: (target / name).read_text() for name in made}
    # Nothing left to fill but what a person must: the tokens Twilio and Telegram give.
    for name, text in before.items():
        if name != "openprimary.env":
            assert "CHANGE-ME" not in text, name
    assert before["twilio-auth-token"] == before["telegram-bot-token"] == ""
    assert len(before["secret-key"].strip()) == 64
    serve = before["redis-serve-password"].strip()
    assert f">{serve} " in before["redis-users.acl"]
    assert (
        before["serve-redis-url"].strip() == f"redis://openprimary-serve:{serve}@127.0.0.1:6379/0"
    )
    replica = before["redis-replica-password"].strip()
    assert f"masterauth {replica}" in before["redis-auth.conf"]
    assert f"requirepass {before['sentinel-password'].strip()}" in before["sentinel.conf"]
    # Run again: nothing changes.
    again = run(str(DEPLOY / "setup-secrets.sh"), str(target))
    assert "nothing changed" in again.stdout
    assert {n: (target / n).read_text() for n in made} == before


def test_install_sh_into_a_folder_twice(tmp_path: Path) -> None:
    """install.sh for real, under OPENPRIMARY_ROOT (so it skips the user and systemctl):
    a virtualenv from the lock, hash-checked, that runs; a second run keeps every secret."""
    root = tmp_path / "root"
    for folder in ("etc/redis", "etc/caddy"):
        (root / folder).mkdir(parents=True)
    env = {**os.environ, "OPENPRIMARY_ROOT": str(root), "PYTHON": sys.executable}
    env.pop("VIRTUAL_ENV", None)
    first = run(str(DEPLOY / "install.sh"), "--site", "vote.example.org", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    program = root / "opt/openprimary/venv/bin/openprimary"
    assert run(str(program), "--help").returncode == 0
    credentials = root / "etc/openprimary/credentials"
    secrets_before = {p.name: p.read_text() for p in credentials.iterdir()}
    conf = (root / "etc/redis/redis-openprimary.conf").read_text()
    assert "aclfile /etc/redis/openprimary-users.acl" in conf and "bind 127.0.0.1 -::1" in conf
    dropin = root / "etc/systemd/system/caddy.service.d/openprimary.conf"
    assert "OPENPRIMARY_SITE_ADDRESS=vote.example.org" in dropin.read_text()
    assert (root / "etc/openprimary/openprimary.env").stat().st_mode & 0o777 == 0o600
    second = run(str(DEPLOY / "install.sh"), env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert {p.name: p.read_text() for p in credentials.iterdir()} == secrets_before
    assert run(str(program), "--help").returncode == 0


# --- no secret in any file --------------------------------------------------------------


def test_no_file_of_the_kit_holds_a_secret() -> None:
    """Passwords, keys and tokens are CHANGE-ME placeholders (or made by setup-secrets.sh
    outside the repository): nothing that looks like a real one is committed."""
    found = []
    for path in [*DEPLOY.rglob("*"), *(ROOT / "docs" / "deploy").rglob("*")]:
        if not path.is_file() or "secrets" in path.relative_to(ROOT).parts:
            continue
        if path.name in ("compose-spec.json", "LICENSE", "NOTICE", "openprimary.json"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            lowered = line.lower()
            if re.search(r"\b[0-9a-f]{32,}\b", lowered) and "sha256" not in lowered:
                found.append(f"{path}:{number}: {line}")
            for word in ("requirepass ", "masterauth ", "auth-pass ", "sentinel-pass "):
                if lowered.lstrip().startswith(word) and "change-me" not in lowered:
                    found.append(f"{path}:{number}: {line}")
            if re.search(r"(^|\s)>(?!change-me)\S", lowered) and path.suffix == ".acl":
                found.append(f"{path}:{number}: {line}")
    assert found == []
