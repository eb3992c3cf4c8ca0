"""Every rule codes follow, on a clock the tests control."""

from __future__ import annotations

import csv
import io

from redis.asyncio import Redis

from ballots import keys
from ballots.clock import ManualClock
from ballots.codes import CodePolicy, Codes, normalise_code
from ballots.codes_file import write_codes_csv
from ballots.election import Election
from tests.factories import NOW, SECRET, sample_election


async def setup(redis: Redis) -> tuple[Election, Codes, ManualClock]:
    clock = ManualClock(NOW)
    election = await sample_election(redis)
    return election, Codes(redis, SECRET, clock), clock


async def everything_stored(redis: Redis) -> str:
    """Every key and value in Redis, as one string to search."""
    parts: list[object] = []
    async for key in redis.scan_iter(count=1000):
        parts.append(key)
        kind = await redis.type(key)
        if kind == "hash":
            for f, v in (await redis.hgetall(key)).items():
                parts += [f, v]
        elif kind == "set":
            parts += list(await redis.smembers(key))
        elif kind == "zset":
            parts += list(await redis.zrange(key, 0, -1))
        elif kind == "string":
            parts.append(await redis.get(key))
        elif kind == "stream":
            parts.append(await redis.xrange(key))
    return "\n".join(str(p) for p in parts)


async def test_voting_codes_are_stored_only_as_keyed_hashes(redis: Redis) -> None:
    election, codes, _ = await setup(redis)
    rows = await codes.issue_voting_codes(election)
    assert len(rows) == 6
    out = io.StringIO()
    assert write_codes_csv(rows, out) == 6
    parsed = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(parsed[0]) == ["supporter_id", "name", "phone", "code"]
    stored = await everything_stored(redis)
    for row in rows:
        digits = normalise_code(row[3])
        assert len(digits) == 16
        assert digits not in stored and row[3] not in stored
    assert len({r[3] for r in rows}) == 6


async def test_a_voting_code_opens_only_its_own_supporter(redis: Redis) -> None:
    election, codes, _ = await setup(redis)
    rows = {r[0]: r[3] for r in await codes.issue_voting_codes(election)}
    check = await codes.check_voting_code(election, rows["S1002"], "sms", "+447700900101")
    assert check.ok and check.supporter_id == "S1002" and check.grant


async def test_typed_codes_are_forgiving(redis: Redis) -> None:
    election, codes, _ = await setup(redis)
    code = (await codes.issue_voting_codes(election, ["S1001"]))[0][3]
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else " " for c in code)
    check = await codes.check_voting_code(election, fullwidth, "console", "a")
    assert check.ok


async def test_reissuing_replaces_the_old_code(redis: Redis) -> None:
    election, codes, _ = await setup(redis)
    old = (await codes.issue_voting_codes(election, ["S1001"]))[0][3]
    new = (await codes.issue_voting_codes(election, ["S1001"]))[0][3]
    assert (await codes.check_voting_code(election, old, "console", "a")).status == "wrong"
    assert (await codes.check_voting_code(election, new, "console", "a")).ok


async def test_wrong_voting_codes_lock_the_address(redis: Redis) -> None:
    election, codes, clock = await setup(redis)
    code = (await codes.issue_voting_codes(election, ["S1001"]))[0][3]
    limit = codes.policy.address_max_failures
    for i in range(limit):
        result = await codes.check_voting_code(election, f"{i:012d}", "sms", "+447700900999")
        assert result.status in ("wrong", "locked")
    # Even the right code is refused from a locked address...
    assert (
        await codes.check_voting_code(election, code, "sms", "+447700900999")
    ).status == "locked"
    # ...but not from another one, and the lock lifts after the window (Redis expires it).
    assert (await codes.check_voting_code(election, code, "sms", "+447700900998")).ok
    lock = keys.address_failures(election.id, "sms", "+447700900999")
    assert 0 < await redis.ttl(lock) <= codes.policy.address_window
    await redis.delete(lock)  # as Redis will when the window ends
    assert (await codes.check_voting_code(election, code, "sms", "+447700900999")).ok
    del clock


