"""The ``count`` and ``export`` subcommands, from ballot files and from Redis."""

from __future__ import annotations

import argparse
import io
import json
import re
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from ballots.clock import ManualClock
from ballots.count.formats import read_ballots
from ballots.count.model import Ballots, CountError
from ballots.election import Candidate, Election, save_election
from ballots.errors import FileProblems, UnknownElection
from ballots.seal import encode_ranking, seal
from ballots.unseal import unseal
from openprimary import count_cli as cli
from openprimary.context import Context
from tests.factories import TEST_PUBLIC, TEST_SEED, install_test_key, put_sealed, settings
from tests.test_count_real import DATA, GLASGOW, GLASGOW_ELECTED


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="openprimary")
    sub = p.add_subparsers(dest="command", required=True)
    cli.register(sub)
    return p


async def run(redis: Redis, *argv: str) -> tuple[int, str, str]:
    args = parser().parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    ctx = Context(settings=settings(), redis=redis, out=out, err=err)
    status = await args.handler(args, ctx)
    return status, out.getvalue(), err.getvalue()


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


async def load(redis: Redis, eid: str, ballots: Ballots, method: str, seats: int = 1) -> Election:
    """Store an election for these ballots, spreading the rankings over its shards."""
    ids = {c: slug(c) for c in ballots.candidates}
    election = Election(
        id=eid,
        title=ballots.title or eid,
        method=method,
        seats=seats,
        candidates=tuple(Candidate(ids[c], ballots.names[c]) for c in ballots.candidates),
        opens=datetime(2026, 1, 1, tzinfo=UTC),
        closes=datetime(2026, 2, 1, tzinfo=UTC),
        shards=4,
    )
    election = await save_election(redis, election)
    await install_test_key(redis, election)
    by_shard: dict[int, list[str]] = {s: [] for s in range(election.shards)}
    for i, (ranking, n) in enumerate(ballots.items()):
        record = encode_ranking(election.candidate_ids, [ids[c] for c in ranking])
        by_shard[i % election.shards] += [seal(TEST_PUBLIC, record) for _ in range(n)]
    for shard, sealed in by_shard.items():
        await put_sealed(redis, election, shard, sealed)
    # The count reads what the trustees' unseal writes after the close.
    report = await unseal(redis, election, TEST_SEED, ManualClock(election.closes), actor="test")
    assert report.opened == ballots.total and report.invalid == 0
    return election


async def test_count_ballot_file_prints_the_round_by_round_report(redis: Redis) -> None:
    status, out, _ = await run(
        redis, "count", "--ballots", str(DATA / "irv" / "labour-2010-leadership-mps.soi")
    )
    assert status == 0
    assert "instant-runoff" in out
    assert "Round 4" in out
    assert "D.Milbnd has 140 of 262 continuing votes, more than half: elected" in out
    assert out.rstrip().endswith("Elected: D.Milbnd.")


async def test_count_json_has_the_contract_fields(redis: Redis) -> None:
    blt = GLASGOW / "blt" / "Calton-2007.blt"
    status, out, _ = await run(redis, "count", "--ballots", str(blt), "--json", "--seed", "7")
    assert status == 0
    report: dict[str, Any] = json.loads(out)
    assert report["method"] == "stv"
    assert report["seats"] == 3
    assert report["quota"] == "1300.00000"
    assert report["seed"] == 7
    assert report["candidates"]["George Redmond"] == "George Redmond"
    assert report["winners"] == ["George Redmond", "Alison E Thewliss", "Ruth Simpson"]
    assert report["tie_breaks"] == []
    first, second = report["rounds"][0], report["rounds"][1]
    assert first["tallies"]["George Redmond"] == "1982.00000"
    assert first["elected"] == ["George Redmond"]
    assert first["excluded"] == []
    assert first["exhausted"] == "0.00000"
    (transfer,) = second["transfers"]
    assert transfer["from"] == "George Redmond"
    assert transfer["transfer_value"] == "0.34409"
    assert transfer["to"]["Gary Barton"] == "2.40863"
    assert second["exhausted"] == "158.62549"
    assert second["loss_to_fractions"] == "0.01362"


async def test_irv_json_uses_whole_numbers_and_null_quota(redis: Redis) -> None:
    toi = DATA / "irv" / "burlington-2009-mayor.toi"
    _, out, _ = await run(redis, "count", "--ballots", str(toi), "--json")
    report = json.loads(out)
    assert report["quota"] is None
    assert report["rounds"][-1]["tallies"] == {"Bob Kiss": 4313, "Kurt Wright": 4060}
    assert report["invalid_ballots"] == 4


async def test_count_method_and_seats_override_the_file(redis: Redis) -> None:
    blt = GLASGOW / "blt" / "Calton-2007.blt"
    _, out, _ = await run(redis, "count", "--ballots", str(blt), "--method", "irv", "--json")
    assert json.loads(out)["method"] == "irv"
    _, out, _ = await run(redis, "count", "--ballots", str(blt), "--seats", "1", "--json")
    report = json.loads(out)
    assert (report["method"], report["seats"]) == ("irv", 1)


