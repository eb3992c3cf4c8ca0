"""The documentation against the code: README.md, deploy/README.md and every page under docs/.

What the docs show must exist, and what the code reads must be documented:

- every ``openprimary COMMAND ... --flag`` shown in code (a code block or an inline code span)
  names a real command and options that command has (the parser, every command's module
  loaded: ``openprimary.cli.build_parser()``);
- every election-file key shown (in a ```toml block, which in these docs is always an election
  file, or an inline ```key = value``` span) is one ``ballots.election`` reads, and the election
  file's reference (docs/election-file.md) has a row for each key it reads, and no other;
- every ``OPENPRIMARY_*``, ``TWILIO_*`` and ``TELEGRAM_*`` variable named is read by the code
  (the settings, ``bot.settings.ENV_NAMES``; the deployment kit's files under deploy/; the
  tests' and CI's own switches), and the settings reference (docs/settings.md) names every
  variable the settings read.

:func:`problems` takes the texts, so a test can hand it a changed copy and see it complain.
CHANGELOG.md is history, with the names of its day, and is not checked.
"""

from __future__ import annotations

import argparse
import ast
import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import pytest

from ballots.election import CANDIDATE_KEYS, FILE_KEYS
from bot.settings import ALLOW_API_BASE, ENV_NAMES, FROM_FILES, Settings
from openprimary.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parent.parent
#: The page that must document every election-file key, and the one for every variable.
ELECTION_FILE_PAGE = "docs/election-file.md"
SETTINGS_PAGE = "docs/settings.md"
#: The project's rule: a README a newcomer reads in five minutes.
README_MOST_LINES = 200

_ENV = re.compile(r"(?<!\w)((?:OPENPRIMARY|TWILIO|TELEGRAM)_[A-Z0-9_]*[A-Z0-9])(?![\w*])")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([\w-]*)[^`]*$")
_INLINE = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.DOTALL)
_INVOCATION = re.compile(r"(?:^|(?<=[\s(`'\"=/]))openprimary(?=\s|$)")
_OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w])")
_SHELL_STOP = frozenset({"|", "||", "&&", ";", ">", ">>", "2>", "<", "&", "2>&1"})
_TOML_KEY = re.compile(r"^\s*([A-Za-z_][\w-]*)\s*=")
_TOML_TABLE = re.compile(r"^\s*(\[\[?)\s*([\w.-]+)\s*\]\]?")
_SPAN_KEY = re.compile(r"^([a-z][a-z_]*) = \S")
_ROW_KEY = re.compile(r"^\|\s*`([a-z_]+)`\s*\|")


# --- the code's side -------------------------------------------------------------------------


@dataclass
class Command:
    """One parser of the ``openprimary`` command: its options and its subcommands."""

    options: frozenset[str]
    subcommands: dict[str, Command] = field(default_factory=dict)
    #: Whether the command's own module registered it (not only its name and help).
    full: bool = True


def _command(parser: argparse.ArgumentParser) -> Command:
    node = Command(
        frozenset(parser._option_string_actions), full="-h" in parser._option_string_actions
    )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                node.subcommands[name] = _command(sub)
    return node


@cache
def cli() -> Command:
    """Every command, with every command's module loaded (``build_parser()`` without argv)."""
    return _command(build_parser())


def _all_options(node: Command) -> set[str]:
    found = set(node.options)
    for sub in node.subcommands.values():
        found |= _all_options(sub)
    return found


@cache
def settings_variables() -> frozenset[str]:
    """Every variable the settings read: each field's, the ``_FILE`` twins, and the switch
    that lets a ``.env`` file redirect an API base."""
    return frozenset(
        {*ENV_NAMES.values(), *(f"{name}_FILE" for name in FROM_FILES), ALLOW_API_BASE}
    )


@cache
def other_variables() -> frozenset[str]:
    """Variables read outside the settings: by the deployment kit's files (Compose, Caddy,
    the install script) and by the tests' and CI's own switches."""
    found: set[str] = set()
    sources = [*(ROOT / "deploy").rglob("*"), *(ROOT / "tests").rglob("*.py"), ROOT / ".ci/run"]
    for path in sources:
        if path.name == Path(__file__).name:
            continue  # this file names variables that no code reads, on purpose
        if path.is_file() and "node_modules" not in path.parts and path.suffix != ".md":
            found |= set(_ENV.findall(path.read_text(encoding="utf-8", errors="replace")))
    return frozenset(found)


# --- the docs' side --------------------------------------------------------------------------


