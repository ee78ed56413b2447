"""The top-level names of ``discquant`` and the type hints of the pipeline's entry points
(an audit of discquant used as a library in a notebook)."""

from __future__ import annotations

import subprocess
import sys
import typing

import discquant
from discquant import pipeline, results
from discquant.grade.pfirrmann import PfirrmannModel
from discquant.outputs.write import OutputPaths

HEAVY = ("numpy", "torch", "monai", "dask", "scipy", "discquant.pipeline")


def test_top_level_names_resolve_lazily() -> None:
    """analyze, run_study, AnalysisResult and DiscResult were not in discquant.__all__;
    they resolve on first use, so `import discquant` stays light."""
    assert discquant.analyze is pipeline.analyze
    assert discquant.run_study is pipeline.run_study
    assert discquant.AnalysisResult is results.AnalysisResult
    assert discquant.DiscResult is results.DiscResult
    assert {"analyze", "run_study", "AnalysisResult", "DiscResult"} <= set(discquant.__all__)
    for name in discquant.__all__:
        assert getattr(discquant, name) is not None, name
    code = (
        "import sys, discquant; "
        f"heavy = {HEAVY!r}; "
        "print(','.join(m for m in heavy if m in sys.modules)); "
        "discquant.analyze; "
        "print('torch' in sys.modules, 'discquant.pipeline' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["", "False True"], out.stdout


def test_type_hints_of_analyze_and_run_study_resolve() -> None:
    """typing.get_type_hints raised NameError: PfirrmannModel (and OutputPaths) were
    imported for type checkers only. Both modules load without PyTorch."""
    hints = typing.get_type_hints(pipeline.analyze)
    assert hints["return"] is results.AnalysisResult
    assert hints["pfirrmann_model"] == PfirrmannModel | None
    run = typing.get_type_hints(pipeline.run_study)
    assert run["return"] == tuple[results.AnalysisResult, OutputPaths]
    assert run["inputs"] is pipeline.StudyInputs
    code = "import sys, discquant.pipeline; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