async def test_sms_code_is_six_digits_single_use_and_expires(redis: Redis) -> None:
    election, codes, clock = await setup(redis)
    sent = await codes.request_otp(election, "S1001")
    assert sent.status == "sent" and sent.code is not None and len(sent.code) == 6
    stored = await everything_stored(redis)
    assert sent.code not in stored
    first = await codes.check_otp(election, "S1001", sent.code)
    assert first.ok
    again = await codes.check_otp(election, "S1001", sent.code)
    assert again.status == "nocode"

    clock.advance(61)
    late = await codes.request_otp(election, "S1001")
    assert late.code is not None
    clock.advance(600)
    assert (await codes.check_otp(election, "S1001", late.code)).status == "expired"


async def test_a_repeated_delivery_gets_the_same_answer_and_nobody_else_does(
    redis: Redis,
) -> None:
    """A message handled, then lost before its answer was saved, is handled again."""
    election, codes, _ = await setup(redis)
    asked = await codes.request_otp(election, "S1001", "sms:SM1")
    # Its answer (with the code) never went out; Twilio sends the same message again,
    # and the cooldown does not stand in the way: the same code goes out again.
    again = await codes.request_otp(election, "S1001", "sms:SM1")
    assert (asked.status, again.status) == ("sent", "sent")
    assert asked.code is not None and asked.code == again.code
    # Another message within the cooldown gets no code.
    assert (await codes.request_otp(election, "S1001", "sms:SM3")).status == "cooldown"

    first = await codes.check_otp(election, "S1001", again.code, "sms:SM4")
    repeat = await codes.check_otp(election, "S1001", again.code, "sms:SM4")
    assert first.ok and repeat.ok and repeat.grant != first.grant
    # The code is spent for any other message.
    assert (await codes.check_otp(election, "S1001", again.code, "sms:SM5")).status == "nocode"
    assert (await codes.check_otp(election, "S1001", again.code)).status == "nocode"


async def test_asking_again_while_a_code_is_valid_sends_the_same_code(redis: Redis) -> None:
    election, codes, clock = await setup(redis)
    first = await codes.request_otp(election, "S1001")
    clock.advance(61)
    second = await codes.request_otp(election, "S1001")
    assert second.status == "sent" and second.code == first.code
    assert first.code is not None
    assert (await codes.check_otp(election, "S1001", first.code)).ok
    clock.advance(61)
    third = await codes.request_otp(election, "S1001")
    assert third.code is not None and third.code != first.code


async def test_nobody_can_lock_a_voter_out_knowing_only_their_supporter_number(
    redis: Redis,
) -> None:
    """Attackers ask for the voter's SMS code from their own chats and guess it wrong,
    past the voter-wide limit: the voter's own phone and posted voting code still work."""
    election, codes, clock = await setup(redis)
    [(_, _, _, voting_code)] = await codes.issue_voting_codes(election, ["S1001"])
    own = codes.asker(election, "sms", "+447700900101")
    for n in range(40):
        attacker = codes.asker(election, "telegram", str(900_000 + n))
        asked = await codes.request_otp(election, "S1001", asker=attacker)
        if asked.status != "sent":
            clock.advance(3600)  # the voter-wide send window for other chats
            continue
        for _ in range(5):
            await codes.check_otp(election, "S1001", "000000", asker=attacker)
        clock.advance(61)
    vkey = keys.voter(election.id, keys.shard_of("S1001", election.shards), "S1001")
    assert int(await redis.hget(vkey, "fails") or 0) >= codes.policy.voter_max_failures
    # Other chats are refused now ...
    other = codes.asker(election, "telegram", "123")
    assert (await codes.request_otp(election, "S1001", asker=other)).status == "locked"
    # (an SMS from a number that is not the voter's on the roll is "another chat" too)
    stranger = await codes.request_otp(election, "S1001", asker=other, sms_from="+447700900999")
    assert stranger.status == "locked"
    # ... but the voter's own phone gets a code, and it works,
    mine = await codes.request_otp(election, "S1001", asker=own, sms_from="+447700900101")
    assert mine.status == "sent" and mine.code is not None
    assert (
        await codes.check_otp(election, "S1001", mine.code, asker=own, sms_from="+447700900101")
    ).ok
    # and so does the posted voting code, from anywhere.
    check = await codes.check_voting_code(election, voting_code, "telegram", "555")
    assert check.ok


