"""The README documents every flag and every error type the code has."""

import re
from pathlib import Path

import pytest

from contract.errors import ERRORS
from predictor.__main__ import build_parser as predictor_parser
from transformer.__main__ import build_parser as transformer_parser

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def our_flags():
    from kserve import model_server

    kserve_flags = {action.dest for action in model_server.parser._actions}
    return [action for parser in (predictor_parser(), transformer_parser()) for action in parser._actions
            if action.dest not in kserve_flags and action.dest != "help"]


@pytest.mark.parametrize("action", our_flags(), ids=lambda action: action.dest)
def test_every_flag_and_env_var_is_in_the_readme(action):
    env_var = re.search(r"\[([A-Z_]+)\]", action.help).group(1)
    row = next((line for line in README.splitlines() if line.startswith(f"| `--{action.dest}` |")), None)
    assert row is not None, f"--{action.dest} missing from the README flag table"
    assert f"`{env_var}`" in row


@pytest.mark.parametrize("error_type", sorted(ERRORS))
def test_every_error_type_is_in_the_readme_table(error_type):
    kind = ERRORS[error_type]
    assert f"| `{error_type}` | {kind.http_status} | {kind.grpc_status.name} | {kind.meaning} |" in README
