"""``openprimary backup`` and ``restore``: one election, taken mid-poll, put back in another
Redis, with no chat state and no unsealed ranking in the file, and refused when it should be."""

from __future__ import annotations

import asyncio
import io
import json
import stat
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from ballots import audit, keys
from ballots.backup_file import BackupFileError, open_backup, read_key, seal_backup
from ballots.clock import ManualClock
from ballots.connection import client_from_url, close_client
from ballots.count.redis_source import count_election, read_college
from ballots.election import get_election
from ballots.errors import UnknownElection
from ballots.receipts import all_receipts
from ballots.roll import Supporter
from ballots.seal import encode_ranking, seal
from ballots.turnout import turnout
from ballots.unseal import UnsealRefused, require_unsealed, unseal
from bot import backup, results
from bot.backup import BackupRefused
from bot.reach import Reach
from bot.reminders import Reminders, plan
from bot.spend import SmsSpend
from channels.rules import TEXT_RULES
from openprimary.app import build_core
from openprimary.cli import build_parser
from openprimary.context import Context
from tests.factories import TEST_PUBLIC, TEST_SEED, Harness, Outbox, harness, put_sealed, settings
from tests.redis_server import private_server
from tests.replication import cluster, cluster_url

PARSER = build_parser()

#: Twelve supporters over three shards; names and phones to look for in the file's bytes.
ROLL = [
    Supporter(
        f"S{i}",
        f"Quillon Wexford-{i:02d}",
        f"+447700900{300 + i}",
        telegram_id=str(700_000 + i) if i % 3 == 0 else "",
    )
    for i in range(12)
]
#: What the voters before the backup cast (the sample election's candidates: 1 green,
#: 2 patel, 3 okafor, 4 byrne).
BEFORE = {"S0": "2 1", "S1": "1", "S2": "3 4 1", "S3": "2 1", "S4": "4"}
RANKINGS = {"2 1": "patel,green", "1": "green", "3 4 1": "okafor,byrne,green", "4": "byrne"}


@pytest.fixture
async def other() -> AsyncIterator[Redis]:
    """A second private redis-server, which has never seen any election."""
    with private_server() as (url, _):
        client = client_from_url(url)
        try:
            yield client
        finally:
            await client.aclose()


async def run(redis: Redis, clock: ManualClock, *argv: str) -> tuple[int, str, str]:
    """Run the real command's handler on ``redis``: status, output, errors."""
    ctx = Context(
        settings=settings(),
        redis=redis,
        clock=clock,
        out=io.StringIO(),
        err=io.StringIO(),
        actor="test",
    )
    args = PARSER.parse_args(argv)
    status = await args.handler(args, ctx)
    assert isinstance(ctx.out, io.StringIO) and isinstance(ctx.err, io.StringIO)
    return status, ctx.out.getvalue(), ctx.err.getvalue()


async def everything(redis: Redis) -> dict[str, Any]:
    """Every key in Redis, with its contents (DUMP) and whether it expires: to compare."""
    found: dict[str, Any] = {}
    async for key in redis.scan_iter(count=1000):
        found[str(key)] = (await redis.dump(key), await redis.pttl(key) > 0)
    return found


async def vote(h: Harness, sid: str, ranking: str, code: str | None = None) -> str:
    """Vote through the conversation with a voting code; the reply to YES."""
    if code is None:
        code = (await h.core.codes.issue_voting_codes(h.core.election, [sid]))[0][3]
    chat = {"channel": "console", "address": f"chat-{sid}"}
    await h.said("hi", **chat)
    await h.said(code, **chat)
    if "YES" not in await h.said(ranking, **chat):
        await h.said("0", **chat)  # no more preferences
    return await h.said("YES", **chat)


async def keypair(tmp_path: Path, clock: ManualClock, redis: Redis, name: str = "org") -> Path:
    path = tmp_path / f"{name}.key"
    status, out, _ = await run(redis, clock, "backup", "--new-key", str(path))
    assert status == 0 and read_key(path).fingerprint in out
    return path


async def box(redis: Redis, eid: str, shards: int) -> Counter[str]:
    merged: Counter[str] = Counter()
    for shard in range(shards):
        async for ranking, n in redis.zscan_iter(keys.ballots(eid, shard)):
            merged[str(ranking)] += int(n)
    return merged


