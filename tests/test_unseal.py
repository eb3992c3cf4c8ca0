"""Trustees, unsealing and receipts: the count key in shares, opened only after the close."""

from __future__ import annotations

import io
import json
import stat
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from ballots import audit, keys
from ballots.errors import OpenPrimaryError
from ballots.receipts import new_receipt
from ballots.seal import encode_ranking, seal
from ballots.trustees import ShareError, load_count_key
from ballots.unseal import UnsealRefused, unseal
from bot.results import NothingToPublish, ResultsRefused
from bot.state import Step
from openprimary.cli import build_parser
from openprimary.context import Context
from openprimary.count_cli import count_command, export_command
from tests.demo_support import demo_env, server_stopped, start_demo
from tests.factories import NOW, Harness, harness, put_sealed, settings

PARSER = build_parser()

#: What the test voters cast, supporter by supporter.
CAST = {
    "S1001": ["patel", "byrne", "green"],
    "S1002": ["okafor"],
    "S1003": ["patel", "byrne", "green"],
    "S1004": ["green", "okafor", "patel", "byrne"],
    "S1005": ["byrne", "patel"],
}


def ctx_for(h: Harness) -> Context:
    return Context(
        settings=settings(), redis=h.core.redis, clock=h.clock, out=io.StringIO(), err=io.StringIO()
    )


async def run(h: Harness, *argv: str) -> tuple[int, str]:
    ctx = ctx_for(h)
    args = PARSER.parse_args(argv)
    status = await args.handler(args, ctx)
    assert isinstance(ctx.out, io.StringIO)
    return status, ctx.out.getvalue()


async def election_with_trustees(redis: Redis, tmp_path: Path, **changes: Any) -> Harness:
    """The sample election, before it opens, with a count key made by ``trustees init``."""
    h = await harness(redis, **changes)
    await redis.hdel(keys.election(h.core.election.id), "count_key", "count_key_id")
    h.clock.set(h.core.election.opens - timedelta(days=1))
    status, out = await run(
        h,
        *("trustees", "init", "--election", h.core.election.id),
        *("--shares", "3", "--threshold", "2", "--out", str(tmp_path / "keys")),
    )
    assert status == 0 and "share-3.key" in out
    h.clock.set(NOW)
    return h


async def cast_all(h: Harness) -> list[str]:
    """Cast every ballot in CAST; returns the receipts given."""
    election = h.core.election
    receipts = []
    for sid, ranking in CAST.items():
        code = (await h.core.codes.issue_voting_codes(election, [sid]))[0][3]
        check = await h.core.codes.check_voting_code(election, code, "console", sid)
        assert check.grant
        result = await h.core.box.cast(election, sid, check.grant, ranking, "console")
        assert result.ok and result.receipt
        receipts.append(result.receipt)
    return receipts


def share(tmp_path: Path, n: int) -> str:
    return str(tmp_path / "keys" / f"share-{n}.key")


async def box(redis: Redis, h: Harness) -> dict[str, int]:
    merged: Counter[str] = Counter()
    for shard in range(h.core.election.shards):
        async for ranking, n in redis.zscan_iter(keys.ballots(h.core.election.id, shard)):
            merged[str(ranking)] += int(n)
    return dict(merged)


async def test_trustees_init_writes_private_shares_and_stores_only_the_public_key(
    redis: Redis, tmp_path: Path
) -> None:
    h = await election_with_trustees(redis, tmp_path)
    folder = tmp_path / "keys"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = sorted(folder.iterdir())
    assert [f.name for f in files] == ["share-1.key", "share-2.key", "share-3.key"]
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    stored = await load_count_key(redis, h.core.election.id)
    assert stored is not None
    assert all(f'key_id = "{stored.id}"' in f.read_text() for f in files)
    # No share's secret, nor the private key, is anywhere in Redis.
    secrets_in_files = [f.read_text().split('secret = "')[1][:32] for f in files]
    dump = json.dumps(
        {k: await redis.hgetall(k) for k in [keys.election(h.core.election.id)]}
    ) + json.dumps(await redis.xrange(keys.audit(h.core.election.id)))
    assert not any(s in dump for s in secrets_in_files)
    assert "count key made" in dump


async def test_voting_waits_for_the_count_key(redis: Redis) -> None:
    h = await harness(redis)
    await redis.hdel(keys.election(h.core.election.id), "count_key", "count_key_id")
    h.core.box._keys.clear()
    reply = await h.said("hello")
    assert "not open yet" in reply
    state = await h.core.router.store.load("console", "chat-1")
    assert state.step is Step.START  # nothing moved on


