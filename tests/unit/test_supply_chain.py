"""Supply chain (issue 26, hygiene): every pin hashed, every pip install in pip's hash-checking mode.

Makefile, the Dockerfiles and scripts/*.sh are read as text: each ``pip install`` must pass
``--require-hashes`` or go through scripts/hashed_install.py (which does), except the few
named in EXEMPT, each for its reason (SECURITY.md, "Supply chain").
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from scripts import hashed_install

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ["requirements.lock", "requirements-torch.lock", "requirements-checkov.lock"]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==(\S+) \\$")
HASH = re.compile(r"^    --hash=sha256:[0-9a-f]{64}( \\)?$")
# What may install without hashes, and why.
EXEMPT = {
    # the project itself, editable: pip refuses editables in hash-checking mode (nothing to hash); --no-deps
    # and --no-build-isolation, so it fetches nothing
    ("Makefile", "-m pip install --quiet --no-deps --no-build-isolation -e ."),
    # the GPU stage: the locks hash the CPU build of torch only (and not the CUDA build's nvidia-* wheels)
    ("predictor/Dockerfile", "PIP_FIND_LINKS=/wheelhouse/cuda pip install -c /reqs/constraints.txt torch==2.13.0"),
    ("predictor/Dockerfile", "pip install -c /reqs/constraints.txt -r /reqs/torch.txt"),
}
INSTALLERS = ["Makefile", "predictor/Dockerfile", "transformer/Dockerfile",
              *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "scripts").glob("*.sh"))]


def pins(lock: str) -> dict[tuple[str, str], tuple[str, int]]:
    """(normalized name, extras) -> (version, number of hashes), checking each line's form on the way."""
    found, current = {}, None
    for number, line in enumerate((ROOT / lock).read_text().splitlines(), 1):
        if not line or line.startswith("#"):
            current = None
            continue
        if match := PIN.match(line):
            current = (hashed_install.normalized(match.group(1)), match.group(2) or "")
            assert current not in found, f"{lock}:{number}: {line} is pinned twice"
            found[current] = (match.group(3), 0)
        else:
            assert HASH.match(line) and current, f"{lock}:{number}: neither a pin nor one of its hashes: {line!r}"
            found[current] = (found[current][0], found[current][1] + 1)
    return found


@pytest.mark.parametrize("lock", LOCKS)
def test_every_pin_is_exact_and_hashed(lock):
    found = pins(lock)
    assert found, lock
    assert [name for name, (_, hashes) in found.items() if hashes == 0] == []


def test_every_declared_dependency_is_pinned_at_its_version_in_the_locks():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [*project["dependencies"], *(req for extra in project["optional-dependencies"].values()
                                            for req in extra)]
    locked = {name: version for lock in LOCKS[:2] for (name, extras), (version, _) in pins(lock).items()
              if not extras}
    wrong = []
    for requirement in declared:
        name, _, version = requirement.partition("==")
        pinned = locked.get(hashed_install.normalized(name.split("[")[0]))
        if pinned is None or pinned.split("+")[0] != version:  # torch: 2.13.0+cpu is the CPU build of 2.13.0
            wrong.append(f"{requirement}: {pinned}")
    assert wrong == []


def commands(path: str) -> list[str]:
    """The file's shell commands, continuation lines joined, split at && and ;."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / path).read_text())
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [part.strip() for line in lines for part in re.split(r"&&|;|\|\|", line)]


@pytest.mark.parametrize("path", INSTALLERS)
def test_every_pip_install_checks_hashes(path):
    unchecked = []
    for command in commands(path):
        if not re.search(r"\bpip\b.*\binstall\b", command) or "--dry-run" in command or "uninstall" in command:
            continue
        if "--require-hashes" in command or any(path == where and text in command for where, text in EXEMPT):
            continue
        unchecked.append(command)
    assert unchecked == []


@pytest.mark.parametrize("path", ["predictor/Dockerfile", "transformer/Dockerfile"])
def test_the_images_install_through_the_hashed_lock(path):
    installs = [command for command in commands(path) if "hashed_install.py --lock" in command
                and "--plain" not in command]
    assert installs and all("/reqs/requirements.lock" in command for command in installs)
    # torch (build and torch stages) comes from the torch lock: the CPU build, by its hash
    torch = [command for command in installs if "torch==" in command]
    assert all("/reqs/requirements-torch.lock" in command and "torch==2.13.0+cpu" in command for command in torch)


def test_the_wheelhouse_is_checked_against_the_hashes():
    text = (ROOT / "scripts/wheelhouse.sh").read_text()
    assert "--check-dir" in text and "-c requirements.lock" not in text  # hashed constraints would need hashes


def test_a_file_not_hashed_by_the_lock_is_refused(tmp_path):
    """hashed_install.py --check-dir (the wheelhouse's check) fails on a tampered wheel and an unpinned one."""
    locks = [ROOT / "requirements.lock"]
    (tmp_path / "kserve-0.21.0-py3-none-any.whl").write_bytes(b"not the wheel the lock hashes")
    (tmp_path / "unpinned_package-1.0-py3-none-any.whl").write_bytes(b"")
    assert hashed_install.check_dir(locks, tmp_path) == ["kserve-0.21.0-py3-none-any.whl",
                                                         "unpinned_package-1.0-py3-none-any.whl"]
