"""Reminders under faults: Twilio failing and holding answers, and ``remind`` killed part-way.

At most once, whatever happens: a send whose outcome is unknown is in doubt
and never repeated; only Twilio's own refusals are retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

from redis.asyncio import Redis

from bot.ratelimit import limiter_for
from bot.reminders import Reminders, Worker, default_concurrency
from channels.rules import TEXT_RULES
from channels.sms_sender import TwilioSender
from channels.standins.twilio_api import TwilioApiStandIn
from channels.standins.twilio_phone import ACCOUNT_SID, OUR_NUMBER
from tests.factories import SECRET
from tests.reminders_support import election_with_roll, most_in_window, phone
from tests.sms_support import AUTH_TOKEN, twilio_settings
from tests.test_reminders_platforms import TEXT, start_job

RATE = 50.0


async def test_10_percent_500s_and_2_percent_held_answers_send_nobody_twice(
    redis: Redis,
) -> None:
    election = await election_with_roll(redis, 400)
    job = await start_job(redis, election)
    async with TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        twilio.faults(error_rate=0.10, hold_rate=0.02, seed=7)
        config = twilio_settings(twilio, sms_rate=RATE)
        limiter = limiter_for(config, redis)
        sms = TwilioSender.from_settings(
            config, redis, pause=limiter.backoff_sleep("sms"), timeout=2.0
        )
        try:
            worker = Worker(
                redis,
                {"sms": sms},
                limiter,
                TEXT_RULES,
                concurrency={"sms": default_concurrency(RATE)},
                heartbeat=2.0,
            )
            async with _loop_stalls() as stalled:
                final = await worker.run(job)
        finally:
            await sms.aclose()
    refused = [a for a in twilio.attempts if a.status == 500]
    taken = sorted(m.at for m in twilio.messages)
    rate = (len(taken) - 1) / (taken[-1] - taken[0])
    print(
        f"\n500s: {len(refused)} of {len(twilio.attempts)} requests; held: {len(twilio.held)}; "
        f"achieved {rate:.1f}/s of {RATE:.0f}/s ({rate / RATE:.2f}x)"
    )
    assert len(refused) >= 20  # the faults were there
    assert len(twilio.held) >= 3
    # Nobody got it twice: a held answer was never sent again.
    received = Counter(m.to for m in twilio.messages)
    assert received.most_common(1)[0][1] == 1
    assert final.status == "finished"
    assert final.outcome("in_doubt") == len(twilio.held)
    assert final.outcome("sent") + final.outcome("in_doubt") == 400
    assert set(received) == {phone(i) for i in range(400)}
    # The rate kept under these faults is measured by benchmarks/bench_remind_faults.py;
    # here, only that it is never exceeded by more than the retries' reused turns.
    # A retry keeps its message's turn rather than queueing for another, so one second
    # can hold a few more than the rate (Twilio queues those rather than refusing them).
    # And on a loaded machine, the turns a stalled event loop made overdue go together when
    # it wakes (the stand-in is in this process and stalls with it): at most a rate's worth
    # of the longest stall measured.
    assert most_in_window(taken) <= 1.1 * RATE + 1 + math.ceil(RATE * stalled.longest)


class _Stalls:
    """The longest the event loop was late to wake a task that asked to sleep 10 ms."""

    longest = 0.0


@contextlib.asynccontextmanager
async def _loop_stalls() -> AsyncIterator[_Stalls]:
    found = _Stalls()
    loop = asyncio.get_running_loop()

    async def watch() -> None:
        while True:
            asked = loop.time()
            await asyncio.sleep(0.01)
            found.longest = max(found.longest, loop.time() - asked - 0.01)

    watcher = asyncio.create_task(watch())
    try:
        yield found
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


async def test_kill_9_midway_then_resume(redis: Redis, redis_url: str, tmp_path: Path) -> None:
    """The real command in a subprocess, SIGKILLed part-way; a second one resumes."""
    election = await election_with_roll(redis, 200)
    async with TwilioApiStandIn(ACCOUNT_SID, AUTH_TOKEN) as twilio:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "OPENPRIMARY_REDIS_URL": redis_url,
            "OPENPRIMARY_SECRET_KEY": SECRET,
            "OPENPRIMARY_SMS_RATE": "50",
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_FROM": OUR_NUMBER,
            "TWILIO_API_BASE": twilio.base_url,
        }
        command = [sys.executable, "-m", "openprimary.cli", "remind"]
        root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = root
        first = await asyncio.create_subprocess_exec(
            *command,
            "--election",
            election.id,
            "--message",
            TEXT,
            "--heartbeat",
            "1",
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
        )
        assert first.stdout is not None
        line = (await asyncio.wait_for(first.stdout.readline(), 30)).decode()
        assert line.startswith("job: ")
        job = line.split()[1]
        await asyncio.wait_for(twilio.wait_for(70), 30)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        at_kill = await Reminders(redis).status(job)
        assert at_kill.status == "running" and at_kill.remaining > 0

        second = await asyncio.create_subprocess_exec(
            *command,
            "--resume",
            job,
            "--heartbeat",
            "1",
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(second.communicate(), 60)
        assert second.returncode == 0, out
        assert out.decode().startswith(f"job: {job}\n")

    final = await Reminders(redis).status(job)
    assert final.status == "finished"
    received = Counter(m.to for m in twilio.messages)
    assert received.most_common(1)[0][1] == 1  # nobody twice
    doubt = final.outcome("in_doubt")
    assert doubt <= 10  # at most one per send in flight (concurrency) at the kill
    assert final.outcome("sent") + doubt == 200
    # Nobody missed: everyone got it, but for in-doubt ones whose send the kill cut off.
    doubted = {phone(int(sid[1:])) for _, sid in await Reminders(redis).in_doubt(job)}
    assert len(doubted) == doubt
    assert set(received) | doubted == {phone(i) for i in range(200)}
    # 50 a second: one more for the window's edges, and two for turns granted to the killed
    # process whose requests reached Twilio late, beside the new process's first ones.
    assert most_in_window([m.at for m in twilio.messages]) <= 53
