"""How fast commands start: ``openprimary --help``, and counting a 1,000,000-ballot BLT file
as a whole process, against votelib reading and counting the same file.

Run: ``.venv/bin/python -m benchmarks.bench_startup`` (votelib is in the development lock that
``./check`` installs; without it, its row is left out).

Each time is the best of several runs of a new process, interpreter start included.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ballots.count.formats import write_ballots
from benchmarks.bench_count import generate

VOTELIB = """
import sys
import votelib.evaluate.sequential as vl
from votelib.io import blt
with open(sys.argv[1], encoding="utf-8") as f:
    votes, seats, candidates, name = blt.load(f)
print(vl.TransferableVoteSelector(quota_function="droop").evaluate(votes, seats))
"""


def best(runs: int, argv: list[str]) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ballots", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    openprimary = [sys.executable, "-m", "openprimary.cli"]
    bare = best(10, [sys.executable, "-c", "pass"])
    help_time = best(10, [*openprimary, "--help"])
    print(f"python -c pass: {bare:.3f} s; openprimary --help: {help_time:.3f} s")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ballots.blt"
        with path.open("w", encoding="utf-8") as f:
            write_ballots(generate(args.ballots, 10, 1), "blt", f, 1)
        ours = best(args.runs, [*openprimary, "count", "--ballots", str(path), "--method", "irv"])
        line = f"count --ballots, {args.ballots:,} ballots (BLT), whole process: {ours:.2f} s"
        if importlib.util.find_spec("votelib") is not None:
            theirs = best(args.runs, [sys.executable, "-c", VOTELIB, str(path)])
            line += f"; votelib reading and counting it: {theirs:.2f} s ({ours / theirs:.2f}x)"
        print(line)


if __name__ == "__main__":
    main()
