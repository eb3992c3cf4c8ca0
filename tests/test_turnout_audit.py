"""Turnout and the audit trail: their shape, and that neither gives away a vote or a code."""

from __future__ import annotations

import argparse
import getpass
import io
import json
import socket
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ballots import audit
from ballots.clock import Clock
from ballots.trustees import split_seed, write_shares
from openprimary.cli import build_parser
from openprimary.commands import audit_show, codes_issue, election_load, roll_import, turnout_report
from openprimary.context import Context
from openprimary.count_cli import count_command
from openprimary.remind_cli import remind
from openprimary.trustees_cli import unseal_command
from tests.factories import EXAMPLES, TEST_PUBLIC, TEST_SEED, harness, settings


def ctx_for(redis: Redis, clock: Clock) -> Context:
    return Context(
        settings=settings(),
        redis=redis,
        clock=clock,
        out=io.StringIO(),
        err=io.StringIO(),
        actor="cli:alice",
    )


def out_of(ctx: Context) -> str:
    assert isinstance(ctx.out, io.StringIO)
    return ctx.out.getvalue()


async def test_turnout_json_shape_and_no_link_to_choices(redis: Redis) -> None:
    h = await harness(redis)
    code = (await h.core.codes.issue_voting_codes(h.core.election, ["S1001"]))[0][3]
    await h.said(code)
    await h.said("2 > 4")
    assert "Vote cast" in await h.said("YES")

    ctx = ctx_for(redis, h.clock)
    assert (
        await turnout_report(argparse.Namespace(election=h.core.election.id, json=True), ctx) == 0
    )
    report = json.loads(out_of(ctx))
    assert {"eligible", "voted", "by_channel", "by_day"} <= set(report)
    assert report["eligible"] == 6 and report["voted"] == 1
    assert report["by_channel"] == {"console": 1}
    assert report["by_day"] == {"2026-11-20": 1}
    assert report["by_hour"] == {"2026-11-20T12": 1}
    text = json.dumps(report)
    for leak in ("S1001", "Ann", "patel", "byrne", "+4477"):
        assert leak not in text


async def test_the_trail_records_organiser_actions_without_codes_or_rankings(
    redis: Redis, tmp_path: Path
) -> None:
    h = await harness(redis)
    eid = h.core.election.id
    ctx = ctx_for(redis, h.clock)
    await election_load(argparse.Namespace(file=str(EXAMPLES / "election.toml")), ctx)
    await roll_import(
        argparse.Namespace(election=eid, file=str(EXAMPLES / "roll.csv"), region=None), ctx
    )
    codes_file = tmp_path / "codes.csv"
    await codes_issue(
        argparse.Namespace(election=eid, out=str(codes_file), supporter=None, force=False), ctx
    )
    codes = [line.split(",")[3] for line in codes_file.read_text().splitlines()[1:]]
    await h.said(codes[0])
    await h.said("3 > 1 > 2")
    assert "Vote cast" in await h.said("YES")
    parser = build_parser()
    dry_run = ["remind", "--election", eid, "--message", "Vote, {name}!", "--dry-run"]
    assert await remind(parser.parse_args(dry_run), ctx) == 0  # changes nothing: not audited
    shares = write_shares(tmp_path / "trustees", split_seed(TEST_SEED, eid, 3, 2, TEST_PUBLIC))
    h.clock.set(h.core.election.closes)
    unseal_args = ["unseal", "--election", eid, "--share", str(shares[0]), "--share"]
    await unseal_command(parser.parse_args([*unseal_args, str(shares[2])]), ctx)
    await count_command(parser.parse_args(["count", "--election", eid, "--json"]), ctx)

    trail = await audit.read(redis, eid)
    actions = [e.action for e in trail]
    assert actions[-5:] == [
        "election loaded",
        "roll imported",
        "codes issued",
        "ballots unsealed",
        "count run",
    ]
    assert all(e.actor == "cli:alice" for e in trail[-5:])
    unsealed = trail[-2].details
    assert (unsealed["shares"], unsealed["opened"], unsealed["invalid"]) == ("1,3", 1, 0)
    # Who unsealed and when, and no key material: no share's secret, no seed.
    for share in shares:
        secret = share.read_text().split('secret = "')[1][:32]
        assert secret not in json.dumps([e.details for e in trail])
    assert TEST_SEED.hex() not in json.dumps([e.details for e in trail])
    assert all(e.at.tzinfo is not None for e in trail)

    shown = ctx_for(redis, h.clock)
    await audit_show(argparse.Namespace(election=eid, json=True), shown)
    dump = out_of(shown)
    assert "count run" in dump
    for code in codes:
        assert code not in dump
    for ranking in ("okafor,green,patel", "okafor", "Jo Okafor"):
        assert ranking not in dump

    with pytest.raises(ValueError, match="code"):
        await audit.record(redis, h.clock, eid, "cli:alice", "oops", code="123456")
    with pytest.raises(ValueError, match="ranking"):
        await audit.record(redis, h.clock, eid, "cli:alice", "oops", ranking="a,b")


def test_a_command_s_actor_names_the_user_and_the_host(redis: Redis) -> None:
    """Several organisers run commands as root on different machines: the trail tells them
    apart by user and host, not just "cli:root"."""
    ctx = Context(settings=settings(), redis=redis)
    assert ctx.actor == f"cli:{getpass.getuser()}@{socket.gethostname()}"
