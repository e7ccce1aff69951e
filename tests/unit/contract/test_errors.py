"""The error table is keyed by an enum: a misspelt error type fails here, not on a client's request."""

import ast
from pathlib import Path

import pytest

from contract.errors import ERRORS, ErrorType, ServiceError

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ("contract", "runtime", "predictor", "modelbuild", "training", "transformer")


def literal_error_types() -> list[tuple[str, str]]:
    """(file:line, error type) of every ServiceError("<literal>", ...) in the shipped code."""
    found = []
    for package in SHIPPED:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ServiceError" and node.args
                        and isinstance(node.args[0], ast.Constant)):
                    found.append((f"{path.relative_to(ROOT)}:{node.lineno}", node.args[0].value))
    return found


def test_every_error_type_raised_by_name_is_in_the_table():
    assert literal_error_types(), "the scan found no ServiceError calls: it is looking in the wrong place"
    assert [(where, name) for where, name in literal_error_types() if name not in set(ErrorType)] == []


def test_the_table_has_one_row_per_error_type():
    assert set(ERRORS) == set(ErrorType)


def test_a_misspelt_error_type_is_refused_when_raised():
    with pytest.raises(ValueError):
        ServiceError("invalid_jsno", "typo")


def test_the_wire_form_is_the_plain_string():
    error = ServiceError(ErrorType.TIMEOUT, "slow")
    assert error.error_type == "timeout" and '"error_type": "timeout"' in error.details


def test_contract_imports_no_http_server_library():
    servers = ("fastapi", "starlette", "uvicorn", "aiohttp")
    for path in sorted((ROOT / "contract").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.split(".")[0] in servers], path
