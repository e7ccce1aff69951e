"""Write every pin's sha256 into a lock file, for pip's hash-checking mode (``--require-hashes``).

    python scripts/lock_hashes.py     # requirements.lock, requirements-torch.lock, requirements-checkov.lock
    python scripts/lock_hashes.py some.lock            # any other pip-freeze style lock

A pin's hashes are those of every file of the pinned version that pip could be given: the
files listed by the simple-API page (PEP 503, with its ``#sha256=`` fragments) of every
index pip is configured with (``pip config``, ``PIP_INDEX_URL``/``PIP_EXTRA_INDEX_URL``;
PyPI's https://pypi.org/simple by default), and the matching files of its find-links
directories (hashed here). A pin with no file anywhere is an error. Comments are kept; a
pin's old hashes are replaced. Run it after changing a pin (tests/unit/test_supply_chain.py
fails on a pin without hashes). A dependency another pin requires with extras (kserve's
``uvicorn[standard]``) is pinned a second time with them: pip's hash-checking mode counts
``uvicorn[standard]`` as a requirement of its own, which must be pinned with ``==``.

requirements-torch.lock is torch alone, the CPU build: ``make setup`` installs it from the
local copy in pip's find-links (/opt/wheels here), the images from PyTorch's CPU index
(https://download.pytorch.org/whl/cpu), which serves the same file.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from hashed_install import normalized  # the name rule the installs check with (run as scripts/lock_hashes.py)

ROOT = Path(__file__).resolve().parents[1]
PYPI = "https://pypi.org/simple"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)\s*(;[^\\]*)?\s*\\?\s*$")
ANCHOR = re.compile(r"<a\s[^>]*href=\"([^\"]+)\"[^>]*>([^<]+)</a>", re.IGNORECASE)


def file_version(filename: str) -> tuple[str, str] | None:
    """(normalized project name, version) of a wheel or sdist file name, else None."""
    if filename.endswith(".whl"):
        parts = filename[:-4].split("-")
        return (normalized(parts[0]), parts[1]) if len(parts) >= 5 else None
    for suffix in (".tar.gz", ".zip", ".tar.bz2"):
        if filename.endswith(suffix):
            name, _, version = filename[: -len(suffix)].rpartition("-")
            return (normalized(name), version) if name else None
    return None


def same_version(a: str, b: str) -> bool:
    try:
        from packaging.version import Version
    except ImportError:  # a bare interpreter: pip's own copy
        from pip._vendor.packaging.version import Version
    try:
        return Version(a) == Version(b)
    except ValueError:
        return a == b


def pip_sources() -> tuple[list[str], list[Path]]:
    """The index URLs and find-links directories pip is configured with here."""
    config = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
    values: dict[str, str] = {}
    for line in config.splitlines():
        key, _, value = line.partition("=")
        values[key.split(".", 1)[-1]] = value.strip().strip("'\"")
    index = os.environ.get("PIP_INDEX_URL") or values.get("index-url") or PYPI
    extra = os.environ.get("PIP_EXTRA_INDEX_URL") or values.get("extra-index-url") or ""
    links = os.environ.get("PIP_FIND_LINKS") or values.get("find-links") or ""
    indexes = list(dict.fromkeys([index, PYPI, *extra.split()]))
    return indexes, [Path(link.removeprefix("file://")) for link in links.split() if "://" not in link
                     or link.startswith("file://")]


def sha256_of(url: str) -> str:
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=120) as response:
        for block in iter(lambda: response.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def index_hashes(index: str, name: str, version: str) -> set[str]:
    page_url = f"{index.rstrip('/')}/{normalized(name)}/"
    try:
        with urllib.request.urlopen(page_url, timeout=60) as response:
            page = response.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError):
        return set()  # not on this index (or the index is not reachable from here)
    found = set()
    for href, text in ANCHOR.findall(page):
        parsed = file_version(html.unescape(text).strip())
        if parsed is None or parsed[0] != normalized(name) or not same_version(parsed[1], version):
            continue
        url = urllib.parse.urljoin(page_url, html.unescape(href))
        fragment = urllib.parse.urlparse(url).fragment
        found.add(fragment.split("=", 1)[1] if fragment.startswith("sha256=") else sha256_of(url.split("#")[0]))
    return found


def local_hashes(directory: Path, name: str, version: str) -> set[str]:
    found = set()
    for path in directory.glob("*") if directory.is_dir() else ():
        parsed = file_version(path.name)
        if parsed and parsed[0] == normalized(name) and same_version(parsed[1], version):
            found.add(hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def hash_lock(path: Path, indexes: list[str], links: list[Path]) -> list[str]:
    """Rewrite ``path`` with hashes; the pins no file was found for."""
    out, missing = [], []
    lines = path.read_text().splitlines()
    for line in lines:
        if line.lstrip().startswith("--hash="):
            continue  # the old hashes: replaced below
        match = PIN.match(line)
        if not match:
            out.append(line)
            continue
        name, extras, version, marker = match.group(1), match.group(2) or "", match.group(3), (match.group(4) or "").strip()
        hashes = set().union(*(index_hashes(index, name, version) for index in indexes),
                             *(local_hashes(link, name, version) for link in links))
        if not hashes:
            missing.append(f"{name}=={version}")
        out.append(f"{name}{extras}=={version}{' ' + marker if marker else ''} \\")
        out += [f"    --hash=sha256:{digest} \\" for digest in sorted(hashes)]
        out[-1] = out[-1].removesuffix(" \\")
    path.write_text("\n".join(out) + "\n")
    return missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("locks", nargs="*", type=Path,
                        default=[ROOT / "requirements.lock", ROOT / "requirements-torch.lock",
                                 ROOT / "requirements-checkov.lock"])
    args = parser.parse_args()
    indexes, links = pip_sources()
    print(f"indexes: {' '.join(indexes)}; find-links: {' '.join(map(str, links)) or '-'}", file=sys.stderr)
    failed = False
    for lock in args.locks:
        missing = hash_lock(lock, indexes, links)
        print(f"{lock.name}: {'no file for ' + ', '.join(missing) if missing else 'every pin hashed'}",
              file=sys.stderr)
        failed |= bool(missing)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
