"""Print pyproject.toml's requirements for the named extras ("base": the project's own dependencies).

The images install their extra with pip -r from this output (and -c requirements.lock), so the
lists live in pyproject.toml only. Standard library only: it runs in a bare image build stage.

    python scripts/extra.py [--without NAME ...] [--pyproject PATH] base serve ...
"""

from __future__ import annotations

import argparse
import re
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str], without: set[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    lines: list[str] = []
    for extra in extras:
        lines += project["dependencies"] if extra == "base" else project["optional-dependencies"][extra]
    name = re.compile(r"[A-Za-z0-9_.-]+")
    kept = [line for line in lines if name.match(line).group().lower() not in without]
    return list(dict.fromkeys(kept))  # an extra may repeat a pin another one has


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("extras", nargs="+")
    parser.add_argument("--without", action="append", default=[], help="leave this package out (e.g. kserve)")
    parser.add_argument("--pyproject", type=Path, default=Path(__file__).resolve().parents[1] / "pyproject.toml")
    args = parser.parse_args()
    print("\n".join(requirements(args.pyproject, args.extras, {n.lower() for n in args.without})))