async def test_a_backup_mid_poll_restores_into_an_empty_redis_and_votes_on_there(
    redis: Redis, other: Redis, tmp_path: Path
) -> None:
    h = await harness(redis, roll=ROLL, shards=3)
    election, eid = h.core.election, h.core.election.id
    receipts = {}
    for sid, ranking in BEFORE.items():
        assert "Vote cast" in await vote(h, sid, ranking)
    # S5 is half-way through ranking (a chat state holds the grant and a first choice);
    # S6 has a code and has not used it yet; S7 asked for no more reminders.
    s5, s6 = [row[3] for row in await h.core.codes.issue_voting_codes(election, ["S5", "S6"])]
    await h.said("hi", channel="console", address="chat-S5")
    await h.said(s5, channel="console", address="chat-S5")
    await h.said("3", channel="console", address="chat-S5")
    await Reach(redis).opt_out("sms", ROLL[7].phone)
    reminders = Reminders(redis, h.clock)
    ready = await plan(redis, election, "Hi {name}, vote!", rules=TEXT_RULES, clock=h.clock)
    job = await reminders.create(election, ready, "test")
    # Its progress (4 bits a recipient) is binary: it goes whole through the backup.
    await redis.setrange(keys.reminder_progress(job, "sms"), 0, b"\xf1\x00\x9c")
    for sid in BEFORE:
        found = await h.core.box.receipt(election, sid)
        assert found is not None
        receipts[sid] = found.id

    key = await keypair(tmp_path, h.clock, redis)
    out_file = tmp_path / "riverside.backup"
    status, out, _ = await run(
        redis, h.clock, "backup", "--election", eid, "--out", str(out_file), "--key", f"{key}.pub"
    )
    assert status == 0 and "12 supporters, 5 sealed ballots, 1 reminder job(s)" in out
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o600
    assert (await audit.read(redis, eid))[-1].action == "backup taken"

    status, out, _ = await run(other, h.clock, "restore", str(out_file), "--key", str(key))
    assert status == 0 and "12 supporters, 5 sealed ballots" in out
    assert f"reminder job {job} was running: it is paused" in out
    assert await turnout(other, election) == await turnout(redis, election)
    assert await all_receipts(other, election) == sorted(receipts.values())
    assert (await Reminders(other, h.clock).status(job)).status == "paused"
    progress = keys.reminder_progress(job, "sms")
    assert await other.dump(progress) == await redis.dump(progress)
    assert await Reach(other).check("sms", ROLL[7].phone) == (True, False)
    assert not [k async for k in other.scan_iter(match="*{chat/*")]  # no chat state came
    trail = await audit.read(other, eid)
    assert [e.action for e in trail][-2:] == ["reminder started", "election restored"]

    # On the restored Redis: the same receipts are given again, S6's code works, S5 starts
    # afresh with their code, and S0 cannot vote a second time.
    there = Harness(
        await build_core(settings(), other, h.clock, eid, senders={"sms": Outbox("sms")}),
        h.clock,
        Outbox("sms"),
    )
    again = await there.said("hi", channel="sms", address=ROLL[0].phone)
    assert "already been cast" in again and receipts["S0"] in again
    assert await there.core.codes.issue_voting_codes(election, ["S0"]) == []  # voted: none
    assert "Vote cast" in await vote(there, "S6", "3", code=s6)
    assert "Vote cast" in await vote(there, "S5", "3 2", code=s5)
    assert (await turnout(other, election)).voted == 7

    # After the close both are unsealed with the trustees' key: the restored box is the
    # original's and the two votes cast on it, each once.
    h.clock.set(election.closes + timedelta(minutes=1))
    await unseal(redis, election, TEST_SEED, h.clock, actor="trustees")
    await unseal(other, election, TEST_SEED, h.clock, actor="trustees")
    original = await box(redis, eid, 3)
    assert original == Counter(RANKINGS[r] for r in BEFORE.values())
    assert await box(other, eid, 3) == original + Counter({"okafor": 1, "okafor,patel": 1})
    await h.core.stop_background()
    await there.core.stop_background()


