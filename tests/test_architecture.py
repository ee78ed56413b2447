"""The house rules that the layout serves, checked on the source tree."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "discquant"

# The flow: a stage may import only the stages before it (and the leaf modules).
ORDER = ["io", "diffusion", "segment", "measure", "grade", "outputs"]
LEAVES = {
    "errors",
    "results",
    "config",
    "models",
    "output_paths",
    "jsonfiles",
    "delimited",
    "literature",
    "grid",
}
# Side packages and what they may use.
ALLOWED_EXTRA = {
    "phantom": {"io", "diffusion"},  # a data generator: writes studies, fits its own ADC maps
    "evaluate": {"io", "diffusion", "segment", "measure", "grade"},
}
# Training code (train*.py, data*.py) is off the analysis flow: it may draw phantom
# samples and score itself with the evaluation metrics.
TRAINING_EXTRA = {"phantom", "evaluate"}


# Leaf modules may import these modules inside a function (run when called: no import
# cycle, nothing loaded on import). AnalysisResult.to_frame builds the disc table with
# the TSV writer's own rows, so the DataFrame and sub-<label>_discs.tsv never differ.
LAZY_LEAF_IMPORTS = {"results": {"discquant.outputs.tables"}}


def _discquant_imports(path: Path) -> list[tuple[str, bool]]:
    """Every ``discquant.*`` module ``path`` imports, and whether inside a function."""
    tree = ast.parse(path.read_text())
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            in_function |= {id(n) for n in ast.walk(node) if n is not node}
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            if name.startswith("discquant."):
                found.append((name, id(node) in in_function))
    return found


def _stage_imports(path: Path) -> set[str]:
    """The discquant packages and modules ``path`` imports, a leaf's allowed lazy
    imports (:data:`LAZY_LEAF_IMPORTS`) left out."""
    lazy = LAZY_LEAF_IMPORTS.get(path.stem, set()) if path.parent == SRC else set()
    return {
        name.split(".")[1]
        for name, in_function in _discquant_imports(path)
        if not (in_function and name in lazy)
    }


@pytest.mark.parametrize("stage", ORDER + list(ALLOWED_EXTRA))
def test_stage_imports_only_earlier_stages(stage: str) -> None:
    allowed = set(LEAVES) | {stage}
    if stage in ORDER:
        allowed |= set(ORDER[: ORDER.index(stage)])
    allowed |= ALLOWED_EXTRA.get(stage, set())
    offenders = {}
    for path in (SRC / stage).rglob("*.py"):
        extra = TRAINING_EXTRA if path.stem.startswith(("train", "data")) else set()
        bad = _stage_imports(path) - allowed - extra - {"__init__"}
        if bad:
            offenders[str(path.relative_to(SRC))] = sorted(bad)
    assert not offenders, f"imports against the flow: {offenders}"


@pytest.mark.parametrize("leaf", sorted(LEAVES - {"config", "models"}))
def test_leaf_modules_import_no_stage(leaf: str) -> None:
    """A leaf is used by every stage, so it may use no stage (io's data types excepted
    for results)."""
    allowed = {"io"} if leaf == "results" else set()
    assert _stage_imports(SRC / f"{leaf}.py") - LEAVES <= allowed


def test_results_module_is_a_leaf() -> None:
    assert _stage_imports(SRC / "results.py") <= {"io"}
    # its one later-stage import is inside a function (not on import: a cycle)
    later = [(n, f) for n, f in _discquant_imports(SRC / "results.py") if n.split(".")[1] != "io"]
    assert later == [("discquant.outputs.tables", True)]


def test_cli_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys; from discquant.cli import app; "
        "heavy = ('torch', 'monai', 'dask', 'numpy', 'scipy'); "
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_cohort_package_imports_dask_only_to_run_a_cohort(tmp_path: Path) -> None:
    """`import discquant.cohort` imported Dask (the base class of its worker plugin), which
    a notebook that only reads a cohort's manifest, tables or records never uses: Dask
    loads when a run registers that plugin."""
    code = (
        "import sys; from pathlib import Path; "
        "from discquant.cohort import collect_tables; "
        "from discquant.cohort.records import read_record; "
        "out = Path(sys.argv[1]); collect_tables(out, []); read_record(out, '01'); "
        "print(','.join(m for m in ('dask', 'distributed') if m in sys.modules)); "
        "from discquant.cohort.preload import PreloadModels; "
        "print('distributed' in sys.modules)"
    )
    command = [sys.executable, "-c", code, str(tmp_path)]
    out = subprocess.run(command, capture_output=True, text=True)
    # nothing of Dask first (the line is empty); then the plugin's import loads it
    assert out.stdout.split() == ["True"], out.stdout + out.stderr


def test_level_names_do_not_import_the_network() -> None:
    """`from discquant.segment import disc_name` imported PyTorch and MONAI (3-7 s, and
    MONAI replaces warnings.showwarning for the whole notebook): an audit of the API."""
    code = (
        "import sys; from discquant.segment import disc_name, DiscLevel; "
        "print(','.join(m for m in ('torch', 'monai') if m in sys.modules)); "
        "from discquant.segment import segment_spine; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True"]  # nothing heavy first; the network when asked