def doc_texts() -> dict[str, str]:
    """The documentation, by path from the repository's top: what :func:`problems` checks."""
    paths = [ROOT / "README.md", ROOT / "deploy" / "README.md", *(ROOT / "docs").rglob("*.md")]
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8") for p in sorted(paths)}


@dataclass(frozen=True)
class Code:
    """A piece of code in a page: a logical line of a block, or an inline span."""

    line: int
    text: str
    language: str | None  # the fence's language; None for an inline span


def code_in(text: str) -> Iterator[Code]:
    """Every code block's logical lines (a trailing backslash joins the next), every line
    of an indented ``openprimary`` example, and every inline code span (which may run over
    a line break), with its line number."""
    lines = text.splitlines()
    prose: list[tuple[int, str]] = []
    fence: str | None = None
    language = ""
    pending: tuple[int, str] | None = None
    for number, line in enumerate(lines, start=1):
        opened = _FENCE.match(line)
        if fence is None:
            if opened:
                fence, language = opened.group(1), opened.group(2)
                continue
            if line.startswith("    ") and line.strip().startswith("openprimary "):
                yield Code(number, line.strip(), "sh")
                continue
            prose.append((number, line))
            continue
        closing = line.strip()
        if closing and set(closing) == {fence[0]} and len(closing) >= len(fence):
            fence = None
            continue
        start, before = pending if pending else (number, "")
        if line.rstrip().endswith("\\"):
            pending = (start, before + line.rstrip()[:-1] + " ")
            continue
        pending = None
        yield Code(start, before + line, language)
    # Inline spans, paragraph by paragraph (a span never crosses a blank line).
    paragraph: list[tuple[int, str]] = []
    for number, line in [*prose, (0, "")]:
        if line.strip():
            paragraph.append((number, line))
            continue
        if paragraph:
            joined = "\n".join(text for _, text in paragraph)
            for found in _INLINE.finditer(joined):
                first = paragraph[joined.count("\n", 0, found.start())][0]
                yield Code(first, " ".join(found.group(2).split()), None)
        paragraph = []


def _uncomment(code: str) -> str:
    """A shell line without its comment (a ``#`` at the start of a word)."""
    return re.sub(r"(^|\s)#.*$", "", code)


def invocations(code: str) -> Iterator[tuple[list[str], list[str]]]:
    """Each ``openprimary`` call in a line of code: its words and the options that follow."""
    for found in _INVOCATION.finditer(code):
        rest = code[found.end() :]
        try:
            tokens = shlex.split(rest)
        except ValueError:
            tokens = rest.split()
        words: list[str] = []
        options: list[str] = []
        for token in tokens:
            if token in _SHELL_STOP or token.startswith(("|", ">", "2>")):
                break
            if token.startswith(("-", "[", "(")) or "|--" in token:
                options += _OPTION.findall(token)
            elif not options:
                words.append(token)
        yield words, options


def check_invocation(words: list[str], options: list[str]) -> str | None:
    """What is wrong with ``openprimary WORDS... OPTIONS...``, if anything."""
    node = cli()
    path = ["openprimary"]
    for word in words:
        if not node.subcommands:
            break  # the command's own arguments (a file, an id)
        if word in node.subcommands:
            node = node.subcommands[word]
            path.append(word)
            continue
        if re.fullmatch(r"[A-Z][A-Z_]*", word):
            # A placeholder (``openprimary COMMAND --help``): options any command has.
            unknown = [o for o in options if o not in _all_options(cli())]
            return f"no command has {', '.join(unknown)}" if unknown else None
        if re.fullmatch(r"[a-z][a-z-]*", word):
            known = ", ".join(sorted(node.subcommands))
            return f"{' '.join(path)}: no command {word!r} (there are: {known})"
        break  # "$@" and the like: whatever the shell passes
    unknown = [o for o in options if o not in node.options]
    if unknown:
        return f"{' '.join(path)} has no option {', '.join(unknown)}"
    return None


def _toml_problems(code: str, table: list[str]) -> Iterator[str]:
    """Keys of one line of an election file, ``table`` the table the line is in (updated)."""
    header = _TOML_TABLE.match(code)
    if header:
        name = header.group(2)
        table[:] = [name]
        if name not in FILE_KEYS:
            yield f"election file: no key {name!r} (ballots.election.FILE_KEYS)"
        return
    key = _TOML_KEY.match(code)
    if key is None:
        return
    if not table and key.group(1) not in FILE_KEYS:
        yield f"election file: no key {key.group(1)!r} (ballots.election.FILE_KEYS)"
    if table == ["candidates"] and key.group(1) not in CANDIDATE_KEYS:
        yield f"election file: no candidate key {key.group(1)!r} (CANDIDATE_KEYS)"