async def test_the_file_holds_no_ranking_no_chat_state_and_is_unreadable_without_the_key(
    redis: Redis, other: Redis, tmp_path: Path
) -> None:
    h = await harness(redis, roll=ROLL, shards=3)
    election, eid = h.core.election, h.core.election.id
    for sid, ranking in BEFORE.items():
        assert "Vote cast" in await vote(h, sid, ranking)
    code = (await h.core.codes.issue_voting_codes(election, ["S5"]))[0][3]
    await h.said("hi", channel="console", address="chat-S5")
    await h.said(code, channel="console", address="chat-S5")
    await h.said("2 1", channel="console", address="chat-S5")  # the ballot, to confirm
    # After the close the ballots are unsealed and the results published: the box, the
    # unseal's figures and the results are in Redis, and none of them goes in a backup.
    h.clock.set(election.closes + timedelta(minutes=1))
    await unseal(redis, election, TEST_SEED, h.clock, actor="trustees")
    await results.publish(redis, election, h.clock, "organiser")
    assert await box(redis, eid, 3) and [k async for k in redis.scan_iter(match="*{chat/*:conv")]

    key = await keypair(tmp_path, h.clock, redis)
    out_file = tmp_path / "riverside.backup"
    status, out, _ = await run(
        redis, h.clock, "backup", "--election", eid, "--out", str(out_file), "--key", f"{key}.pub"
    )
    assert status == 0 and "nor the unsealed ballot box" in out

    raw = out_file.read_bytes()
    for person in ROLL:
        for shown in (person.name, person.phone, person.phone[3:], person.supporter_id + '"'):
            assert shown.encode() not in raw, shown
    assert b"patel" not in raw and b"Riverside" not in raw

    _, payload = open_backup(raw, str(out_file), read_key(key))
    text = json.dumps(payload)
    assert ROLL[3].name in text  # it is the election's backup: the roll is in it
    names = [item[0] for item in payload["records"]]
    assert not [n for n in names if n.endswith((":ballots", ":unsealing", ":published"))]
    assert not [n for n in names if "{chat/" in n or ":conv" in n or ":seen:" in n]
    assert not [n for n in names if ":fail:" in n or ":code-sms:" in n]
    for ranking in RANKINGS.values():
        assert f'"{ranking}"' not in text and f":{ranking}" not in text, ranking
    # Beyond the election's definition and the audit trail (which names the winners that
    # were published), no candidate is named anywhere: no ranking, no count.
    named = (keys.election(eid), keys.audit(eid))
    rest = json.dumps([item for item in payload["records"] if item[0] not in named])
    assert not [c for c in election.candidate_ids if c in rest]
    unsealing = next(item for item in payload["records"] if item[0] == keys.unsealing(eid))
    assert set(unsealing[3]) == {"started"}

    # Restored, the election is sealed again: no count before the trustees unseal it, and
    # then the box is the same.
    status, out, _ = await run(other, h.clock, "restore", str(out_file), "--key", str(key))
    assert "the trustees unseal it again" in out and "publishes the results again" in out
    with pytest.raises(UnsealRefused, match="sealed until the trustees unseal"):
        await require_unsealed(other, election, "count")
    await unseal(other, election, TEST_SEED, h.clock, actor="trustees")
    assert await box(other, eid, 3) == await box(redis, eid, 3)
    assert (await count_election(other, election)).winners == (
        await count_election(redis, election)
    ).winners
    await h.core.stop_background()


