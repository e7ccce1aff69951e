"""The docs (README.md and docs/) document every flag and every error type the code has, from the declarations."""

from pathlib import Path

import pytest

from contract.errors import ERRORS
from predictor.settings import PredictorSettings
from runtime.settings import ServiceSettings, env_var, flag_table, is_kserve_flag, own_fields
from transformer.settings import TransformerSettings

ROOT = Path(__file__).resolve().parents[2]
# The flag tables and the error table live in docs/configuration.md; the README points there.
README = "\n".join(path.read_text() for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])

# The README's three flag tables: each service's own flags, and those both services take.
TABLES = {
    "predictor": (PredictorSettings, ServiceSettings),
    "transformer": (TransformerSettings, ServiceSettings),
    "both": (ServiceSettings, None),
}


def our_flags():
    return [(name, field) for cls, base in TABLES.values() for name, field in own_fields(cls, base).items()]


@pytest.mark.parametrize("flag", our_flags(), ids=lambda flag: flag[0])
def test_every_flag_and_env_var_is_in_the_readme(flag):
    name, field = flag
    row = next((line for line in README.splitlines() if line.startswith(f"| `--{name}` |")), None)
    assert row is not None, f"--{name} missing from the README flag table"
    assert f"`{env_var(name, field)}`" in row


@pytest.mark.parametrize("table", TABLES)
def test_the_readme_flag_tables_are_the_declarations(table):
    expected = flag_table(*TABLES[table])
    assert expected in README, f"the README's {table} table should read:\n{expected}"


@pytest.mark.parametrize("cls", [PredictorSettings, TransformerSettings])
def test_every_kserve_flag_we_default_names_its_env_var(cls):
    for name, field in cls.model_fields.items():
        if is_kserve_flag(field):
            assert f"`--{name}" in README and f"`{env_var(name, field)}" in README


@pytest.mark.parametrize("error_type", sorted(ERRORS))
def test_every_error_type_is_in_the_readme_table(error_type):
    kind = ERRORS[error_type]
    assert f"| `{error_type}` | {kind.http_status} | {kind.grpc_status} | {kind.meaning} |" in README
