"""The count report's words: candidates by name everywhere, one word for exhausted ballots,
plural forms from the catalogues, in English and in Welsh."""

from __future__ import annotations

import re

from ballots.count import count
from ballots.count.model import Ballots
from ballots.count.svg import bars, sankey
from bot.count_report import render_text
from bot.i18n import speaking

NAMES = {"obi": "Ngozi Obi", "walsh": "Pat Walsh", "khan": "Sara Khan"}
IDS = tuple(NAMES)


def _ballots(*groups: tuple[int, str]) -> Ballots:
    rankings = [r.split(",") for n, r in groups for _ in range(n)]
    return Ballots.from_rankings(IDS, rankings, names=NAMES, title="Riverside selection")


# walsh 4, khan 3, obi 1 (obi,khan).  Round 1: nobody has more than 4 of 8: Ngozi Obi, fewest,
# out.  Round 2: her ballot goes to Sara Khan: 4 each; the tie for fewest is broken by round 1
# (khan 3): Sara Khan out, her ballots exhausted.  Round 3: Pat Walsh alone, elected.
IRV = _ballots((4, "walsh"), (3, "khan"), (1, "obi,khan"))


def _sentences(text: str) -> str:
    """The report without its table (whose rows are the candidates' names anyway)."""
    return text[text.index("Round by round") :]


def test_an_english_report_names_candidates_and_counts_in_the_right_number() -> None:
    text = render_text(count(IRV, "irv"))
    words = _sentences(text)
    for cid in IDS:
        assert not re.search(rf"\b{cid}\b", words), cid  # names, never ids
    assert "Ngozi Obi has the fewest votes (1): excluded." in words
    assert "1 ballot of Ngozi Obi: 1 to Sara Khan, 0 exhausted" in words  # not "1 ballots"
    assert "Sara Khan has the fewest votes (4), tie broken by earlier rounds: excluded." in words
    assert "4 ballots of Sara Khan: 4 exhausted" in words
    assert "Pat Walsh is the only continuing candidate: elected." in words
    assert "Round 2: ballots of excluded Ngozi Obi transferred." in words
    assert (
        "Round 2, exclusion: Sara Khan, Pat Walsh tied; Sara Khan chosen by earlier rounds "
        "(round 1: Sara Khan 3, Pat Walsh 4)." in words
    )
    assert text.rstrip().endswith("Elected: Pat Walsh.")
    assert "Exhausted" in text and "Non-transferable" not in text
    assert text.startswith("Riverside selection: instant-runoff\n")
    plural = render_text(count(_ballots((5, "walsh"), (3, "khan"), (2, "obi,khan")), "irv"))
    assert "Valid ballots: 10." in plural
    assert "2 ballots of Ngozi Obi: 2 to Sara Khan, 0 exhausted" in plural


def test_a_supplementary_vote_and_an_stv_count_say_why_in_names() -> None:
    sv = render_text(count(_ballots((4, "walsh"), (3, "khan,obi"), (2, "obi,khan")), "sv"))
    assert (
        "no candidate has more than half of the 1st choices: Pat Walsh, Sara Khan continue, "
        "every other candidate is excluded." in sv
    )
    assert "Sara Khan has more votes (5): elected." in sv
    stv = render_text(
        count(_ballots((6, "walsh,khan"), (2, "khan"), (1, "obi,khan")), "stv", seats=2)
    )
    assert "Riverside selection: single transferable vote, 2 seats" in stv
    assert "Pat Walsh has 6.00000, at least the quota: elected." in stv
    assert "surplus of Pat Walsh, 6 papers at transfer value" in stv
    assert not re.search(r"\b(walsh|khan|obi)\b", _sentences(stv))


def test_a_welsh_report_in_welsh_words_and_welsh_plural_forms() -> None:
    with speaking("cy"):
        text = render_text(count(IRV, "irv"))
        two = render_text(count(_ballots((5, "walsh"), (3, "khan"), (2, "obi,khan")), "irv"))
    assert text.startswith("Riverside selection: pleidlais amgen (dileu fesul rownd)\n")
    assert "Rownd wrth rownd" in text and "Round" not in text
    assert "Wedi darfod" in text and "Exhausted" not in text
    assert "Ngozi Obi sydd â'r lleiaf o bleidleisiau (1): eithriwyd." in text
    # One ballot: the singular ("1 bleidlais"); two: the plural ("2 o bleidleisiau").
    assert "1 bleidlais Ngozi Obi: 1 i Sara Khan, 0 wedi darfod" in text
    assert "2 o bleidleisiau Ngozi Obi: 2 i Sara Khan, 0 wedi darfod" in two
    assert "Pat Walsh yw'r unig ymgeisydd sy'n parhau: etholwyd." in text
    assert "cyfartaledd wedi'i dorri gan rowndiau cynharach: eithriwyd." in text
    assert text.rstrip().endswith("Etholwyd: Pat Walsh.")
    for cid in IDS:
        assert not re.search(
            rf"\b{cid}\b", _sentences(text.replace("Rownd wrth rownd", "Round by round"))
        )


def test_the_charts_describe_the_count_in_good_english() -> None:
    one = sankey(count(_ballots((5, "walsh"), (1, "khan")), "sv"))
    assert "1 round of an SV count; elected: Pat Walsh." in one
    three = sankey(count(IRV, "irv"))
    assert "3 rounds of an IRV count; elected: Pat Walsh." in three
    assert "Non-transferable" not in three + bars(count(IRV, "irv"))
