"""The suite's flows on a real Redis Cluster and through Redis Sentinel.

Each test starts the servers, then runs a part of this suite in a child
pytest with ``REDIS_URL`` naming them, so every client the flows build
(``ballots.connection.client_from_url``) talks to the Cluster, or to the
primary the Sentinels name: votes by SMS and Telegram, reminders, the
unseal and the count, turnout and receipts.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.faults.support import RedisProcess
from tests.replication import cluster, cluster_url, replica_of, sentinel_url, sentinels

ROOT = Path(__file__).resolve().parent.parent

#: Voting by SMS and by Telegram (both at once too), reminders through both platforms,
#: trustees, the unseal and the count, turnout and the audit trail, receipts, the inbox.
FLOWS = [
    "tests/test_sms_vote.py",
    "tests/test_telegram_vote.py",
    "tests/test_telegram_both.py",
    "tests/test_reminders_platforms.py",
    "tests/test_unseal.py",
    "tests/test_turnout_audit.py",
    "tests/test_receipts.py",
    "tests/test_telegram_inbox.py",
    "tests/test_rehearsal.py",
    "tests/test_live_election.py",
]


def run_flows(url: str, flows: list[str]) -> str:
    """The flows' tests in a child pytest against ``url``; its summary line."""
    env = {**os.environ, "REDIS_URL": url}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         "-W", "ignore::pytest.PytestUnraisableExceptionWarning", *flows],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )  # fmt: skip
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert not re.search(r"skipped|deselected|xfail", summary), summary
    return summary


def test_the_flows_on_a_three_primary_cluster() -> None:
    with cluster(3) as nodes:
        summary = run_flows(cluster_url(nodes), FLOWS)
    passed = int(re.search(r"(\d+) passed", summary).group(1))  # type: ignore[union-attr]
    assert passed >= 60, summary


def test_the_flows_through_sentinel() -> None:
    primary = RedisProcess()
    primary.start()
    replica = replica_of(primary)
    replica.start()
    try:
        with sentinels(primary) as watchers:
            summary = run_flows(
                sentinel_url(watchers),
                ["tests/test_sms_vote.py", "tests/test_unseal.py", "tests/test_live_election.py"],
            )
        assert "passed" in summary
    finally:
        replica.close()
        primary.close()
