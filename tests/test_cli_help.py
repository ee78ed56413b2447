"""Command help as a user reads it."""

from __future__ import annotations

from typer.testing import CliRunner

from discquant.cli import app


def test_help_paragraphs_wrap_to_the_terminal_not_to_the_docstring() -> None:
    # The docstring's own line breaks were kept and then wrapped again at the terminal's
    # width: "... some stages failed (what" / "succeeded is still written ...".
    res = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["analyze", "--help"])
    assert res.exit_code == 0, res.output
    assert "some stages failed (what succeeded is still written" in res.output
    res = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["cohort", "--help"])
    assert "resume. Exit codes: 0 every study done; 2 bad cohort input or options" in res.output
    res = CliRunner(env={"COLUMNS": "200"}).invoke(app, ["train", "grade", "--help"])
    assert res.exit_code == 0, res.output


def test_version() -> None:
    from typer.testing import CliRunner

    from discquant import __version__
    from discquant.cli import app

    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output == f"discquant {__version__}\n"


def test_python_dash_m_runs_the_command_line() -> None:
    """`python -m discquant` said "'discquant' is a package and cannot be directly
    executed" (two audits used it first)."""
    import subprocess
    import sys

    from discquant import __version__

    done = subprocess.run(
        [sys.executable, "-m", "discquant", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"discquant {__version__}\n"