async def test_another_chats_guesses_never_spend_the_voters_own_code(redis: Redis) -> None:
    election, codes, _ = await setup(redis)
    own = codes.asker(election, "sms", "+447700900101")
    mine = await codes.request_otp(election, "S1001", asker=own, sms_from="+447700900101")
    assert mine.code is not None
    attacker = codes.asker(election, "telegram", "900001")
    assert (await codes.request_otp(election, "S1001", asker=attacker)).status == "sent"
    statuses = [
        (await codes.check_otp(election, "S1001", mine.code, asker=attacker)).status
        for _ in range(5)
    ]
    # The attacker's chat has a code of its own: even the voter's right code is wrong there.
    assert statuses == ["wrong", "wrong", "wrong", "wrong", "spent"]
    assert (
        await codes.check_otp(election, "S1001", mine.code, asker=own, sms_from="+447700900101")
    ).ok


async def test_five_wrong_tries_spend_an_sms_code(redis: Redis) -> None:
    election, codes, _ = await setup(redis)
    sent = await codes.request_otp(election, "S1001")
    assert sent.code is not None
    wrong = f"{(int(sent.code) + 1) % 10**6:06d}"
    statuses = [(await codes.check_otp(election, "S1001", wrong)).status for _ in range(5)]
    assert statuses == ["wrong", "wrong", "wrong", "wrong", "spent"]
    assert (await codes.check_otp(election, "S1001", sent.code)).status == "nocode"


async def test_the_own_phone_asking_again_gets_the_same_code_again(redis: Redis) -> None:
    """Its first answer may have been lost (a crash, a failover): waiting out the
    cooldown would leave the voter with nothing; another chat still waits."""
    election, codes, _ = await setup(redis)
    own = "+447700900101"  # S1001's phone on the roll
    first = await codes.request_otp(election, "S1001", "sms:SM1", sms_from=own)
    again = await codes.request_otp(election, "S1001", "sms:SM2", sms_from=own)
    assert (first.status, again.status) == ("sent", "sent") and first.code == again.code
    other = await codes.request_otp(election, "S1001", "sms:SM3")
    assert other.status == "cooldown"


async def test_new_code_has_a_cooldown_and_never_resets_failures(redis: Redis) -> None:
    election, codes, clock = await setup(redis)
    sent = await codes.request_otp(election, "S1001")
    assert sent.code is not None
    cooling = await codes.request_otp(election, "S1001")
    assert cooling.status == "cooldown" and 0 < cooling.wait <= 60
    wrong = f"{(int(sent.code) + 1) % 10**6:06d}"
    await codes.check_otp(election, "S1001", wrong)
    await codes.check_otp(election, "S1001", wrong)
    clock.advance(60)
    assert (await codes.request_otp(election, "S1001")).status == "sent"
    vkey = keys.voter(election.id, keys.shard_of("S1001", election.shards), "S1001")
    assert await redis.hget(vkey, "fails") == "2"


async def test_a_voter_may_fail_at_most_100_times(redis: Redis) -> None:
    clock = ManualClock(NOW)
    election = await sample_election(redis)
    codes = Codes(redis, SECRET, clock, CodePolicy(otp_max_sends=1000))
    right = (await codes.issue_voting_codes(election, ["S1001"]))[0][3]
    failures = 0
    while True:
        sent = await codes.request_otp(election, "S1001")
        if sent.status == "locked":
            break
        assert sent.code is not None
        wrong = f"{(int(sent.code) + 1) % 10**6:06d}"
        for _ in range(5):
            result = await codes.check_otp(election, "S1001", wrong)
            if result.status == "locked":
                break
            failures += 1
        clock.advance(61)
        if result.status == "locked":
            break
    assert failures == 100
    # No new code for other chats; the posted voting code still works (it is a secret
    # of its own, and guesses at it are limited per address).
    clock.advance(61)
    assert (await codes.request_otp(election, "S1001")).status == "locked"
    assert (await codes.check_voting_code(election, right, "console", "fresh")).ok


