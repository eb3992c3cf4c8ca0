"""Single transferable vote by the Scottish Local Government Elections Order 2007 (SSI 2007/42).

The rules, with the Order's rule numbers:

- **Quota (46).**  The Droop quota: the number of valid ballots divided by
  one more than the number of seats, ignoring any fraction, plus one.
- **Election (47).**  A candidate whose votes equal or exceed the quota at
  any stage is elected.  Candidates elected at the same stage are listed in
  order of their votes.
- **Surplus (48, 49).**  While seats remain to be filled, the surplus (votes
  above the quota) of an elected candidate is transferred: *all* of that
  candidate's ballot papers pass to their next preference for a continuing
  candidate, each at the transfer value ``surplus x (value of the paper when
  received) / (candidate's total votes)``, calculated to five decimal places
  with any remainder ignored.  Papers with no further preference are
  non-transferable (exhausted) at that value; the elected candidate keeps
  the quota.  The largest surplus goes first; equal surpluses are ordered by
  the votes at the most recent earlier stage at which the candidates were
  unequal, and then by lot.
- **Exclusion (50, 51).**  When no surplus is left to transfer, the
  continuing candidate with the fewest votes is excluded and all of their
  papers pass, at the value at which each was received, to their next
  continuing preference.  A tie for fewest votes is broken by the most
  recent earlier stage at which the candidates were unequal (fewest
  excluded), and then by lot.
- **Last vacancies (52).**  When the continuing candidates are no more than
  the seats left, they are all elected and no further transfer is made.

Arithmetic is exact: every vote is an integer number of hundred-thousandths
(the Order's five decimal places), so nothing is ever a float.  Truncating
transfer values loses a little: each stage reports this "loss to fractions",
and continuing votes plus non-transferable votes plus the loss always equal
the number of valid ballots.  Tie-breaks are described in ``ties.py``.
"""

from __future__ import annotations

from decimal import Decimal

from ballots.count.model import Ballots, CountError, indexed
from ballots.count.result import Result, Round, TieBreak, Transfer
from ballots.count.ties import choose

#: Votes are held as integer multiples of 1/SCALE: five decimal places.
SCALE = 100_000

RULES = (
    "STV, Scottish Local Government Elections Order 2007: Droop quota; transfer values "
    "truncated to 5 decimal places; all papers of an elected candidate examined; "
    "largest surplus first; ties by earlier stages, then lot"
)

Pile = dict[tuple[int, int, int], int]
"""(ranking index, position in the ranking, value in 1/SCALE) -> number of papers."""


def droop_quota(valid_ballots: int, seats: int) -> int:
    """The Droop quota of rule 46: ballots // (seats + 1), plus one."""
    return valid_ballots // (seats + 1) + 1


def to_decimal(scaled: int) -> Decimal:
    """A vote count held in 1/SCALE units as a Decimal with five places."""
    return Decimal(scaled).scaleb(-5)


def _show(scaled: int) -> str:
    return str(to_decimal(scaled))


