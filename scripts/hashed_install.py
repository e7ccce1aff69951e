"""Install some of a hashed lock's pins in pip's hash-checking mode: what a requirement list resolves to, each
file checked against the lock's sha256s.

    python scripts/hashed_install.py --lock requirements.lock [--lock requirements-torch.lock] \
        [--no-deps NAME ...] -- PIP_REQUIREMENT_ARGS (-r FILE, NAME==VERSION, ...)

pip's ``--require-hashes`` needs every package it installs named, pinned with ``==`` and
hashed in a requirements file (pip 23, ``RequirementPreparer._get_linked_req_hashes``: a
requirement without hashes is ``HashMissing``, and hashes in a constraints file only filter
the candidates' links, ``Factory._iter_found_candidates``). An image installs a part of the
lock (an extra and what it needs), so: pip resolves that part first (``--dry-run --report``,
nothing installed, with the locks as constraints), then installs exactly what it resolved,
``--require-hashes --no-deps`` from the lock's own hashed lines; a package the lock does not
pin is an error. ``--no-deps NAME``: NAME alone, without its dependencies (kserve in the
images, see pyproject.toml). ``--check-dir DIR`` checks instead that each file in DIR (a
wheelhouse) is one the locks hash; ``--plain FILE`` writes the pins without hashes (constraints
for ``pip download``: a hash in a constraints file turns hash-checking on). Standard library only: it runs in a bare image build stage,
with the image's own pip.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def hashed_blocks(locks: list[Path]) -> dict[str, tuple[str, str]]:
    """normalized name -> (pinned version, the pin's lines with its hashes)."""
    blocks: dict[str, tuple[str, str]] = {}
    current = None
    for lock in locks:
        for line in lock.read_text().splitlines():
            match = PIN.match(line)
            if match and match.group(2):  # the same pin with extras (scripts/lock_hashes.py): not needed here
                current = None
            elif match:
                current = normalized(match.group(1))
                blocks[current] = (match.group(3), line)
            elif line.lstrip().startswith("--hash=") and current:
                version, text = blocks[current]
                blocks[current] = (version, text + "\n" + line)
            else:
                current = None
    return blocks


def plain_constraints(locks: list[Path], into: Path) -> Path:
    """The locks' pins without their hashes: a hash in a constraints file turns hash-checking mode on for the
    whole command (pip 23: "it turns on automatically when any package has a hash"), which a resolution of
    unhashed requirement names cannot pass."""
    pins = [line.rstrip(" \\") for lock in locks for line in lock.read_text().splitlines()
            if (match := PIN.match(line)) and not match.group(2)]  # constraints cannot name extras
    into.write_text("\n".join(pins) + "\n")
    return into


def check_dir(locks: list[Path], directory: Path) -> list[str]:
    """Each wheel or sdist in ``directory`` whose sha256 is not among its pin's hashes (or that no lock pins)."""
    import hashlib

    blocks = hashed_blocks(locks)
    bad = []
    for path in sorted(directory.iterdir()):
        if not path.is_file() or not path.name.endswith((".whl", ".tar.gz", ".zip")):
            continue
        stem = path.name[:-4] if path.name.endswith(".whl") else path.name.rsplit(".tar.gz", 1)[0]
        name = stem.split("-")[0] if path.name.endswith(".whl") else stem.rpartition("-")[0]
        block = blocks.get(normalized(name), ("", ""))[1]
        if f"--hash=sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}" not in block:
            bad.append(path.name)
    return bad


def resolve(locks: list[Path], args: list[str]) -> list[tuple[str, str]]:
    """(name, version) of everything pip would install for ``args`` into an empty environment."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        constraints = ["-c", str(plain_constraints(locks, Path(scratch) / "constraints.txt"))]
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
                        "--report", str(report), *constraints, *args], check=True)
        return [(item["metadata"]["name"], item["metadata"]["version"])
                for item in json.loads(report.read_text())["install"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lock", action="append", type=Path, required=True)
    parser.add_argument("--no-deps", action="append", default=[], dest="no_deps", metavar="NAME")
    parser.add_argument("--check-dir", type=Path, dest="check_dir",
                        help="install nothing: check that every file in this directory has its pin's hash")
    parser.add_argument("--plain", type=Path, help="install nothing: write the locks' pins without hashes here "
                        "(a constraints file for pip download and --dry-run resolutions)")
    parser.add_argument("requirements", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.plain:
        plain_constraints(args.lock, args.plain)
        return
    if args.check_dir:
        bad = check_dir(args.lock, args.check_dir)
        if bad:
            sys.exit(f"hashed_install: not the files the lock hashes: {', '.join(bad)}")
        print(f"hashed_install: every file in {args.check_dir} has its pin's hash")
        return
    requirements = args.requirements[1:] if args.requirements[:1] == ["--"] else args.requirements
    blocks = hashed_blocks(args.lock)
    wanted = [(name, blocks.get(normalized(name), ("", ""))[0]) for name in args.no_deps]
    if requirements:
        wanted += resolve(args.lock, requirements)
    lines, problems = [], []
    for name, version in dict.fromkeys(wanted):
        pinned, block = blocks.get(normalized(name), ("", ""))
        if not block or "--hash=" not in block:
            problems.append(f"{name}: not pinned with hashes in {', '.join(map(str, args.lock))}")
        elif version and pinned != version:
            problems.append(f"{name}: resolved to {version}, the lock pins {pinned}")
        else:
            lines.append(block)
    if problems:
        sys.exit("hashed_install: " + "; ".join(problems))
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as hashed:
        hashed.write("\n".join(lines) + "\n")
        hashed.flush()
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--require-hashes", "--no-deps",
                        "-r", hashed.name], check=True)
    print(f"hashed_install: {len(lines)} packages, every file checked against its sha256")


if __name__ == "__main__":
    main()
