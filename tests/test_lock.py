"""The lock agrees with pyproject.toml, and what is installed is what the lock says.

``./lock`` writes requirements/runtime.txt and requirements/dev.txt from pyproject.toml; a
dependency added, dropped or given a bound the pinned version does not meet, without running
``./lock`` again, fails here.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "requirements" / "runtime.txt"
DEV = ROOT / "requirements" / "dev.txt"
#: The extras that requirements/dev.txt locks beside the runtime.
LOCKED_EXTRAS = ("dev", "bench")
#: What pyproject.toml is called in pip-compile's "# via" lines for a direct dependency.
DIRECT = "openprimary (pyproject.toml)"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


@dataclass
class Pin:
    """One package in a lock file: its version, its hashes and what asked for it."""

    version: Version
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)


def read_lock(text: str) -> dict[str, Pin]:
    """The pins of a pip-compile lock, by canonical name."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    for raw in text.splitlines():
        line = raw.strip()
        pin = _PIN.match(raw)
        if pin:
            current = Pin(Version(pin.group(2)))
            pins[canonicalize_name(pin.group(1))] = current
        elif current is not None and line.startswith("--hash="):
            current.hashes.append(line.removeprefix("--hash=").rstrip(" \\"))
        elif current is not None and line.startswith("# via"):
            rest = line.removeprefix("# via").strip()
            if rest:
                current.via.append(rest)
        elif current is not None and line.startswith("#   "):
            current.via.append(line.removeprefix("#").strip())
        elif line and not line.startswith("#"):
            raise AssertionError(f"a line the lock's reader does not know: {raw!r}")
    return pins


def wanted(pyproject: dict[str, object], extras: tuple[str, ...]) -> list[Requirement]:
    """pyproject.toml's requirements: the runtime's and those of the given extras."""
    project = pyproject["project"]
    assert isinstance(project, dict)
    found = [Requirement(spec) for spec in project["dependencies"]]
    for extra in extras:
        found += [Requirement(spec) for spec in project["optional-dependencies"][extra]]
    return found


def disagreements(
    pyproject: dict[str, object], lock: dict[str, Pin], extras: tuple[str, ...]
) -> list[str]:
    """Each way the lock fails what pyproject.toml asks, said as a person would fix it."""
    problems = []
    asked = wanted(pyproject, extras)
    names = {canonicalize_name(r.name) for r in asked}
    for requirement in asked:
        name = canonicalize_name(requirement.name)
        pin = lock.get(name)
        if pin is None:
            problems.append(f"{requirement.name} is in pyproject.toml but not in the lock")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(
                f"{requirement.name}: the lock pins {pin.version}, "
                f"pyproject.toml asks for {requirement.specifier}"
            )
    for locked, pin in lock.items():
        if DIRECT in pin.via and locked not in names:
            problems.append(
                f"{locked} is locked as a dependency but pyproject.toml no longer asks for it"
            )
    return problems


def _pyproject() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


@pytest.mark.parametrize(("lock_file", "extras"), [(RUNTIME, ()), (DEV, LOCKED_EXTRAS)])
def test_the_lock_satisfies_pyproject(lock_file: Path, extras: tuple[str, ...]) -> None:
    lock = read_lock(lock_file.read_text(encoding="utf-8"))
    problems = disagreements(_pyproject(), lock, extras)
    assert problems == [], "run ./lock to make the lock again:\n" + "\n".join(problems)


def test_a_dependency_added_without_relocking_is_caught() -> None:
    pyproject = _pyproject()
    project = pyproject["project"]
    assert isinstance(project, dict)
    project["dependencies"] = [*project["dependencies"], "uvloop>=0.19"]
    lock = read_lock(RUNTIME.read_text(encoding="utf-8"))
    assert disagreements(pyproject, lock, ()) == ["uvloop is in pyproject.toml but not in the lock"]


def test_a_bound_the_pin_does_not_meet_is_caught() -> None:
    pyproject = _pyproject()
    project = pyproject["project"]
    assert isinstance(project, dict)
    lock = read_lock(RUNTIME.read_text(encoding="utf-8"))
    above = f"redis[hiredis]>{lock['redis'].version}"
    project["dependencies"] = [
        above if spec.startswith("redis[") else spec for spec in project["dependencies"]
    ]
    assert disagreements(pyproject, lock, ()) == [
        f"redis: the lock pins {lock['redis'].version}, pyproject.toml asks for "
        f">{lock['redis'].version}"
    ]


def test_a_dropped_dependency_is_caught() -> None:
    pyproject = _pyproject()
    project = pyproject["project"]
    assert isinstance(project, dict)
    project["dependencies"] = [d for d in project["dependencies"] if not d.startswith("rich")]
    lock = read_lock(RUNTIME.read_text(encoding="utf-8"))
    assert disagreements(pyproject, lock, ()) == [
        "rich is locked as a dependency but pyproject.toml no longer asks for it"
    ]


def test_every_pin_has_hashes_and_the_two_locks_agree() -> None:
    runtime = read_lock(RUNTIME.read_text(encoding="utf-8"))
    dev = read_lock(DEV.read_text(encoding="utf-8"))
    for name, pin in [*runtime.items(), *dev.items()]:
        assert pin.hashes, f"{name} has no hash"
        assert all(h.startswith("sha256:") for h in pin.hashes)
    for name, pin in runtime.items():
        assert dev[name].version == pin.version, f"{name}: runtime and dev locks differ"
    # Installs build the project without build isolation: setuptools must be locked.
    assert "setuptools" in runtime


def test_what_is_installed_is_what_the_lock_pins() -> None:
    """./check installs requirements/dev.txt: every package at the locked version."""
    lock = read_lock(DEV.read_text(encoding="utf-8"))
    installed = {
        str(canonicalize_name(dist.metadata["Name"])): Version(dist.version)
        for dist in metadata.distributions()
    }
    different = {
        name: (str(pin.version), str(installed.get(name)))
        for name, pin in lock.items()
        if installed.get(name) != pin.version
    }
    assert different == {}, "installed versions differ from the lock (run ./check afresh)"