async def test_trustees_init_is_refused_once_ballots_are_cast_or_voting_opened(
    redis: Redis, tmp_path: Path
) -> None:
    h = await election_with_trustees(redis, tmp_path)
    again = ("trustees", "init", "--election", h.core.election.id, "--shares", "2")
    with pytest.raises(Exception, match="already has a count key"):
        await run(h, *again, "--threshold", "2", "--out", str(tmp_path / "k2"))
    with pytest.raises(Exception, match="cannot be replaced once voting has opened"):
        await run(h, *again, "--threshold", "2", "--out", str(tmp_path / "k2"), "--replace")
    await cast_all(h)
    with pytest.raises(Exception, match="already has ballots sealed"):
        await run(h, *again, "--threshold", "2", "--out", str(tmp_path / "k3"), "--replace")
    assert not (tmp_path / "k2").exists() and not (tmp_path / "k3").exists()


async def test_unseal_with_two_of_three_shares_gives_exactly_the_rankings_cast(
    redis: Redis, tmp_path: Path
) -> None:
    h = await election_with_trustees(redis, tmp_path, shards=4)
    receipts = await cast_all(h)
    eid = h.core.election.id

    # Before the close: no unseal, no count, no export, no receipts.
    with pytest.raises(UnsealRefused, match="only after the close"):
        await run(h, "unseal", "--election", eid, "--share", share(tmp_path, 1))
    with pytest.raises(UnsealRefused, match="sealed until the trustees unseal"):
        await run(h, "count", "--election", eid)
    with pytest.raises(UnsealRefused, match="cannot export"):
        await run(h, "export", "--election", eid, "--format", "blt")
    with pytest.raises(Exception, match="receipts are published after the close"):
        await run(h, "receipts", "--election", eid)

    h.clock.set(h.core.election.closes)
    # After the close, still no count before the unseal.
    with pytest.raises(UnsealRefused, match="sealed until the trustees unseal"):
        await count_command(PARSER.parse_args(["count", "--election", eid]), ctx_for(h))
    with pytest.raises(UnsealRefused):
        await export_command(
            PARSER.parse_args(["export", "--election", eid, "--format", "csv"]), ctx_for(h)
        )
    status, out = await run(
        h, "unseal", "--election", eid, "--share", share(tmp_path, 3), "--share", share(tmp_path, 1)
    )
    assert status == 0
    assert "5 sealed ballots, 5 opened, 0 invalid" in out
    expected = Counter(",".join(r) for r in CAST.values())
    assert await box(redis, h) == dict(expected)

    status, out = await run(h, "count", "--election", eid, "--json")
    assert status == 0 and json.loads(out)["rounds"][0]["tallies"]["patel"] in (2, "2")

    status, out = await run(h, "receipts", "--election", eid)
    assert out.splitlines() == sorted(receipts)
    out_file = tmp_path / "receipts.txt"
    await run(h, "receipts", "--election", eid, "--out", str(out_file))
    assert out_file.read_text().splitlines() == sorted(receipts)

    # A second unseal changes nothing and says so.
    status, out = await run(
        h, "unseal", "--election", eid, "--share", share(tmp_path, 2), "--share", share(tmp_path, 3)
    )
    assert "already unsealed" in out
    assert await box(redis, h) == dict(expected)


async def test_shares_that_cannot_open_the_ballots_are_refused(
    redis: Redis, tmp_path: Path
) -> None:
    h = await election_with_trustees(redis, tmp_path)
    await cast_all(h)
    eid = h.core.election.id
    h.clock.set(h.core.election.closes)
    unseal_with = ("unseal", "--election", eid, "--share")

    with pytest.raises(ShareError, match=r"2 different shares are needed.*1 given"):
        await run(h, *unseal_with, share(tmp_path, 1))
    with pytest.raises(ShareError, match="share 1 is given twice"):
        await run(h, *unseal_with, share(tmp_path, 1), "--share", share(tmp_path, 1))

    # A share of another election.
    other = await election_with_trustees(redis, tmp_path / "other", id="other-2027")
    assert other.core.election.id == "other-2027"
    with pytest.raises(ShareError, match="for election other-2027, not riverside-2027"):
        await run(h, *unseal_with, share(tmp_path / "other", 1), "--share", share(tmp_path, 2))

    # A share copied wrongly: one digit of its secret changed.
    broken = tmp_path / "broken.key"
    text = Path(share(tmp_path, 2)).read_text()
    secret = text.split('secret = "')[1][:32]
    flipped = ("1" if secret[0] != "1" else "2") + secret[1:]
    broken.write_text(text.replace(secret, flipped))
    with pytest.raises(ShareError, match=r"broken.key: corrupted share: its check value"):
        await run(h, *unseal_with, share(tmp_path, 1), "--share", str(broken))
    not_a_share = tmp_path / "junk.key"
    not_a_share.write_text("this is not a share\n")
    with pytest.raises(ShareError, match=r"junk\.key: corrupted share"):
        await run(h, *unseal_with, share(tmp_path, 1), "--share", str(not_a_share))

    # Nothing was opened by any of these.
    assert await box(redis, h) == {}
    assert not await redis.exists(keys.unsealing(eid))


