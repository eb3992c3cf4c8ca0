"""Reminder jobs: who gets one, the checks on the text, and exactly-once sending in Redis."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
from redis.asyncio import Redis

from ballots import audit, keys
from ballots.connection import client_from_url
from bot.reminders import (
    ReminderError,
    Reminders,
    Worker,
    plan,
    template_problems,
)
from channels.rules import TEXT_RULES
from tests.factories import Outbox
from tests.reminders_support import (
    chat,
    clock,
    election_with_roll,
    fast_limiter,
    mark_voted,
    phone,
)

TEXT = "Hi {name}, {days_left} days left to vote. Polls close {closes}."


async def test_targeting_voted_opted_out_unreachable_and_telegram(redis: Redis) -> None:
    # S0-S9: 0 voted, 1 opted out of SMS, 2 unreachable by SMS, 3 linked Telegram,
    # 4 Telegram but opted out there, 5 Telegram that blocked the bot (falls back to SMS),
    # 6-9 plain SMS.
    election = await election_with_roll(redis, 10, telegram=lambda i: i in (3, 4, 5))
    await mark_voted(redis, election, "S0")
    await redis.sadd(keys.opted_out("sms"), phone(1))
    await redis.sadd(keys.unreachable("sms"), phone(2))
    await redis.sadd(keys.opted_out("telegram"), chat(4))
    await redis.sadd(keys.unreachable("telegram"), chat(5))

    ready = await plan(redis, election, TEXT, rules=TEXT_RULES, clock=clock())
    assert sorted(ready.recipients["telegram"]) == ["S3"]
    assert sorted(ready.recipients["sms"]) == ["S5", "S6", "S7", "S8", "S9"]
    assert ready.skipped == {"voted": 1, "opted_out": 2, "unreachable": 1, "other_channel": 0}
    assert ready.sms_segments == 5

    only_sms = await plan(redis, election, TEXT, "sms", rules=TEXT_RULES, clock=clock())
    assert only_sms.count("telegram") == 0 and only_sms.skipped["other_channel"] == 1

    reminders = Reminders(redis, clock())
    job = await reminders.create(election, ready, "cli:test")
    sms, tg = Outbox("sms"), Outbox("telegram")
    final = await Worker(redis, {"sms": sms, "telegram": tg}, fast_limiter(redis), TEXT_RULES).run(
        job
    )

    assert final.status == "finished"
    assert sorted(sms.addresses) == sorted(phone(i) for i in (5, 6, 7, 8, 9))
    assert tg.addresses == [chat(3)]
    assert tg.sent[0][1].text.startswith("Hi Supporter 3, ")
    assert final.outcome("sent") == 6 and final.remaining == 0


async def test_supporters_who_vote_or_opt_out_meanwhile_are_skipped(redis: Redis) -> None:
    election = await election_with_roll(redis, 6)
    reminders = Reminders(redis, clock())
    job = await reminders.create(
        election, await plan(redis, election, TEXT, rules=TEXT_RULES, clock=clock()), "t"
    )
    await mark_voted(redis, election, "S1", "telegram")
    await redis.sadd(keys.opted_out("sms"), phone(2))
    sms = Outbox("sms")
    final = await Worker(redis, {"sms": sms}, fast_limiter(redis), TEXT_RULES).run(job)
    assert sorted(sms.addresses) == sorted(phone(i) for i in (0, 3, 4, 5))
    assert final.outcome("voted") == 1 and final.outcome("opted_out") == 1


async def test_supporters_who_vote_while_waiting_for_a_turn_are_skipped(redis: Redis) -> None:
    election = await election_with_roll(redis, 3)
    reminders = Reminders(redis, clock())
    job = await reminders.create(
        election, await plan(redis, election, TEXT, rules=TEXT_RULES, clock=clock()), "t"
    )
    limiter = fast_limiter(redis)
    await limiter.pause("sms", 1.0)  # a 429 from Twilio: every turn waits
    sms = Outbox("sms")
    worker = asyncio.ensure_future(Worker(redis, {"sms": sms}, limiter, TEXT_RULES).run(job))
    await asyncio.sleep(0.3)
    assert not worker.done() and sms.addresses == []
    await mark_voted(redis, election, "S0")
    await redis.sadd(keys.opted_out("sms"), phone(1))
    final = await worker
    assert sms.addresses == [phone(2)]
    assert final.outcome("voted") == 1 and final.outcome("opted_out") == 1


async def test_platform_outcomes_are_recorded(redis: Redis) -> None:
    election = await election_with_roll(redis, 4)
    reminders = Reminders(redis, clock())
    job = await reminders.create(
        election, await plan(redis, election, TEXT, rules=TEXT_RULES, clock=clock()), "t"
    )
    answers = {phone(0): "opted_out", phone(1): "unreachable", phone(2): "failed"}
    sms = Outbox("sms", status=lambda a: answers.get(a, "sent"))
    final = await Worker(redis, {"sms": sms}, fast_limiter(redis), TEXT_RULES).run(job)
    assert {o: final.outcome(o) for o in ("sent", "opted_out", "unreachable", "failed")} == {
        "sent": 1,
        "opted_out": 1,
        "unreachable": 1,
        "failed": 1,
    }
    assert final.status == "finished"


def test_template_checks() -> None:
    assert template_problems(TEXT) == []
    assert "unknown placeholder {code}" in template_problems("Your {code}")[0]
    assert template_problems("a { b")
    assert template_problems("{name!r}")
    assert template_problems("  ")
    sms, telegram = TEXT_RULES["sms"], TEXT_RULES["telegram"]
    assert sms.dropped("Vote now \U0001f5f3\ufe0f, it\u2019s Siân\u2019s day") == ["\U0001f5f3"]
    assert sms.problem("x" * 160, 4) is None
    assert "5 segments" in (sms.problem("x" * 700, 4) or "")
    assert telegram.problem("x" * 4096, 4) is None
    assert telegram.problem("\U0001f600" * 2049, 4) is not None  # UTF-16 units


async def test_dry_run_counts_and_refuses_bad_text(redis: Redis) -> None:
    election = await election_with_roll(redis, 5, telegram=lambda i: i == 0)
    long = await plan(redis, election, "x" * 150 + " {name}", rules=TEXT_RULES, clock=clock())
    assert long.count("sms") == 4 and long.count("telegram") == 1
    assert long.sms_segments == 8 and long.max_sms_segments == 2
    emoji = await plan(redis, election, "Vote! \U0001f5f3", rules=TEXT_RULES, clock=clock())
    assert any("vanish" in p for p in emoji.problems)
    with pytest.raises(ReminderError):
        await Reminders(redis, clock()).create(election, emoji, "t")
    tg_only = await plan(
        redis, election, "Vote! \U0001f5f3", "telegram", rules=TEXT_RULES, clock=clock()
    )
    assert tg_only.problems == [] and tg_only.total == 1


async def test_two_workers_share_one_job_without_duplicates(redis: Redis, redis_url: str) -> None:
    election = await election_with_roll(redis, 300)
    job = await Reminders(redis, clock()).create(
        election, await plan(redis, election, TEXT, rules=TEXT_RULES, clock=clock()), "t"
    )
    other = client_from_url(redis_url)
    try:
        a, b = Outbox("sms"), Outbox("sms")
        wa = Worker(redis, {"sms": a}, fast_limiter(redis), TEXT_RULES, concurrency={"sms": 4})
        wb = Worker(other, {"sms": b}, fast_limiter(other), TEXT_RULES, concurrency={"sms": 4})
        await asyncio.gather(wa.run(job), wb.run(job))
    finally:
        await other.aclose()
    everyone = a.addresses + b.addresses
    assert Counter(everyone).most_common(1)[0][1] == 1
    assert sorted(everyone) == sorted(phone(i) for i in range(300))
    assert a.sent and b.sent  # both did some of the work
    final = await Reminders(redis).status(job)
    assert final.status == "finished" and final.outcome("sent") == 300


async def test_pause_then_resume_sends_the_rest_once(redis: Redis) -> None:
    election = await election_with_roll(redis, 40)
    reminders = Reminders(redis, clock())
    job = await reminders.create(
        election, await plan(redis, election, TEXT, rules=TEXT_RULES, clock=clock()), "t"
    )

    async def pause_at_ten(n: int) -> None:
        if n == 9:
            await reminders.pause(job, "cli:alice")

    sms = Outbox("sms", hook=pause_at_ten)
    paused = await Worker(
        redis, {"sms": sms}, fast_limiter(redis), TEXT_RULES, concurrency={"sms": 3}
    ).run(job)
    assert paused.status == "paused"
    first = len(sms.sent)
    assert 10 <= first <= 12  # those already on their way when it paused finish
    assert paused.claimed == 0 and paused.outcome("sent") == first

    await reminders.resume(job, "cli:alice")
    sms.hook = None
    final = await Worker(redis, {"sms": sms}, fast_limiter(redis), TEXT_RULES).run(job)
    assert final.status == "finished"
    assert sorted(sms.addresses) == sorted(phone(i) for i in range(40))
    actions = [e.action for e in await audit.read(redis, election.id)]
    assert actions[-4:] == [
        "reminder started",
        "reminder paused",
        "reminder resumed",
        "reminder finished",
    ]


async def test_cancel_stops_for_good(redis: Redis) -> None:
    election = await election_with_roll(redis, 30)
    reminders = Reminders(redis, clock())
    job = await reminders.create(
        election, await plan(redis, election, TEXT, rules=TEXT_RULES, clock=clock()), "t"
    )

    async def cancel_at_five(n: int) -> None:
        if n == 4:
            await reminders.cancel(job, "tg:100001")

    sms = Outbox("sms", hook=cancel_at_five)
    final = await Worker(
        redis, {"sms": sms}, fast_limiter(redis), TEXT_RULES, concurrency={"sms": 2}
    ).run(job)
    assert final.status == "cancelled" and len(sms.sent) <= 6
    with pytest.raises(ReminderError, match="cancelled"):
        await reminders.resume(job, "t")
    again = await Worker(redis, {"sms": sms}, fast_limiter(redis), TEXT_RULES).run(job)
    assert again.status == "cancelled" and len(sms.sent) <= 6


async def test_a_send_cut_off_midway_is_in_doubt_and_never_repeated(redis: Redis) -> None:
    election = await election_with_roll(redis, 50)
    reminders = Reminders(redis, clock())
    job = await reminders.create(
        election, await plan(redis, election, TEXT, rules=TEXT_RULES, clock=clock()), "t"
    )
    stuck = asyncio.Event()

    async def hang_on_twenty(n: int) -> None:
        if n == 19:
            stuck.set()
            await asyncio.Event().wait()  # the platform never answers

    sms = Outbox("sms", hook=hang_on_twenty)
    worker = Worker(redis, {"sms": sms}, fast_limiter(redis), TEXT_RULES, concurrency={"sms": 4})
    task = asyncio.create_task(worker.run(job))
    await asyncio.wait_for(stuck.wait(), 10)
    task.cancel()  # as a crash would: mid-call, with other claims held
    with pytest.raises(asyncio.CancelledError):
        await task
    hung = sms.sent[19][0]

    middle = await reminders.status(job)
    assert middle.outcome("in_doubt") >= 1 and middle.claimed == 0

    sms.hook = None
    final = await Worker(redis, {"sms": sms}, fast_limiter(redis), TEXT_RULES).run(job)
    assert final.status == "finished"
    counts = Counter(sms.addresses)
    assert counts.most_common(1)[0][1] == 1  # nobody twice
    doubt = await reminders.in_doubt(job)
    assert len(doubt) == final.outcome("in_doubt")
    # Nobody missed: all got it, but in-doubt ones the cancel caught before the call.
    in_doubt = {phone(int(sid[1:])) for _, sid in doubt}
    assert hung in in_doubt
    assert set(counts) | in_doubt == {phone(i) for i in range(50)}
    assert final.outcome("in_doubt") == middle.outcome("in_doubt")
    assert final.outcome("sent") + final.outcome("in_doubt") == 50

    # The organiser may choose to send the in-doubt ones again.
    assert await reminders.resend_in_doubt(job, "cli:alice") == final.outcome("in_doubt")
    await Worker(redis, {"sms": sms}, fast_limiter(redis), TEXT_RULES).run(job)
    assert Counter(sms.addresses)[hung] == 2
    assert (await reminders.status(job)).outcome("in_doubt") == 0


async def test_a_dead_workers_claims_are_taken_over(redis: Redis) -> None:
    """Claims of a worker whose heartbeat ran out: unbegun ones are sent by another."""
    election = await election_with_roll(redis, 5)
    reminders = Reminders(redis, clock())
    job = await reminders.create(
        election, await plan(redis, election, TEXT, rules=TEXT_RULES, clock=clock()), "t"
    )
    ghost = Worker(redis, {}, fast_limiter(redis), TEXT_RULES, heartbeat=0.2)
    from bot.reminders.scripts import job_keys

    keys_ = job_keys(job)
    await ghost._beat(keys=keys_, args=[ghost.id, 200, "1"])
    claimed = [await ghost._claim(keys=keys_, args=["sms", ghost.id]) for _ in range(2)]
    assert [c[0] for c in claimed] == ["ok", "ok"]
    assert await ghost._begin(keys=keys_, args=["sms", claimed[1][1], ghost.id]) == "ok"
    # The ghost dies here, holding one claim and one send in flight.
    sms = Outbox("sms")
    final = await Worker(redis, {"sms": sms}, fast_limiter(redis), TEXT_RULES, heartbeat=0.2).run(
        job
    )
    assert final.status == "finished"
    assert final.outcome("sent") == 4 and final.outcome("in_doubt") == 1
    assert len(set(sms.addresses)) == 4


async def test_job_memory_is_small(redis: Redis) -> None:
    election = await election_with_roll(redis, 5000, shards=16)
    job = await Reminders(redis, clock()).create(
        election, await plan(redis, election, TEXT, rules=TEXT_RULES, clock=clock()), "t"
    )
    used = 0
    found = [k async for k in redis.scan_iter(match=f"*{{remind/{job}}}*")]
    for key in found:
        used += int(await redis.memory_usage(key) or 0)
    assert found and used > 5000 // 2  # the list is there: at least 4 bits a recipient
    assert used < 5000 * 20  # under 20 bytes a recipient


async def test_a_finished_or_cancelled_job_expires_from_redis(redis: Redis) -> None:
    from bot.reminders import JOB_RETENTION
    from bot.reminders.scripts import job_keys

    election = await election_with_roll(redis, 3)
    reminders = Reminders(redis, clock())
    done = await reminders.create(
        election, await plan(redis, election, TEXT, rules=TEXT_RULES, clock=clock()), "t"
    )
    dropped = await reminders.create(
        election, await plan(redis, election, TEXT, rules=TEXT_RULES, clock=clock()), "t"
    )
    running = await reminders.create(
        election, await plan(redis, election, TEXT, rules=TEXT_RULES, clock=clock()), "t"
    )
    await Worker(redis, {"sms": Outbox("sms")}, fast_limiter(redis), TEXT_RULES).run(done)
    await reminders.cancel(dropped, "t")

    async def ttls(job: str) -> list[int]:
        return [await redis.ttl(k) for k in job_keys(job) if await redis.exists(k)]

    for job in (done, dropped):
        left = await ttls(job)
        assert left and all(0 < t <= JOB_RETENTION for t in left)
    assert set(await ttls(running)) == {-1}


async def test_a_worker_that_cannot_beat_stops_sending(redis: Redis) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    election = await election_with_roll(redis, 40)
    reminders = Reminders(redis, clock())
    job = await reminders.create(
        election, await plan(redis, election, TEXT, rules=TEXT_RULES, clock=clock()), "t"
    )

    async def slow(n: int) -> None:
        await asyncio.sleep(0.05)

    sms = Outbox("sms", hook=slow)
    worker = Worker(
        redis, {"sms": sms}, fast_limiter(redis), TEXT_RULES, heartbeat=0.3, outage_limit=1.0
    )
    real_beat = worker._beat
    beats = 0

    async def failing_beat(keys: list[str], args: list[object]) -> Any:
        nonlocal beats
        beats += 1
        if beats > 1 and args[2] == "1":  # every beat after the first; leaving still works
            raise RedisConnectionError("Redis went away")
        return await real_beat(keys=keys, args=args)  # type: ignore[arg-type]

    worker._beat = failing_beat  # type: ignore[assignment]
    with pytest.raises(ReminderError, match="no heartbeat"):
        await worker.run(job)
    stopped_at = len(sms.sent)
    assert 0 < stopped_at < 40
    await asyncio.sleep(0.2)
    assert len(sms.sent) == stopped_at
    # Another worker finishes the job; nobody gets two.
    final = await Worker(redis, {"sms": sms}, fast_limiter(redis), TEXT_RULES).run(job)
    assert final.status == "finished"
    assert Counter(sms.addresses).most_common(1)[0][1] == 1


async def test_work_put_back_by_a_departing_worker_is_taken_up(redis: Redis) -> None:
    from bot.reminders.scripts import job_keys

    election = await election_with_roll(redis, 5)
    reminders = Reminders(redis, clock())
    job = await reminders.create(
        election, await plan(redis, election, TEXT, rules=TEXT_RULES, clock=clock()), "t"
    )
    keys_ = job_keys(job)
    # Another worker, alive, claims two recipients and then leaves without sending them.
    ghost = Worker(redis, {}, fast_limiter(redis), TEXT_RULES, heartbeat=5.0)
    await ghost._beat(keys=keys_, args=[ghost.id, 5000, "1"])
    for _ in range(2):
        assert (await ghost._claim(keys=keys_, args=["sms", ghost.id]))[0] == "ok"

    class Unlucky(Worker):
        """The ghost leaves just as our drains run dry, before we look for held claims."""

        looks = 0

        async def _recover_dead(
            self, job: str, election_id: str, keys_: list[str]
        ) -> tuple[int, int]:
            Unlucky.looks += 1
            if Unlucky.looks == 2:  # the first look after the drains
                await ghost._leave(job, election_id, keys_)  # its claims go back
            return await super()._recover_dead(job, election_id, keys_)

    sms = Outbox("sms")
    final = await asyncio.wait_for(
        Unlucky(redis, {"sms": sms}, fast_limiter(redis), TEXT_RULES).run(job), 10
    )
    assert final.status == "finished" and final.outcome("sent") == 5
    assert sorted(sms.addresses) == sorted(phone(i) for i in range(5))
