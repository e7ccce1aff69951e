"""The error table is keyed by an enum: a misspelt error type fails here, not on a client's request."""

import ast
from pathlib import Path

import pytest

from contract.errors import ERRORS, ErrorType, ServiceError

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ("contract", "runtime", "predictor", "modelbuild", "training", "transformer", "rollout")


def service_error_calls(path: Path) -> list[ast.Call]:
    """Every ``ServiceError(...)`` call in ``path`` (by its name, as the shipped code spells it)."""
    return [node for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "ServiceError"]


def error_type_literals(path: Path) -> list[str]:
    """file:line of each ServiceError call whose error type is a string literal, not an ``ErrorType`` member."""
    literals = []
    for call in service_error_calls(path):
        error_type = call.args[0] if call.args else next(
            (kw.value for kw in call.keywords if kw.arg == "error_type"), None)
        if isinstance(error_type, ast.Constant | ast.JoinedStr):
            literals.append(f"{path.relative_to(path.parents[1])}:{call.lineno}")
    return literals


def shipped_modules() -> list[Path]:
    return [path for package in SHIPPED for path in sorted((ROOT / package).rglob("*.py"))]


def test_every_error_type_is_named_by_the_enum():
    """A string would pass the scan of the table only when raised; ``ErrorType.X`` fails at import if misspelt."""
    assert any(service_error_calls(path) for path in shipped_modules()), (
        "the scan found no ServiceError calls: it is looking in the wrong place")
    assert [where for path in shipped_modules() for where in error_type_literals(path)] == []


def test_the_scan_sees_a_string_literal(tmp_path):
    (tmp_path / "pkg").mkdir()
    module = tmp_path / "pkg" / "m.py"
    module.write_text('def f():\n    raise ServiceError("timeout", "slow")\n\n'
                      'def g():\n    raise ServiceError(error_type="timeout", message="slow")\n\n'
                      'def h():\n    raise ServiceError(ErrorType.TIMEOUT, "slow")\n')
    assert error_type_literals(module) == ["pkg/m.py:2", "pkg/m.py:5"]


def test_the_table_has_one_row_per_error_type():
    assert set(ERRORS) == set(ErrorType)


def test_a_misspelt_error_type_is_refused_when_raised():
    with pytest.raises(ValueError):
        ServiceError("invalid_jsno", "typo")


def test_the_wire_form_is_the_plain_string():
    error = ServiceError(ErrorType.TIMEOUT, "slow")
    assert error.error_type == "timeout" and str(error) == "timeout: slow" and error.http_status == 504