def count_stv(ballots: Ballots, seats: int, *, seed: int = 0) -> Result:
    """Count ``ballots`` for ``seats`` seats by the Scottish STV rules."""
    if seats < 1:
        raise CountError("STV needs at least one seat")
    if len(ballots.candidates) < seats:
        raise CountError(f"{seats} seats need at least {seats} candidates")
    if ballots.total == 0:
        raise CountError("there are no valid ballots to count")
    ids = ballots.candidates
    n_cand = len(ids)
    rankings, counts = indexed(ballots)
    quota = droop_quota(ballots.total, seats) * SCALE
    piles: list[Pile] = [{} for _ in range(n_cand)]
    tallies = [0] * n_cand
    for r, (ranking, n) in enumerate(zip(rankings, counts, strict=True)):
        key = (r, 0, SCALE)
        first = ranking[0]
        piles[first][key] = piles[first].get(key, 0) + n
        tallies[first] += n * SCALE

    hopeful = [True] * n_cand
    shown = [True] * n_cand  # not excluded before the current stage
    elected: list[int] = []
    pending: list[int] = []  # elected with a surplus not yet transferred
    exhausted = 0
    loss = 0
    rounds: list[Round] = []
    ties: list[TieBreak] = []
    history: list[dict[str, int]] = []
    transfers: tuple[Transfer, ...] = ()
    action = "first preferences"

    def move(c: int, value_of: dict[int, int] | None) -> tuple[list[int], int, int]:
        """Pass c's papers to their next continuing preference; return (to, exhausted, papers).

        ``value_of`` maps a paper's value to its new (transfer) value; None keeps it.
        """
        to = [0] * n_cand
        lost = 0
        papers = 0
        for (r, pos, value), n in piles[c].items():
            papers += n
            new = value if value_of is None else value_of[value]
            if new == 0:
                continue  # a paper worth nothing carries nothing anywhere
            ranking = rankings[r]
            nxt = pos + 1
            while nxt < len(ranking) and not hopeful[ranking[nxt]]:
                nxt += 1
            if nxt < len(ranking):
                d = ranking[nxt]
                key = (r, nxt, new)
                piles[d][key] = piles[d].get(key, 0) + n
                to[d] += new * n
            else:
                lost += new * n
        piles[c] = {}
        for d in range(n_cand):
            tallies[d] += to[d]
        return to, lost, papers

    while True:
        number = len(rounds) + 1
        notes: list[str] = []
        reached = [c for c in range(n_cand) if hopeful[c] and tallies[c] >= quota]
        reached.sort(key=lambda c: (-tallies[c], c))
        now_elected: list[int] = []
        for c in reached:
            hopeful[c] = False
            elected.append(c)
            now_elected.append(c)
            if tallies[c] > quota:
                pending.append(c)
            notes.append(f"{ids[c]} has {_show(tallies[c])}, at least the quota: elected")
        left = seats - len(elected)
        continuing = [c for c in range(n_cand) if hopeful[c]]
        excluded: list[int] = []
        surplus_of: int | None = None
        done = left <= 0 or len(continuing) <= left
        if done and left > 0:
            for c in sorted(continuing, key=lambda c: (-tallies[c], c)):
                hopeful[c] = False
                elected.append(c)
                now_elected.append(c)
            notes.append(
                "the continuing candidates are no more than the seats left: "
                + ", ".join(ids[c] for c in continuing)
                + " elected (rule 52)"
            )
        elif not done and pending:
            chosen, _, tie = choose(
                {ids[c]: tallies[c] for c in pending},
                history,
                ties,
                lowest=False,
                seed=seed,
                round_number=number,
                kind="surplus order",
                show=_show,
            )
            surplus_of = ids.index(chosen)
        elif not done:
            chosen, fewest, tie = choose(
                {ids[c]: tallies[c] for c in continuing},
                history,
                ties,
                lowest=True,
                seed=seed,
                round_number=number,
                kind="exclusion",
                show=_show,
            )
            excluded = [ids.index(chosen)]
            why = "fewest votes" if tie is None else f"fewest votes, tie broken by {tie.how}"
            notes.append(f"{chosen} has the {why} ({_show(fewest)}): excluded")
        votes = {ids[c]: tallies[c] for c in range(n_cand) if shown[c]}
        rounds.append(
            Round(
                number=number,
                action=action,
                tallies={c: to_decimal(v) for c, v in votes.items()},
                exhausted=to_decimal(exhausted),
                transfers=transfers,
                elected=tuple(ids[c] for c in now_elected),
                excluded=tuple(ids[c] for c in excluded),
                notes=tuple(notes),
                loss=to_decimal(loss),
            )
        )
        history.append(votes)
        if done:
            break
        if surplus_of is not None:
            c = surplus_of
            pending.remove(c)
            total = tallies[c]
            surplus = total - quota
            values = {value for (_, _, value) in piles[c]}
            value_of = {v: v * surplus // total for v in values}
            tallies[c] = quota
            to, lost, papers = move(c, value_of)
            transferred = sum(to) + lost
            exhausted += lost
            loss += surplus - transferred
            transfers = (
                Transfer(
                    source=ids[c],
                    reason="surplus",
                    to={ids[d]: to_decimal(to[d]) for d in range(n_cand) if to[d]},
                    exhausted=to_decimal(lost),
                    ballots=papers,
                    transfer_value=to_decimal(SCALE * surplus // total),
                    loss=to_decimal(surplus - transferred),
                ),
            )
            action = f"surplus of {ids[c]} ({_show(surplus)}) transferred"
        else:
            (c,) = excluded
            hopeful[c] = False
            shown[c] = False
            tallies[c] = 0
            to, lost, papers = move(c, None)
            exhausted += lost
            transfers = (
                Transfer(
                    source=ids[c],
                    reason="excluded",
                    to={ids[d]: to_decimal(to[d]) for d in range(n_cand) if to[d]},
                    exhausted=to_decimal(lost),
                    ballots=papers,
                ),
            )
            action = f"papers of excluded {ids[c]} transferred"

    return Result(
        method="stv",
        seats=seats,
        quota=to_decimal(quota),
        candidates=dict(ballots.names),
        rounds=tuple(rounds),
        winners=tuple(ids[c] for c in elected),
        tie_breaks=tuple(ties),
        ballots=ballots.total,
        invalid=ballots.invalid,
        blank=ballots.blank,
        seed=seed,
        rules=RULES,
        title=ballots.title,
    )