def problems(texts: Mapping[str, str]) -> list[str]:
    """Every disagreement between these texts (path: text) and the code, as PATH:LINE: why."""
    found: list[str] = []
    for path, text in texts.items():
        table: list[str] = []
        block_start = -1
        for code in code_in(text):
            if code.language in ("sh", "bash", "console", "shell", "", None):
                for words, options in invocations(_uncomment(code.text)):
                    wrong = check_invocation(words, options)
                    if wrong:
                        found.append(f"{path}:{code.line}: {wrong}")
            if code.language == "toml":
                if code.line != block_start + 1:
                    table = []  # a new block starts at the top level
                block_start = code.line
                found += [f"{path}:{code.line}: {p}" for p in _toml_problems(code.text, table)]
            if code.language is None:
                key = _SPAN_KEY.match(code.text)
                if key and key.group(1) not in FILE_KEYS | CANDIDATE_KEYS:
                    found.append(f"{path}:{code.line}: election file: no key {key.group(1)!r}")
        for number, line in enumerate(text.splitlines(), start=1):
            for name in _ENV.findall(line):
                if name not in settings_variables() | other_variables():
                    found.append(f"{path}:{number}: {name} is read by nothing")
    found += _reference_problems(texts)
    return found


def _reference_problems(texts: Mapping[str, str]) -> list[str]:
    """The two reference pages cover what the code reads."""
    found: list[str] = []
    election = texts.get(ELECTION_FILE_PAGE)
    if election is None:
        found.append(f"{ELECTION_FILE_PAGE}: missing")
    else:
        rows = {m.group(1) for line in election.splitlines() if (m := _ROW_KEY.match(line))}
        for key in sorted(FILE_KEYS - rows):
            found.append(f"{ELECTION_FILE_PAGE}: no row for the key {key!r}")
        for key in sorted(rows - FILE_KEYS - CANDIDATE_KEYS):
            found.append(f"{ELECTION_FILE_PAGE}: a row for {key!r}, which no file may have")
    settings = texts.get(SETTINGS_PAGE)
    if settings is None:
        found.append(f"{SETTINGS_PAGE}: missing")
    else:
        for name in sorted(settings_variables()):
            if f"`{name}`" not in settings:
                found.append(f"{SETTINGS_PAGE}: {name} is read by the settings but not documented")
    return found


# --- the tests -------------------------------------------------------------------------------


def test_the_readme_is_short() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MOST_LINES, f"README.md has {len(lines)} lines"


def test_every_command_is_loaded_with_its_own_parser() -> None:
    assert set(cli().subcommands) == set(COMMANDS)
    assert [name for name, node in cli().subcommands.items() if not node.full] == []


def test_the_docs_agree_with_the_code() -> None:
    assert problems(doc_texts()) == []


def test_the_docs_show_commands_at_all() -> None:
    """The checker finds what it checks (a parser that found nothing would pass anything)."""
    texts = doc_texts()
    calls = [
        words
        for text in texts.values()
        for code in code_in(text)
        for words, _ in invocations(_uncomment(code.text))
        if words
    ]
    assert set(COMMANDS) - {words[0] for words in calls} == set()
    assert len(calls) > 100


@pytest.mark.parametrize(
    ("path", "old", "new", "complaint"),
    [
        # A flag renamed: the checker names the command and the option it lacks.
        ("README.md", "demo --count", "demo --counts", "openprimary demo has no option --counts"),
        ("docs/organisers.md", "--testers", "--tester", "has no option --tester"),
        ("docs/counting.md", "--seed 42", "--sead 42", "openprimary count has no option --sead"),
        # A subcommand, an election-file key and a variable renamed.
        ("docs/organisers.md", "codes issue", "codes issues", "no command 'issues'"),
        ("docs/election-file.md", "max_ranks = 3", "max_rank = 3", "no key 'max_rank'"),
        (
            "docs/telegram.md",
            "`OPENPRIMARY_TELEGRAM_RATE`",
            "`OPENPRIMARY_TG_RATE`",
            "read by nothing",
        ),
    ],
)
def test_a_renamed_name_in_the_docs_is_reported(
    path: str, old: str, new: str, complaint: str
) -> None:
    texts = doc_texts()
    assert old in texts[path], f"{path} no longer shows {old!r}: pick another"
    assert not [p for p in problems(texts) if complaint in p]
    changed = {**texts, path: texts[path].replace(old, new, 1)}
    reported = problems(changed)
    assert [p for p in reported if p.startswith(f"{path}:") and complaint in p], reported