async def unseal_args(h: Harness, tmp_path: Path) -> list[str]:
    return [
        *("unseal", "--election", h.core.election.id),
        *("--share", share(tmp_path, 1), "--share", share(tmp_path, 2)),
    ]


async def test_a_ballot_that_does_not_open_stops_the_unseal_and_writes_nothing(
    redis: Redis, tmp_path: Path
) -> None:
    h = await election_with_trustees(redis, tmp_path, shards=4)
    await cast_all(h)
    election = h.core.election
    # Ballots that are not the count key's, or not a ranking, slipped in (with a voter
    # counted for each, so the box still adds up).
    foreign = seal(bytes(32 * [9]), encode_ranking(election.candidate_ids, ["green"]))
    stored = await load_count_key(redis, election.id)
    assert stored is not None
    blank = seal(stored.public, encode_ranking(election.candidate_ids, []))
    await put_sealed(redis, election, 0, [foreign, blank], stored.public)
    h.clock.set(election.closes)
    with pytest.raises(UnsealRefused, match=r"2 of 7 sealed ballots did not open"):
        await run(h, *await unseal_args(h, tmp_path))
    # No shard was written, not even those whose ballots all opened.
    assert await box(redis, h) == {}
    progress = [str(k) for k in await redis.hgetall(keys.unsealing(election.id))]
    assert not [k for k in progress if k.startswith("shard:") or k == "done"]
    with pytest.raises(UnsealRefused):
        await run(h, "count", "--election", election.id)
    trail = await audit.read(redis, election.id)
    assert "unseal failed" in [e.action for e in trail]


async def test_a_ballot_added_or_copied_behind_our_back_stops_the_unseal(
    redis: Redis, tmp_path: Path
) -> None:
    h = await election_with_trustees(redis, tmp_path, shards=2)
    await cast_all(h)
    election = h.core.election
    stored = await load_count_key(redis, election.id)
    assert stored is not None
    # Anyone who can write to Redis can seal a ballot to the public key: one more sealed
    # ballot than voters who voted.
    stuffed = seal(stored.public, encode_ranking(election.candidate_ids, ["okafor"]))
    await redis.zadd(keys.sealed(election.id, 0), {stuffed: 0})
    h.clock.set(election.closes)
    with pytest.raises(UnsealRefused, match=r"do not match its voters.*shard 0: \d+ sealed"):
        await run(h, *await unseal_args(h, tmp_path))
    await redis.zrem(keys.sealed(election.id, 0), stuffed)

    # A real ballot copied into the other shard in place of one taken out: the counts add
    # up, but the same sealed ballot is there twice.
    source = str((await redis.zrange(keys.sealed(election.id, 0), 0, 0))[0])
    victim = str((await redis.zrange(keys.sealed(election.id, 1), 0, 0))[0])
    await redis.zrem(keys.sealed(election.id, 1), victim)
    await redis.zadd(keys.sealed(election.id, 1), {source: 0})
    with pytest.raises(UnsealRefused, match="1 sealed ballots appear twice"):
        await run(h, *await unseal_args(h, tmp_path))
    assert await box(redis, h) == {}


async def test_once_the_unseal_begins_no_ballot_gets_in_and_the_close_stays(
    redis: Redis, tmp_path: Path
) -> None:
    h = await election_with_trustees(redis, tmp_path)
    election = h.core.election
    code = (await h.core.codes.issue_voting_codes(election, ["S1006"]))[0][3]
    check = await h.core.codes.check_voting_code(election, code, "console", "S1006")
    assert check.grant
    await cast_all(h)
    h.clock.set(election.closes)
    await run(h, *await unseal_args(h, tmp_path))
    # A server whose clock is behind still takes no ballot: the shards are frozen.
    h.clock.set(election.closes - timedelta(minutes=5))
    late = await h.core.box.cast(election, "S1006", check.grant, ["green"], "console")
    assert late.status == "closed"
    from ballots.election import save_election
    from ballots.errors import ElectionLocked

    with pytest.raises(ElectionLocked, match="opening and closing times cannot change"):
        await save_election(redis, replace(election, closes=election.closes + timedelta(days=1)))


