"""While ranking, a word that names a candidate ranks them: no keyword (a language's name,
ABSTAIN's words) shadows a candidate called "Jo English" or "Sam Blank"."""

from __future__ import annotations

from redis.asyncio import Redis

from ballots.election import Candidate
from bot.state import Step
from tests.factories import Harness, harness

CANDIDATES = (
    Candidate("english", "Jo English"),
    Candidate("blank", "Sam Blank"),
    Candidate("green", "Alex Green"),
)


async def ranking(redis: Redis) -> Harness:
    """Carys (Welsh on the roll) at her first preference."""
    h = await harness(redis, candidates=CANDIDATES, languages=("en", "cy"), abstain=True)
    code = (await h.core.codes.issue_voting_codes(h.core.election, ["S1003"]))[0][3]
    await h.said(code)
    state = await h.state()
    assert state.step is Step.RANK and state.language == "cy"
    return h


async def test_a_language_s_name_that_is_a_candidate_s_ranks_them(redis: Redis) -> None:
    h = await ranking(redis)
    await h.said("english")
    state = await h.state()
    assert state.ranking == ["english"] and state.language == "cy"  # ranked, not switched


async def test_an_abstain_word_that_is_a_candidate_s_name_ranks_them(redis: Redis) -> None:
    h = await ranking(redis)
    await h.said("blank")
    assert (await h.state()).ranking == ["blank"]
    await h.said("done")
    assert (await h.state()).step is Step.CONFIRM
    # At the confirmation too: the name starts the ranking again with that candidate.
    await h.said("Blank")
    state = await h.state()
    assert state.step is Step.RANK and state.ranking == ["blank"]


async def test_the_words_still_work_where_they_name_no_candidate(redis: Redis) -> None:
    h = await harness(redis, languages=("en", "cy"), abstain=True)
    reply = await h.said("CYMRAEG")
    assert (await h.state()).language == "cy", reply
    code = (await h.core.codes.issue_voting_codes(h.core.election, ["S1001"]))[0][3]
    await h.said(code)
    await h.said("ymatal")  # Welsh ABSTAIN: no candidate is called that
    assert (await h.state()).step is Step.CONFIRM