def test_a_key_or_variable_left_out_of_its_reference_is_reported() -> None:
    texts = doc_texts()
    election = "\n".join(
        line
        for line in texts[ELECTION_FILE_PAGE].splitlines()
        if not line.startswith("| `abstain`")
    )
    settings = texts[SETTINGS_PAGE].replace("`OPENPRIMARY_CURRENCY`", "the currency")
    reported = problems({**texts, ELECTION_FILE_PAGE: election, SETTINGS_PAGE: settings})
    assert f"{ELECTION_FILE_PAGE}: no row for the key 'abstain'" in reported
    assert any(p.startswith(f"{SETTINGS_PAGE}: OPENPRIMARY_CURRENCY") for p in reported)


#: A value each setting accepts that is not its default.
SAMPLE_VALUES = {
    "OPENPRIMARY_REDIS_URL": "redis://127.0.0.1:6390/0",
    "OPENPRIMARY_DATA_DIR": "elsewhere",
    "OPENPRIMARY_SECRET_KEY": "3f9a1c0b7e5d42a8b6c1f0e9d8a7b6c5",
    "OPENPRIMARY_PUBLIC_URL": "https://vote.example.org",
    "OPENPRIMARY_ELECTION": "riverside-2027",
    "OPENPRIMARY_DEFAULT_REGION": "IE",
    "TWILIO_ACCOUNT_SID": "AC" + "0123456789abcdef" * 2,
    "TWILIO_AUTH_TOKEN": "token",
    "TWILIO_FROM": "+447700900000",
    "TWILIO_API_BASE": "http://127.0.0.1:1",
    "TELEGRAM_BOT_TOKEN": "123:abc",
    "TELEGRAM_WEBHOOK_SECRET": "webhook-secret",
    "TELEGRAM_API_BASE": "http://127.0.0.1:2",
    "OPENPRIMARY_SMS_RATE": "3",
    "OPENPRIMARY_TELEGRAM_RATE": "4",
    "OPENPRIMARY_TELEGRAM_CHAT_RATE": "2",
    "OPENPRIMARY_CODE_SMS_PER_HOUR": "7",
    "OPENPRIMARY_CODE_GUESSES_PER_HOUR": "9",
    "OPENPRIMARY_DELETE_COPIES": "off",
    "OPENPRIMARY_DURABLE_REPLICAS": "1",
    "OPENPRIMARY_SMS_BUDGET_SEGMENTS": "5",
    "OPENPRIMARY_SMS_BUDGET_TOTAL": "6",
    "OPENPRIMARY_CURRENCY": "EUR",
    "OPENPRIMARY_TRUSTED_PROXIES": "10.0.0.0/8",
    "OPENPRIMARY_METRICS_TOKEN": "a8Jq3-Zr0_x" * 4,
}


@pytest.mark.parametrize(("name", "variable"), sorted(ENV_NAMES.items()))
def test_each_variable_is_read_into_its_setting(name: str, variable: str, tmp_path: Path) -> None:
    """``ENV_NAMES`` is what ``Settings.from_env`` does: each variable sets its field."""
    base = {"OPENPRIMARY_DATA_DIR": str(tmp_path)}
    before = Settings.from_env(base, None, local_secret=False)
    after = Settings.from_env({**base, variable: SAMPLE_VALUES[variable]}, None, local_secret=False)
    assert getattr(after, name) != getattr(before, name)
    changed = [f for f in ENV_NAMES if getattr(after, f) != getattr(before, f)]
    assert changed == [name]


def test_the_settings_read_no_variable_outside_their_list() -> None:
    """Every variable name written in bot/settings.py is one of :func:`settings_variables`
    (a new ``get("OPENPRIMARY_X")`` without its entry in ``ENV_NAMES`` fails here)."""
    source = (ROOT / "bot" / "settings.py").read_text(encoding="utf-8")
    literals = {
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and _ENV.fullmatch(node.value)
    }
    assert literals <= settings_variables(), sorted(literals - settings_variables())
    assert set(ENV_NAMES) == {f for f in Settings.__dataclass_fields__ if f != "copy_delays"}


def test_the_readmes_links_lead_somewhere() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and t[0] != "#"]
    assert local, "README.md links into the docs"
    assert [t for t in local if not (ROOT / t).exists()] == []