async def test_a_threshold_of_one_is_refused(redis: Redis, tmp_path: Path) -> None:
    h = await harness(redis)
    await redis.hdel(keys.election(h.core.election.id), "count_key", "count_key_id")
    h.clock.set(h.core.election.opens - timedelta(days=1))
    with pytest.raises(Exception, match="every share would be the whole key"):
        await run(
            h,
            *("trustees", "init", "--election", h.core.election.id),
            *("--shares", "3", "--threshold", "1", "--out", str(tmp_path / "k")),
        )
    assert await load_count_key(redis, h.core.election.id) is None
    assert not (tmp_path / "k").exists()


async def test_an_unseal_cut_short_and_run_again_gives_the_same_box(
    redis: Redis, tmp_path: Path
) -> None:
    h = await election_with_trustees(redis, tmp_path, shards=4)
    await cast_all(h)
    election = replace(h.core.election)
    h.clock.set(election.closes)
    args = ("unseal", "--election", election.id, "--share", share(tmp_path, 1), "--share")
    await run(h, *args, share(tmp_path, 2))
    whole = await box(redis, h)

    # What a crash part-way leaves: the summary not written, a shard not marked done,
    # its staging half-written and its box missing.
    filled = [s for s in range(election.shards) if await redis.exists(keys.ballots(election.id, s))]
    shard = filled[-1]
    await redis.hdel(keys.unsealing(election.id), "done", f"shard:{shard}")
    await redis.delete(keys.ballots(election.id, shard))
    await redis.zadd(keys.unsealed_part(election.id, shard), {"green": 99})
    with pytest.raises(UnsealRefused):
        await run(h, "count", "--election", election.id)

    status, out = await run(h, *args, share(tmp_path, 2))
    assert status == 0 and "5 opened" in out
    assert await box(redis, h) == whole
    assert not await redis.exists(keys.unsealed_part(election.id, shard))


async def test_a_large_box_is_opened_by_a_pool_of_processes(redis: Redis, tmp_path: Path) -> None:
    h = await election_with_trustees(redis, tmp_path, shards=2)
    election = h.core.election
    stored = await load_count_key(redis, election.id)
    assert stored is not None
    rankings = [["green", "patel"], ["okafor"], ["byrne", "okafor", "green", "patel"]]
    cast: Counter[str] = Counter()
    for shard in range(2):
        members = []
        for i in range(300):
            ranking = rankings[(i + shard) % 3]
            members.append(seal(stored.public, encode_ranking(election.candidate_ids, ranking)))
            cast[",".join(ranking)] += 1
        await put_sealed(redis, election, shard, members, stored.public)
    h.clock.set(election.closes)
    from ballots.trustees import combine, read_share

    seed = combine([read_share(Path(share(tmp_path, n))) for n in (1, 2)], election.id, stored)
    report = await unseal(redis, election, seed, h.clock, actor="test", workers=2, pool_threshold=0)
    assert (report.sealed, report.opened, report.invalid) == (600, 600, 0)
    assert await box(redis, h) == dict(cast)