@pytest.mark.parametrize("suffix", [".png", ".html", ".svg"])
async def test_count_draws_the_chart(redis: Redis, tmp_path: Path, suffix: str) -> None:
    chart = tmp_path / f"calton{suffix}"
    blt = GLASGOW / "blt" / "Calton-2007.blt"
    status, _, err = await run(redis, "count", "--ballots", str(blt), "--chart", str(chart))
    assert status == 0
    assert f"chart: {chart}" in err
    data = chart.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = struct.unpack(">II", data[16:24])  # IHDR: drawn at twice 960 wide
        assert width == 1920 and height > 800
    else:
        text = data.decode()
        assert "<svg" in text
        assert "George Redmond" in text
        assert 'class="sankey"' not in text or "Transfers round by round" in text
        assert "<script" not in text
        assert "http" not in text.replace("http://www.w3.org/2000/svg", "")


async def test_count_chart_with_unknown_suffix_is_an_error(redis: Redis, tmp_path: Path) -> None:
    blt = GLASGOW / "blt" / "Calton-2007.blt"
    with pytest.raises(CountError, match=r"\.png, \.html or \.svg"):
        await run(redis, "count", "--ballots", str(blt), "--chart", str(tmp_path / "c.gif"))


async def test_count_malformed_file_names_file_and_line(redis: Redis, tmp_path: Path) -> None:
    bad = tmp_path / "bad.blt"
    bad.write_text('2 1\n3 1 2 0\n1 1 7 0\n0\n"A"\n"B"\n"T"\n')
    with pytest.raises(FileProblems) as caught:
        await run(redis, "count", "--ballots", str(bad))
    assert str(caught.value) == f"{bad}:3: preference '7' is not a candidate number 1 to 2"


@pytest.mark.parametrize("ward", sorted(GLASGOW_ELECTED))
async def test_glasgow_from_redis_elects_the_declared_councillors(redis: Redis, ward: str) -> None:
    ballots = read_ballots(GLASGOW / "blt" / f"{ward}-2007.blt")
    eid = slug(ward)
    await load(redis, eid, ballots, "stv", ballots.seats or 1)
    status, out, _ = await run(redis, "count", "--election", eid, "--json")
    assert status == 0
    report = json.loads(out)
    names = {report["candidates"][w] for w in report["winners"]}
    assert names == set(GLASGOW_ELECTED[ward].split("; "))


async def test_irv_from_redis_matches_the_published_rounds(redis: Redis) -> None:
    ballots = read_ballots(DATA / "irv" / "burlington-2009-mayor.toi")
    await load(redis, "burlington", ballots, "irv")
    _, out, _ = await run(redis, "count", "--election", "burlington", "--json")
    report = json.loads(out)
    assert report["rounds"][0]["tallies"]["kurt-wright"] == 2951
    assert report["rounds"][-1]["tallies"] == {"bob-kiss": 4313, "kurt-wright": 4060}
    assert report["winners"] == ["bob-kiss"]

    ballots = read_ballots(DATA / "irv" / "labour-2010-leadership-mps.soi")
    await load(redis, "labour", ballots, "irv")
    _, out, _ = await run(redis, "count", "--election", "labour", "--json")
    last = json.loads(out)["rounds"][-1]
    assert (last["tallies"], last["exhausted"]) == ({"d-milbnd": 140, "e-milbnd": 122}, 4)


async def test_count_election_rejects_method_override(redis: Redis) -> None:
    ballots = read_ballots(DATA / "irv" / "labour-2010-leadership-mps.soi")
    await load(redis, "labour", ballots, "irv")
    with pytest.raises(CountError, match="own method"):
        await run(redis, "count", "--election", "labour", "--method", "sv")


async def test_count_unknown_election(redis: Redis) -> None:
    with pytest.raises(UnknownElection):
        await run(redis, "count", "--election", "nope")


@pytest.mark.parametrize("fmt", ["blt", "preflib", "csv"])
async def test_export_round_trips(redis: Redis, tmp_path: Path, fmt: str) -> None:
    ballots = read_ballots(GLASGOW / "blt" / "Hillhead-2007.blt")
    await load(redis, "hillhead", ballots, "stv", 4)
    _, direct, _ = await run(redis, "count", "--election", "hillhead", "--json")
    suffix = {"blt": ".blt", "preflib": ".soi", "csv": ".csv"}[fmt]
    out = tmp_path / f"hillhead{suffix}"
    status, _, err = await run(
        redis, "export", "--election", "hillhead", "--format", fmt, "--out", str(out)
    )
    assert status == 0
    assert f"wrote {ballots.total:,} ballots" in err
    args = ["count", "--ballots", str(out), "--json"]
    if fmt != "blt":
        args += ["--method", "stv", "--seats", "4"]
    _, from_file, _ = await run(redis, *args)
    a, b = json.loads(direct), json.loads(from_file)
    # Files name candidates by display name; Redis by id.
    assert [a["candidates"][w] for w in a["winners"]] == b["winners"]
    assert [list(r["tallies"].values()) for r in a["rounds"]] == [
        list(r["tallies"].values()) for r in b["rounds"]
    ]


async def test_export_to_stdout_is_sorted_and_anonymous(redis: Redis) -> None:
    ballots = Ballots.from_rankings(
        ["b", "a", "c"], [["c"], ["a", "b"], ["b"], ["a", "b"], ["c", "a"]]
    )
    await load(redis, "small", ballots, "irv")
    _, out, _ = await run(redis, "export", "--election", "small", "--format", "csv")
    assert out.splitlines() == ["# candidates: b,a,c", "b", "a,b", "a,b", "c", "c,a"]