async def test_a_wrong_key_a_changed_file_or_a_live_election_is_refused_and_nothing_changes(
    redis: Redis, other: Redis, tmp_path: Path
) -> None:
    h = await harness(redis, roll=ROLL, shards=3)
    eid = h.core.election.id
    for sid, ranking in list(BEFORE.items())[:3]:
        assert "Vote cast" in await vote(h, sid, ranking)
    key = await keypair(tmp_path, h.clock, redis)
    stranger = await keypair(tmp_path, h.clock, redis, "stranger")
    out_file = tmp_path / "riverside.backup"
    await run(
        redis, h.clock, "backup", "--election", eid, "--out", str(out_file), "--key", str(key)
    )
    raw = out_file.read_bytes()
    header_end = raw.index(b"\n", len(b"openprimary-backup\n")) + 1

    def altered(at: int) -> Path:
        bad = bytearray(raw)
        bad[at] ^= 0x01
        path = tmp_path / f"altered-{at}.backup"
        path.write_bytes(bytes(bad))
        return path

    header_digit = raw.index(b'"taken": "') + len('"taken": "2')
    cases: list[tuple[list[str], type[Exception], str]] = [
        ([str(out_file), "--key", str(stranger)], BackupFileError, "made for backup key"),
        ([str(out_file), "--key", f"{key}.pub"], BackupFileError, "restoring needs the private"),
        ([str(altered(len(raw) - 5)), "--key", str(key)], BackupFileError, "has been changed"),
        ([str(altered(header_end + 100)), "--key", str(key)], BackupFileError, "has been changed"),
        ([str(altered(header_digit)), "--key", str(key)], BackupFileError, "has been changed"),
        ([str(altered(3)), "--key", str(key)], BackupFileError, "not an OpenPrimary backup"),
    ]
    short = tmp_path / "short.backup"
    short.write_bytes(raw[: len(raw) // 2])
    cases.append(([str(short), "--key", str(key)], BackupFileError, "has been changed"))
    for target in (other, redis):
        before = await everything(target)
        for argv, error, reason in cases:
            with pytest.raises(error, match=reason) as caught:
                await run(target, h.clock, "restore", *argv)
            assert str(caught.value).split(":")[0] in (argv[0], argv[2])  # FILE: reason
            assert await everything(target) == before, argv
    # The file is sound, but the election is live here: refused without --force.
    before = await everything(redis)
    with pytest.raises(BackupRefused, match=f"election {eid} is in this Redis already"):
        await run(redis, h.clock, "restore", str(out_file), "--key", str(key))
    assert await everything(redis) == before
    # A key is never overwritten, and a backup never replaces a file.
    with pytest.raises(BackupFileError, match="already exists"):
        await run(redis, h.clock, "backup", "--new-key", str(key))
    with pytest.raises(BackupFileError, match="already exists"):
        await run(
            redis, h.clock, "backup", "--election", eid, "--out", str(out_file), "--key", str(key)
        )
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    await h.core.stop_background()


async def test_force_replaces_the_live_election_wholly_and_a_rerun_finishes_a_failed_restore(
    redis: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = await harness(redis, roll=ROLL, shards=3)
    election, eid = h.core.election, h.core.election.id
    for sid, ranking in list(BEFORE.items())[:3]:
        assert "Vote cast" in await vote(h, sid, ranking)
    whole = SmsSpend.deployment(redis, 0)
    spend = SmsSpend(redis, eid, 0, whole=whole)
    await spend.count(5)
    key = await keypair(tmp_path, h.clock, redis)
    out_file = tmp_path / "riverside.backup"
    await run(
        redis, h.clock, "backup", "--election", eid, "--out", str(out_file), "--key", str(key)
    )
    at_backup = await turnout(redis, election)
    # After the backup: another vote, SMS sent, and a chat half-way.
    assert "Vote cast" in await vote(h, "S9", "1")
    await spend.count(3)
    code = (await h.core.codes.issue_voting_codes(election, ["S10"]))[0][3]
    await h.said("hi", channel="console", address="chat-S10")
    await h.said(code, channel="console", address="chat-S10")
    later = tmp_path / "later.backup"
    await run(redis, h.clock, "backup", "--election", eid, "--out", str(later), "--key", str(key))

    # The restore fails after its first shard: the election cannot be loaded, nothing can
    # be cast in it, and the restore's mark says what was under way.
    real = backup._write_shard
    calls = 0

    async def failing(redis: Redis, snapshot: backup.Snapshot, shard: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ConnectionError("Redis went away")
        await real(redis, snapshot, shard)

    monkeypatch.setattr(backup, "_write_shard", failing)
    with pytest.raises(ConnectionError):
        await run(redis, h.clock, "restore", str(out_file), "--key", str(key), "--force")
    with pytest.raises(UnknownElection):
        await get_election(redis, eid)
    assert await redis.hget(keys.restoring(eid), "file") == str(out_file)
    voted = list(BEFORE)[:3]
    first = next(
        s for s in ROLL if keys.shard_of(s.supporter_id, 3) == 0 and s.supporter_id not in voted
    )
    assert await redis.exists(keys.voter(eid, 0, first.supporter_id))  # shard 0 is written
    code = (await h.core.codes.issue_voting_codes(election, [first.supporter_id]))[0][3]
    check = await h.core.codes.check_voting_code(election, code, "console", "chat-x")
    assert check.grant
    cast = await h.core.box.cast(election, first.supporter_id, check.grant, ["green"], "console")
    assert cast.status == "closed"
    monkeypatch.setattr(backup, "_write_shard", real)
    # Another backup does not take over the unfinished restore without --force.
    before = await everything(redis)
    with pytest.raises(BackupRefused, match=r"from another backup .* did not finish"):
        await run(redis, h.clock, "restore", str(later), "--key", str(key))
    assert await everything(redis) == before
    # Running the same restore again finishes it (no --force needed).
    status, out, _ = await run(redis, h.clock, "restore", str(out_file), "--key", str(key))
    assert status == 0 and "finishing the restore that did not" in out
    assert "the election that was here is replaced" in out
    assert not await redis.exists(keys.restoring(eid))
    assert await turnout(redis, election) == at_backup
    assert (await redis.get(keys.sms_segments(eid)), await whole.spent()) == ("5", 5)
    assert not [k async for k in redis.scan_iter(match="*chat-S10*conv")]
    assert await h.core.box.has_voted(election, "S9") is False
    actions = [e.action for e in await audit.read(redis, eid)]
    assert actions[-2:] == ["backup taken", "election restored"]

    # And --force over a whole, live election: the same again.
    assert "Vote cast" in await vote(h, "S9", "1")
    status, out, _ = await run(
        redis, h.clock, "restore", str(out_file), "--key", str(key), "--force"
    )
    assert status == 0 and "the election that was here is replaced" in out
    assert await turnout(redis, election) == at_backup
    await h.core.stop_background()


SECTIONS = (("members", Fraction(1, 2)), ("affiliates", Fraction(1, 2)))
COLLEGE = [
    Supporter(f"M{i}", f"Member Ystwyth {i}", f"+4477009004{i:02d}", section="members")
    for i in range(6)
] + [
    Supporter(f"A{i}", f"Affiliate Ystwyth {i}", f"+4477009005{i:02d}", section="affiliates")
    for i in range(9)
]


async def test_an_electoral_college_round_trips_with_its_sections(
    redis: Redis, other: Redis, tmp_path: Path
) -> None:
    h = await harness(redis, roll=COLLEGE, sections=SECTIONS, min_section_ballots=2, shards=2)
    election, eid = h.core.election, h.core.election.id
    for i in range(4):
        assert "Vote cast" in await vote(h, f"M{i}", "1" if i < 3 else "2")
    for i in range(5):
        assert "Vote cast" in await vote(h, f"A{i}", "2 1")
    key = await keypair(tmp_path, h.clock, redis)
    out_file = tmp_path / "college.backup"
    await run(
        redis, h.clock, "backup", "--election", eid, "--out", str(out_file), "--key", str(key)
    )
    status, _, _ = await run(other, h.clock, "restore", str(out_file), "--key", str(key))
    assert status == 0

    there, here = await turnout(other, election), await turnout(redis, election)
    assert there == here
    assert there.eligible_by_section == {"members": 6, "affiliates": 9}
    assert there.by_section == {"members": 4, "affiliates": 5}
    for shard in range(2):
        sealed = await other.zrange(keys.sealed(eid, shard), 0, -1)
        assert sealed == await redis.zrange(keys.sealed(eid, shard), 0, -1)
        assert all(str(m).split(":")[0] in ("members", "affiliates") for m in sealed)

    h.clock.set(election.closes + timedelta(minutes=1))
    await unseal(redis, election, TEST_SEED, h.clock, actor="trustees")
    await unseal(other, election, TEST_SEED, h.clock, actor="trustees")
    restored, original = await read_college(other, election), await read_college(redis, election)
    assert {n: dict(b.groups) for n, b in restored.sections.items()} == {
        n: dict(b.groups) for n, b in original.sections.items()
    }
    assert dict(original.sections["members"].groups) == {("green",): 3, ("patel",): 1}
    assert (await count_election(other, election)).winners == (
        await count_election(redis, election)
    ).winners
    await h.core.stop_background()


async def test_a_backup_taken_while_ballots_are_cast_agrees_in_every_shard(redis: Redis) -> None:
    """Casts run between the backup's reads: each shard is read in one step, so in every
    backup its sealed ballots, receipts, voters marked as voted and turnout agree."""
    roll = [Supporter(f"V{i}", f"Voter {i}", f"+4477009{i + 10000:05d}") for i in range(120)]
    h = await harness(redis, roll=roll, shards=4)
    election = h.core.election
    grants = []
    for sid, _, _, code in await h.core.codes.issue_voting_codes(election):
        check = await h.core.codes.check_voting_code(election, code, "console", f"chat-{sid}")
        assert check.grant
        grants.append((sid, check.grant))

    async def cast_all() -> None:
        for sid, grant in grants:
            assert (await h.core.box.cast(election, sid, grant, ["green"], "console")).ok

    async def back_up_often() -> list[backup.Taken]:
        taken: list[backup.Taken] = []
        while len(taken) < 40:
            taken.append(await backup.take(redis, election.id, h.clock))
        return taken

    _, taken = await asyncio.gather(cast_all(), back_up_often())
    assert [t for t in taken if 0 < t.snapshot.sealed < len(grants)]  # taken while casting
    assert [t.problems for t in taken] == [[]] * len(taken)
    await h.core.stop_background()


async def test_a_file_with_keys_no_backup_holds_or_a_box_that_does_not_match_is_refused(
    redis: Redis, other: Redis, tmp_path: Path
) -> None:
    h = await harness(redis, roll=ROLL, shards=3)
    election, eid = h.core.election, h.core.election.id
    for sid, ranking in list(BEFORE.items())[:2]:
        assert "Vote cast" in await vote(h, sid, ranking)
    key = await keypair(tmp_path, h.clock, redis)
    good = tmp_path / "good.backup"
    await run(redis, h.clock, "backup", "--election", eid, "--out", str(good), "--key", str(key))
    header, payload = open_backup(good.read_bytes(), str(good), read_key(key))
    public = read_key(key).public

    def forged(name: str, *extra: list[Any]) -> Path:
        path = tmp_path / name
        changed = {**payload, "records": [*payload["records"], *extra]}
        path.write_bytes(seal_backup(header, changed, public))
        return path

    cases = [
        (forged("other.backup", [keys.phone_index("other"), "hash", 0, {"+1": "X"}, ""]), "holds"),
        (forged("box.backup", [keys.ballots(eid, 0), "zset", 0, [["green", "9"]], ""]), "holds"),
        (forged("conv.backup", [keys.conversation("sms", "+44"), "string", 0, "x", ""]), "holds"),
    ]
    before = await everything(other)
    for path, reason in cases:
        with pytest.raises(BackupRefused, match=f"{path}: {reason} "):
            await run(other, h.clock, "restore", str(path), "--key", str(key))
        assert await everything(other) == before

    # A ballot slipped into Redis beside the voters': the backup keeps it, says so, and
    # cannot be restored (the unseal would refuse it too).
    await put_sealed(
        redis, election, 0, [seal(TEST_PUBLIC, encode_ranking(election.candidate_ids, ["byrne"]))]
    )
    bad = tmp_path / "bad.backup"
    status, _, err = await run(
        redis, h.clock, "backup", "--election", eid, "--out", str(bad), "--key", str(key)
    )
    assert status == 0 and "do not match its voters" in err
    with pytest.raises(BackupRefused, match="do not match its voters, so the unseal would"):
        await run(other, h.clock, "restore", str(bad), "--key", str(key))
    assert await everything(other) == before
    await h.core.stop_background()


async def test_on_a_cluster_each_shard_is_read_and_written_in_its_slot(
    other: Redis, tmp_path: Path
) -> None:
    """From a three-primary Cluster to one server, and back over the live election."""
    with cluster(3) as nodes:
        redis = client_from_url(cluster_url(nodes))
        try:
            h = await harness(redis, roll=ROLL, shards=6)
            election, eid = h.core.election, h.core.election.id
            for sid, ranking in BEFORE.items():
                assert "Vote cast" in await vote(h, sid, ranking)
            key = await keypair(tmp_path, h.clock, redis)
            out_file = tmp_path / "cluster.backup"
            status, _, _ = await run(
                redis,
                h.clock,
                "backup",
                "--election",
                eid,
                "--out",
                str(out_file),
                "--key",
                str(key),
            )
            assert status == 0
            await run(other, h.clock, "restore", str(out_file), "--key", str(key))
            assert await turnout(other, election) == await turnout(redis, election)
            assert "Vote cast" in await vote(h, "S8", "1")
            status, out, _ = await run(
                redis, h.clock, "restore", str(out_file), "--key", str(key), "--force"
            )
            assert status == 0 and "replaced" in out
            assert await turnout(other, election) == await turnout(redis, election)
            h.clock.set(election.closes + timedelta(minutes=1))
            await unseal(redis, election, TEST_SEED, h.clock, actor="trustees", workers=1)
            await unseal(other, election, TEST_SEED, h.clock, actor="trustees", workers=1)
            assert await box(other, eid, 6) == await box(redis, eid, 6)
            await h.core.stop_background()
        finally:
            await close_client(redis)