def test_the_demo_is_two_commands_and_counts(tmp_path: Path) -> None:
    """`openprimary demo` votes, `openprimary demo --count` unseals and counts (embedded Redis)."""
    import re
    import subprocess
    import sys

    proc = start_demo(tmp_path)
    assert proc.stdout is not None and proc.stdin is not None
    code = None
    while code is None:
        line = proc.stdout.readline()
        assert line, "the demo ended before it gave a voting code"
        found = re.search(r"voting code: ([\d-]+)", line)
        code = found.group(1) if found else None
    out, _ = proc.communicate(f"hello\n{code}\n2 4 1\nyes\n/quit\n", timeout=60)
    assert "Vote cast, thank you!" in out
    counted = subprocess.run(
        [sys.executable, "-m", "openprimary.cli", "demo", "--count"],
        cwd=tmp_path,
        env=demo_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert counted.returncode == 0, counted.stderr
    assert "1 ballots opened, 0 invalid" in counted.stdout
    assert "Elected: Sam Patel." in counted.stdout
    data = tmp_path / "var"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    for path in data.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # Each command stopped the embedded Redis it started.
    assert server_stopped(data)


async def test_a_receipt_drawn_twice_is_drawn_again_so_receipts_never_repeat(
    redis: Redis, tmp_path: Path
) -> None:
    h = await election_with_trustees(redis, tmp_path)  # one shard: every voter's receipts meet
    # The first voter draws CLASHCLASH; the second draws it twice more, then another.
    draws = iter(["CLASHCLASH", "CLASHCLASH", "CLASHCLASH", "FRESHRCPT0"])
    h.core.box.new_receipt = lambda: next(draws, None) or new_receipt()
    receipts = await cast_all(h)
    assert receipts[:2] == ["CLASHCLASH", "FRESHRCPT0"]
    assert await redis.zcard(keys.receipts(h.core.election.id, 0)) == len(receipts) == len(CAST)
    h.clock.set(h.core.election.closes)
    status, out = await run(h, *await unseal_args(h, tmp_path))
    assert status == 0 and "5 sealed ballots, 5 opened" in out


async def test_a_generator_that_only_repeats_casts_nothing(redis: Redis, tmp_path: Path) -> None:
    h = await election_with_trustees(redis, tmp_path)
    election = h.core.election
    await cast_all(h)
    given = str((await redis.zrange(keys.receipts(election.id, 0), 0, 0))[0])
    h.core.box.new_receipt = lambda: given
    code = (await h.core.codes.issue_voting_codes(election, ["S1006"]))[0][3]
    check = await h.core.codes.check_voting_code(election, code, "console", "S1006")
    assert check.grant
    with pytest.raises(OpenPrimaryError, match="receipts in a row were taken"):
        await h.core.box.cast(election, "S1006", check.grant, ["green"], "console")
    assert not await h.core.box.has_voted(election, "S1006")
    assert await redis.zcard(keys.sealed(election.id, 0)) == len(CAST)


async def test_unseal_tells_a_receipt_clash_from_tampering(redis: Redis, tmp_path: Path) -> None:
    """Receipts given before the cast checked them could clash: two voters, one receipt, one
    member of the receipts set.  Their own records explain it, so the unseal goes on; a
    receipt taken out of the set with no voter sharing it is tampering."""
    h = await election_with_trustees(redis, tmp_path)
    election = h.core.election
    receipts = await cast_all(h)
    h.clock.set(election.closes)
    # What a clash left: S1002 holds S1001's receipt, and the set holds it once.
    ann, bilal = receipts[0], receipts[1]
    await redis.hset(keys.voter(election.id, 0, "S1002"), "receipt", ann)
    await redis.zrem(keys.receipts(election.id, 0), bilal)
    # Tampering first: another receipt also gone, with nobody sharing it.
    await redis.zrem(keys.receipts(election.id, 0), receipts[2])
    with pytest.raises(UnsealRefused, match="altered outside OpenPrimary"):
        await run(h, *await unseal_args(h, tmp_path))
    await redis.zadd(keys.receipts(election.id, 0), {receipts[2]: 0})

    ctx = ctx_for(h)
    args = PARSER.parse_args(await unseal_args(h, tmp_path))
    assert await args.handler(args, ctx) == 0
    assert isinstance(ctx.out, io.StringIO) and isinstance(ctx.err, io.StringIO)
    assert "5 sealed ballots, 5 opened, 0 invalid" in ctx.out.getvalue()
    assert "1 receipts were each given to two voters" in ctx.err.getvalue()
    assert await box(redis, h) == dict(Counter(",".join(r) for r in CAST.values()))
    trail = [e for e in await audit.read(redis, election.id) if e.action == "ballots unsealed"]
    assert trail[-1].details["shared_receipts"] == 1


async def test_results_are_published_and_taken_down_from_the_command_line(
    redis: Redis, tmp_path: Path
) -> None:
    h = await election_with_trustees(redis, tmp_path)
    await cast_all(h)
    eid = h.core.election.id
    h.clock.set(h.core.election.closes)
    with pytest.raises(NothingToPublish, match="until the trustees unseal"):
        await run(h, "results", "publish", "--election", eid)
    await run(h, *await unseal_args(h, tmp_path))
    status, out = await run(h, "results", "publish", "--election", eid)
    assert status == 0 and f"published the results of {eid} (elected: " in out
    by = ctx_for(h).actor  # the user and host running the command
    assert await redis.hget(keys.published(eid), "by") == by
    with pytest.raises(ResultsRefused, match=f"already published, .* by {by}"):
        await run(h, "results", "publish", "--election", eid)
    status, out = await run(h, "results", "unpublish", "--election", eid)
    assert status == 0 and "answers 404 again" in out
    assert not await redis.exists(keys.published(eid))
    with pytest.raises(ResultsRefused, match="not published"):
        await run(h, "results", "unpublish", "--election", eid)
    trail = [e.action for e in await audit.read(redis, eid)]
    assert trail.count("results published") == 1 and "results unpublished" in trail
    assert "results publish refused" in trail
