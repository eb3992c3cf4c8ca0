"""Ballot files: the marking rules, malformed files as FILE:LINE: reason, and round trips."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from ballots.count.formats import (
    format_of,
    parse_blt,
    parse_csv,
    parse_preflib,
    read_ballots,
    write_ballots,
)
from ballots.count.model import Ballots, CountError, ranking_from_marks
from ballots.errors import FileProblems

GLASGOW = Path(__file__).parent / "data" / "glasgow-2007" / "blt"


def problems(err: pytest.ExceptionInfo[FileProblems]) -> list[str]:
    return [str(p) for p in err.value.problems]


def test_marking_rules() -> None:
    # A blank position is passed over.
    assert ranking_from_marks(["a", "", "b"]) == ("a", "b")
    # A repeated candidate counts only at its first mark.
    assert ranking_from_marks(["a", "b", "a", "c"]) == ("a", "b", "c")
    # A shared position ends the ballot there.
    assert ranking_from_marks(["a", ("b", "c"), "d"]) == ("a",)
    assert ranking_from_marks([("b", "c"), "d"]) == ()
    # The same candidate twice at one position is one mark.
    assert ranking_from_marks([("b", "b"), "d"]) == ("b", "d")


def test_ballots_without_a_first_preference_are_invalid_not_counted() -> None:
    ballots = Ballots.from_rankings(["a", "b"], [["a"], [("a", "b")], [""], ["b", "a"]])
    assert ballots.total == 2
    assert ballots.invalid == 2


def test_ballots_reject_unknown_candidates() -> None:
    with pytest.raises(CountError, match="unknown candidate"):
        Ballots(("a",), {("a", "z"): 1})


def test_blt_reads_groups_names_title_seats_ties_skips_and_withdrawals() -> None:
    text = (
        "4 2\n-4\n"
        "3 1 2 0\n"
        "2 2 - 3 0\n"  # a skipped position
        "1 3 1=2 4 0\n"  # a shared position ends the ballot
        "1 4 0\n"  # only the withdrawn candidate: invalid
        "1 4 2 0\n"  # the withdrawn candidate is passed over
        '0\n"Ann"\n"Bo  Bo"\n"Cy"\n"Di"\n"Test ward"\n'
    )
    b = parse_blt(text, "t.blt")
    assert b.candidates == ("Ann", "Bo Bo", "Cy")
    assert (b.seats, b.title, b.invalid) == (2, "Test ward", 1)
    assert dict(b.groups) == {
        ("Ann", "Bo Bo"): 3,
        ("Bo Bo", "Cy"): 2,
        ("Cy",): 1,
        ("Bo Bo",): 1,
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "t.blt:1: empty file: expected 'candidates seats'"),
        ("two 1\n", "t.blt:1: expected 'candidates seats' (two whole numbers), got 'two 1'"),
        ('2 1\n1 1 2\n0\n"A"\n"B"\n', "t.blt:2: a ballot line must end with 0"),
        ('2 1\nx 1 0\n0\n"A"\n"B"\n', "t.blt:2: expected 'count pref pref ... 0', got 'x 1 0'"),
        ('2 1\n1 1 0\n0\n"A"\n', "t.blt:4: expected 2 candidate names after the ballots"),
        ('2 1\n1 1 0\n0\n"A"\n"A"\n', "t.blt:5: candidate name 'A' appears twice"),
        ("2 1\n1 1 0\n", "t.blt:2: missing the '0' line that ends the ballots"),
        ('2 1\n-3\n1 1 0\n0\n"A"\n"B"\n', "t.blt:2: withdrawn candidate '-3' is not -1 to -2"),
    ],
)
def test_blt_problems(text: str, expected: str) -> None:
    with pytest.raises(FileProblems) as err:
        parse_blt(text, "t.blt")
    assert problems(err)[0] == expected


def test_blt_reports_every_bad_line_at_once() -> None:
    text = '2 1\n1 1 3 0\n1 1 2 0\n2 x 0\n0\n"A"\n"B"\n'
    with pytest.raises(FileProblems) as err:
        parse_blt(text, "t.blt")
    assert problems(err) == [
        "t.blt:2: preference '3' is not a candidate number 1 to 2",
        "t.blt:4: preference 'x' is not a candidate number 1 to 2",
    ]


PREFLIB = """# FILE NAME: t.toi
# TITLE: Test
# DATA TYPE: toi
# NUMBER ALTERNATIVES: 3
# NUMBER VOTERS: 7
# ALTERNATIVE NAME 1: Ann
# ALTERNATIVE NAME 2: Bo
# ALTERNATIVE NAME 3: Cy
3: 1,2
2: 2,{1,3}
1: {1,2},3
1: 3
"""


def test_preflib_reads_ties_by_the_stated_rule() -> None:
    b = parse_preflib(PREFLIB, "t.toi")
    assert b.candidates == ("Ann", "Bo", "Cy")
    assert b.title == "Test"
    assert dict(b.groups) == {("Ann", "Bo"): 3, ("Bo",): 2, ("Cy",): 1}
    assert b.invalid == 1


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("3: 1,2", "3 1,2"), "t.toi:9: expected 'count: 1,2,3', got '3 1,2'"),
        (("1: 3", "1: 4"), "t.toi:12: candidate number 4 is not 1 to 3"),
        (("1: 3", "1: x"), "t.toi:12: 'x' is not a candidate number"),
        (
            ("VOTERS: 7", "VOTERS: 8"),
            "t.toi:5: the header says 8 voters but the file holds 7 ballots",
        ),
        (("# NUMBER ALTERNATIVES: 3\n", ""), None),
    ],
)
def test_preflib_problems(change: tuple[str, str], expected: str | None) -> None:
    text = PREFLIB.replace(*change)
    if expected is None:  # without the header, the names still say how many
        assert parse_preflib(text, "t.toi").candidates == ("Ann", "Bo", "Cy")
        return
    with pytest.raises(FileProblems) as err:
        parse_preflib(text, "t.toi")
    assert problems(err)[0] == expected


def test_csv_reads_one_ballot_per_row() -> None:
    text = '# a comment\nAnn,Bo\nBo,,Cy\n"Cy",Ann=Bo\nAnn,Bo,Ann\n,\n'
    b = parse_csv(text, "t.csv")
    assert b.candidates == ("Ann", "Bo", "Cy")
    assert dict(b.groups) == {("Ann", "Bo"): 2, ("Bo", "Cy"): 1, ("Cy",): 1}
    assert b.invalid == 1


def test_csv_candidates_line_lists_everyone_and_catches_typos() -> None:
    b = parse_csv("# candidates: Ann, Bo, Cy\nAnn\n", "t.csv")
    assert b.candidates == ("Ann", "Bo", "Cy")
    with pytest.raises(FileProblems) as err:
        parse_csv("# candidates: Ann, Bo\nAnn\nAn,Bo\n", "t.csv")
    assert problems(err) == ["t.csv:3: 'An' is not in the '# candidates:' line"]


def test_unknown_suffix_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(FileProblems, match=r"x\.txt:1: unknown ballot file type"):
        format_of(tmp_path / "x.txt")


def test_unreadable_file_is_a_problem(tmp_path: Path) -> None:
    with pytest.raises(FileProblems, match=r"missing\.blt:1: cannot read file"):
        read_ballots(tmp_path / "missing.blt")


@pytest.mark.parametrize(("fmt", "suffix"), [("blt", ".blt"), ("preflib", ".soi"), ("csv", ".csv")])
def test_write_then_read_gives_the_same_ballots(tmp_path: Path, fmt: str, suffix: str) -> None:
    original = read_ballots(GLASGOW / "Govan-2007.blt")
    path = tmp_path / f"govan{suffix}"
    with path.open("w", encoding="utf-8", newline="") as f:
        write_ballots(original, fmt, f, original.seats)
    again = read_ballots(path)
    assert again.candidates == original.candidates
    assert dict(again.groups) == dict(original.groups)


def test_written_files_are_sorted_by_ranking() -> None:
    ballots = Ballots.from_rankings(["x", "y"], [["y"], ["x", "y"], ["y", "x"], ["x"]])
    out = io.StringIO()
    write_ballots(ballots, "blt", out)
    assert out.getvalue().splitlines()[1:5] == ["1 1 0", "1 1 2 0", "1 2 0", "1 2 1 0"]


def test_write_unknown_format() -> None:
    with pytest.raises(CountError, match="unknown format"):
        write_ballots(Ballots.from_rankings(["x"], [["x"]]), "xml", io.StringIO())


# --- hostile files and names ----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('2² 1\n1 1 0\n0\n"A"\n"B"\n', "b.blt:1: expected 'candidates seats'"),
        ("2 1\n" + "9" * 5001 + ' 1 0\n0\n"A"\n"B"\n', "b.blt:2: expected 'count pref"),
        ("30000000 1\n0\n", "b.blt:1: 30000000 candidates: at most 1000"),
        ('2 1\n1 ١ 0\n0\n"A"\n"B"\n', "b.blt:2: preference '١' is not a candidate"),
    ],
)
def test_hostile_blt_files_get_file_line_reason(text: str, expected: str) -> None:
    with pytest.raises(FileProblems) as err:
        parse_blt(text, "b.blt")
    assert problems(err)[0].startswith(expected)


def test_a_tiny_preflib_file_cannot_declare_thirty_million_alternatives() -> None:
    with pytest.raises(FileProblems) as err:
        parse_preflib("# NUMBER ALTERNATIVES: 30000000\n1: 1\n", "p.soi")
    assert problems(err) == ["p.soi:1: 30000000 alternatives: at most 1000 are taken"]


def test_many_bad_candidate_numbers_are_reported_from_one_pass() -> None:
    lines = ["# NUMBER ALTERNATIVES: 2"] + [f"1: 1,{n}" for n in range(3, 30_003)]
    with pytest.raises(FileProblems) as err:
        parse_preflib("\n".join(lines) + "\n", "p.soi")
    found = problems(err)
    assert found[0] == "p.soi:2: candidate number 3 is not 1 to 2"
    assert len(found) <= 20


def test_a_hash_in_a_name_survives_blt_and_a_quote_round_trips(tmp_path: Path) -> None:
    ballots = Ballots.from_rankings(["a", "b"], [["a", "b"], ["b"]])
    ballots = Ballots(
        ballots.candidates,
        ballots.groups,
        names={"a": "Ann #1", "b": "Bo"},
        title="Ward #3",
    )
    out = io.StringIO()
    write_ballots(ballots, "blt", out)
    again = parse_blt(out.getvalue())
    assert again.candidates == ("Ann #1", "Bo") and again.title == "Ward #3"
    quoted = Ballots(ballots.candidates, ballots.groups, names={"a": 'Ann "Red"', "b": "Bo"})
    out = io.StringIO()
    write_ballots(quoted, "blt", out)
    assert parse_blt(out.getvalue()).candidates == ('Ann "Red"', "Bo")
    # A name holding the fullwidth quote that stands for '"' in the file cannot round-trip.
    odd = Ballots(ballots.candidates, ballots.groups, names={"a": "Ann \uff02", "b": "Bo"})
    with pytest.raises(CountError, match="U\\+FF02"):
        write_ballots(odd, "blt", io.StringIO())


def test_a_name_with_a_newline_cannot_inject_ballots_into_a_preflib_export() -> None:
    injected = "Mallory\n1000: 2,1"
    ballots = Ballots.from_rankings(["a", "b"], [["a", "b"]])
    ballots = Ballots(ballots.candidates, ballots.groups, names={"a": "Ann", "b": injected})
    with pytest.raises(CountError, match="one line of printable text"):
        write_ballots(ballots, "preflib", io.StringIO())
