"""The public surface: what `import forgeml as fm` offers, and what it costs to import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import forgeml as fm
import forgeml.artifacts
import forgeml.errors
import forgeml.registry
import forgeml.store
import forgeml.tracking


def test_every_exported_name_resolves() -> None:
    for name in fm.__all__:
        assert getattr(fm, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = fm.nope  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "module", [forgeml.artifacts, forgeml.registry, forgeml.store, forgeml.tracking]
)
def test_subpackage_all_lists_exactly_its_public_names(module: object) -> None:
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, type(sys)) and name != "annotations"
    }
    assert set(module.__all__) == public  # type: ignore[attr-defined]


def test_errors_module_draws_every_error_in_its_tree() -> None:
    doc = forgeml.errors.__doc__ or ""
    for name, value in vars(forgeml.errors).items():
        if isinstance(value, type) and issubclass(value, Exception):
            assert name in doc, f"{name} is missing from the tree in forgeml.errors"


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return set(out.split())


def test_import_forgeml_loads_no_heavy_library() -> None:
    loaded = _modules_after("import forgeml")
    assert not {"sqlalchemy", "pandas", "numpy", "pyarrow", "alembic", "sklearn", "torch"} & loaded


def test_cli_help_loads_no_database_layer() -> None:
    cli = Path(sys.executable).parent / "forgeml"
    loaded = _modules_after(
        "import sys\nsys.argv = ['forgeml', '--help']\nfrom forgeml.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    assert cli.exists()
    assert not {"sqlalchemy", "pandas", "numpy", "alembic"} & loaded


def test_the_public_verbs_type_check_under_mypy_strict(tmp_path: Path) -> None:
    snippet = tmp_path / "use_forgeml.py"
    snippet.write_text(
        "import forgeml as fm\n"
        "def train() -> None:\n"
        "    with fm.start_run(experiment='e', name='n') as run:\n"
        "        fm.log_params({'depth': 3})\n"
        "        fm.log_metric('auc', 0.9, step=1)\n"
        "    page: fm.tracking.RunPage = fm.search_runs('metrics.auc > 0.5')\n"
        "    version: fm.ModelVersion = fm.get_model_version('models:/m@champion')\n"
        "    dataset: fm.Dataset = fm.Dataset.get('flights')\n"
        "    suite: fm.data.Suite = fm.data.suggest_suite(dataset)\n"
        "    print(run.id, page.next_page_token, version.uri, suite.name)\n"
    )
    mypy = Path(sys.executable).parent / "mypy"
    result = subprocess.run(
        [str(mypy), "--strict", "--no-incremental", str(snippet)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout
