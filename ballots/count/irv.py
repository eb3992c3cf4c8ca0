"""Instant-runoff voting (the alternative vote), as used in Labour Party selections.

The rules:

1. Every valid ballot counts for its highest-ranked continuing candidate.
2. A candidate with more than half of the votes of continuing candidates
   (ballots that are not exhausted) is elected, and the count ends.  When
   only one candidate is left, that candidate is elected.
3. Otherwise the candidate with the fewest votes is excluded, and each of
   their ballots passes to its next preference for a continuing candidate.
   A ballot with no such preference is exhausted and counts no further.
   A tie for fewest votes is broken by the rule in ``ties.py``: look back
   at earlier rounds, then lot from the recorded seed.
4. Optional bulk exclusion (``bulk_exclusion=True``): when the lowest two or
   more candidates together have fewer votes than the candidate above them,
   none of them can overtake that candidate, so all of them are excluded in
   one round.  The report says so when it happens.  It never changes who is
   elected, only how many rounds the report shows.

The ballots are grouped and kept in one pile per candidate, so each round
moves only the excluded candidate's pile.
"""

from __future__ import annotations

from ballots.count.model import Ballots, CountError, indexed
from ballots.count.result import Result, Round, TieBreak, Transfer
from ballots.count.ties import choose

RULES = (
    "instant-runoff: more than half of continuing votes wins; lowest excluded; "
    "ties by earlier rounds, then lot"
)


def bulk_exclusion_set(votes: dict[int, int]) -> list[int]:
    """The lowest candidates who together cannot overtake the next one (two or more), or []."""
    order = sorted(votes, key=lambda c: (votes[c], c))
    best: list[int] = []
    running = 0
    # Keep at least two candidates in the count.
    for k in range(len(order) - 2):
        running += votes[order[k]]
        if k >= 1 and running < votes[order[k + 1]]:
            best = order[: k + 1]
    return best


def count_irv(ballots: Ballots, *, seed: int = 0, bulk_exclusion: bool = False) -> Result:
    """Count ``ballots`` by instant-runoff; see the module docstring for the rules."""
    if not ballots.candidates:
        raise CountError("there are no candidates to count")
    if ballots.total == 0:
        raise CountError("there are no valid ballots to count")
    ids = ballots.candidates
    rankings, counts = indexed(ballots)
    n_cand = len(ids)
    piles: list[list[tuple[int, int, int]]] = [[] for _ in range(n_cand)]
    tallies = [0] * n_cand
    for r, (ranking, n) in enumerate(zip(rankings, counts, strict=True)):
        piles[ranking[0]].append((r, 0, n))
        tallies[ranking[0]] += n
    continuing = [True] * n_cand
    exhausted = 0
    rounds: list[Round] = []
    ties: list[TieBreak] = []
    history: list[dict[str, int]] = []
    transfers: tuple[Transfer, ...] = ()
    action = "first preferences"
    winner: str | None = None

    while winner is None:
        number = len(rounds) + 1
        live = [c for c in range(n_cand) if continuing[c]]
        votes = {ids[c]: tallies[c] for c in live}
        active = sum(votes.values())
        top = max(live, key=lambda c: tallies[c])
        notes: list[str] = []
        excluded: list[int] = []
        if 2 * tallies[top] > active or len(live) == 1:
            winner = ids[top]
            if len(live) == 1:
                notes.append(f"{ids[top]} is the only continuing candidate: elected")
            else:
                notes.append(
                    f"{ids[top]} has {tallies[top]:,} of {active:,} continuing votes, "
                    "more than half: elected"
                )
        else:
            bulk = bulk_exclusion_set({c: tallies[c] for c in live}) if bulk_exclusion else []
            if bulk:
                excluded = bulk
                above = min((c for c in live if c not in bulk), key=lambda c: (tallies[c], c))
                notes.append(
                    "bulk exclusion: "
                    + ", ".join(ids[c] for c in bulk)
                    + f" have {sum(tallies[c] for c in bulk):,} votes together, fewer than "
                    f"{ids[above]}'s {tallies[above]:,}, so none of them can catch up: excluded"
                )
            else:
                chosen, fewest, tie = choose(
                    {ids[c]: tallies[c] for c in live},
                    history,
                    ties,
                    lowest=True,
                    seed=seed,
                    round_number=number,
                    kind="exclusion",
                )
                excluded = [ids.index(chosen)]
                why = "fewest votes" if tie is None else f"fewest votes, tie broken by {tie.how}"
                notes.append(f"{chosen} has the {why} ({fewest:,}): excluded")
        rounds.append(
            Round(
                number=number,
                action=action,
                tallies=votes,
                exhausted=exhausted,
                transfers=transfers,
                elected=(winner,) if winner else (),
                excluded=tuple(ids[c] for c in excluded),
                notes=tuple(notes),
            )
        )
        history.append(votes)
        if winner is not None:
            break
        for c in excluded:
            continuing[c] = False
        moved: list[Transfer] = []
        for c in excluded:
            to = [0] * n_cand
            lost = 0
            papers = 0
            for r, pos, n in piles[c]:
                papers += n
                ranking = rankings[r]
                nxt = pos + 1
                while nxt < len(ranking) and not continuing[ranking[nxt]]:
                    nxt += 1
                if nxt < len(ranking):
                    d = ranking[nxt]
                    piles[d].append((r, nxt, n))
                    to[d] += n
                else:
                    lost += n
            piles[c] = []
            tallies[c] = 0
            for d in range(n_cand):
                tallies[d] += to[d]
            exhausted += lost
            moved.append(
                Transfer(
                    source=ids[c],
                    reason="excluded",
                    to={ids[d]: to[d] for d in range(n_cand) if to[d]},
                    exhausted=lost,
                    ballots=papers,
                )
            )
        transfers = tuple(moved)
        names = ", ".join(ids[c] for c in excluded)
        action = f"ballots of excluded {names} transferred"

    return Result(
        method="irv",
        seats=1,
        quota=None,
        candidates=dict(ballots.names),
        rounds=tuple(rounds),
        winners=(winner,),
        tie_breaks=tuple(ties),
        ballots=ballots.total,
        invalid=ballots.invalid,
        blank=ballots.blank,
        seed=seed,
        rules=RULES + ("; bulk exclusion" if bulk_exclusion else ""),
        title=ballots.title,
        options={"bulk_exclusion": bulk_exclusion},
    )
