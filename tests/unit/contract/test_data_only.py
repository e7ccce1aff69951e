"""contract/ is data only: what a client sees, with no server library under it (issue 25).

KServe's objects are read and written in runtime/kserve/ (codec.py, errors.py); the HTTP and gRPC
servers and their exception types live in runtime/. tests/unit/runtime/test_kserve_internals.py keeps
kserve itself inside runtime/kserve/; this keeps every server library out of the contract.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SERVER_LIBRARIES = ("fastapi", "grpc", "grpc_interceptor", "starlette", "uvicorn", "aiohttp", "kserve")


def server_imports(path: Path) -> list[str]:
    """The server libraries ``path`` imports, at any depth (a function-level import counts)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
        found += [name for name in names if name.split(".")[0] in SERVER_LIBRARIES]
    return found


def test_contract_imports_no_server_library():
    modules = sorted((ROOT / "contract").rglob("*.py"))
    assert modules, "no contract modules found: the scan looks in the wrong place"
    assert {str(path.relative_to(ROOT)): server_imports(path) for path in modules if server_imports(path)} == {}


def test_the_scan_sees_an_import(tmp_path):
    (tmp_path / "m.py").write_text("import json\nfrom grpc import StatusCode\n\ndef f():\n"
                                   "    import fastapi.exceptions\n    from kserve.protocol import infer_type\n")
    assert server_imports(tmp_path / "m.py") == ["grpc", "fastapi.exceptions", "kserve.protocol"]