async def test_codes_sent_are_capped_per_hour(redis: Redis) -> None:
    election, codes, clock = await setup(redis)
    statuses = []
    for _ in range(codes.policy.otp_max_sends + 1):
        statuses.append((await codes.request_otp(election, "S1001")).status)
        clock.advance(61)
    assert statuses[-1] == "too_many" and statuses.count("sent") == codes.policy.otp_max_sends
    refused = await codes.request_otp(election, "S1001")
    assert refused.status == "too_many" and 0 < refused.wait <= 3600
    # Nobody can use up a voter's codes for good: the window rolls on.
    clock.advance(refused.wait)
    assert (await codes.request_otp(election, "S1001")).status == "sent"


async def test_constant_time_compare_in_lua(redis: Redis) -> None:
    from ballots.lua import CONSTANT_TIME_EQUAL

    script = redis.register_script(
        CONSTANT_TIME_EQUAL + "return ct_equal(ARGV[1], ARGV[2]) and 1 or 0"
    )
    assert await script(args=["abc", "abc"]) == 1
    assert await script(args=["abc", "abd"]) == 0
    assert await script(args=["abc", "abcd"]) == 0
    assert await script(args=["", ""]) == 1


async def test_past_the_hourly_guess_budget_every_chat_tries_once_in_ten_minutes(
    redis: Redis,
) -> None:
    election, _, clock = await setup(redis)
    codes = Codes(redis, SECRET, clock, CodePolicy(guess_budget_per_hour=5))
    [(_, _, _, right)] = await codes.issue_voting_codes(election, ["S1001"])
    wrong = "1111-2222-3333-4444"
    checks = [await codes.check_voting_code(election, wrong, "telegram", str(n)) for n in range(6)]
    assert [c.status for c in checks] == ["wrong"] * 6
    # The wrong guess that passed the budget is the one to alert organisers about.
    assert [c.budget_exceeded for c in checks] == [False] * 5 + [True]
    # Now each chat gets one try per ten minutes ...
    assert (await codes.check_voting_code(election, wrong, "telegram", "77")).status == "wrong"
    slowed = await codes.check_voting_code(election, wrong, "telegram", "77")
    assert slowed.status == "slowed" and 0 < slowed.tries_left <= 600
    # ... which a voter typing their own code right the first time never notices.
    assert (await codes.check_voting_code(election, right, "sms", "+447700900101")).ok
    # The next hour the budget starts again.
    clock.advance(3600)
    assert (await codes.check_voting_code(election, wrong, "telegram", "77")).status == "wrong"


def test_names_a_spreadsheet_would_run_as_formulas_are_neutralised() -> None:
    rows = [
        ("S1", '=HYPERLINK("http://evil.example","Click")', "+447700900101", "1234-5678"),
        ("S2", "+SUM(A1)", "+447700900102", "2345-6789"),
        ("S3", "-2+3", "+447700900103", "3456-7890"),
        ("S4", "@cmd", "+447700900104", "4567-8901"),
        ("S5", "Ann Hughes", "+447700900105", "5678-9012"),
    ]
    out = io.StringIO()
    write_codes_csv(rows, out)
    names = [r["name"] for r in csv.DictReader(io.StringIO(out.getvalue()))]
    assert names == [
        '\'=HYPERLINK("http://evil.example","Click")',
        "'+SUM(A1)",
        "'-2+3",
        "'@cmd",
        "Ann Hughes",
    ]
    phones = [r["phone"] for r in csv.DictReader(io.StringIO(out.getvalue()))]
    assert phones[0] == "+447700900101"  # ours, E.164: left as it is
