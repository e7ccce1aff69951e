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
images, see pyproject.toml). Standard library only: it runs in a bare image build stage,
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

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def hashed_blocks(locks: list[Path]) -> dict[str, tuple[str, str]]:
    """normalized name -> (pinned version, the pin's lines with its hashes)."""
    blocks: dict[str, tuple[str, str]] = {}
    current = None
    for lock in locks:
        for line in lock.read_text().splitlines():
            match = PIN.match(line)
            if match:
                current = normalized(match.group(1))
                blocks[current] = (match.group(2), line)
            elif line.lstrip().startswith("--hash=") and current:
                version, text = blocks[current]
                blocks[current] = (version, text + "\n" + line)
            else:
                current = None
    return blocks


def resolve(locks: list[Path], args: list[str]) -> list[tuple[str, str]]:
    """(name, version) of everything pip would install for ``args`` into an empty environment."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        constraints = [arg for lock in locks for arg in ("-c", str(lock))]
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--dry-run", "--ignore-installed",
                        "--report", str(report), *constraints, *args], check=True)
        return [(item["metadata"]["name"], item["metadata"]["version"])
                for item in json.loads(report.read_text())["install"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lock", action="append", type=Path, required=True)
    parser.add_argument("--no-deps", action="append", default=[], dest="no_deps", metavar="NAME")
    parser.add_argument("requirements", nargs=argparse.REMAINDER)
    args = parser.parse_args()
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
