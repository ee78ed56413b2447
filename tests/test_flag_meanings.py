"""Every flag the code can set is explained in :data:`discquant.results.FLAG_MEANINGS`,
which the report's legend, the data dictionary and the DICOM SR read: a flag missing
there reached the outputs unexplained. The flags are found in the source itself (a
``FLAG_*`` constant, a string appended to a ``flags`` list, a string returned by a
function named ``*_flag``), so a new flag cannot be forgotten."""

from __future__ import annotations

import ast
from pathlib import Path

import discquant
from discquant.results import FLAG_MEANINGS

SRC = Path(discquant.__file__).parent


def _flags_in_source() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = str(path.relative_to(SRC))
        for node in ast.walk(tree):
            values: list[ast.expr] = []
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id.startswith("FLAG_") for t in node.targets
            ):
                values = [node.value]
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("append", "add")
                and "flag" in ast.unparse(node.func.value).lower()
            ):
                values = list(node.args)
            elif isinstance(node, ast.FunctionDef) and node.name.endswith("_flag"):
                values = [r.value for r in ast.walk(node) if isinstance(r, ast.Return) and r.value]
            for value in values:
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    found.setdefault(value.value, where)
    return found


def test_every_flag_in_the_source_has_a_meaning() -> None:
    found = _flags_in_source()
    assert len(found) >= 30  # the scan sees the flags (35 when written)
    assert "volume_withheld_partial_fov" in found  # returned by grid.volume_withheld_flag
    missing = {flag: where for flag, where in found.items() if flag not in FLAG_MEANINGS}
    assert not missing, f"flags without a meaning in results.FLAG_MEANINGS: {missing}"


def test_every_flag_is_documented() -> None:
    """Each flag (in the source or in FLAG_MEANINGS) is named in docs/ as `flag`, where a
    user looks it up."""
    docs = Path(__file__).parents[1] / "docs"
    text = "".join(p.read_text(encoding="utf-8") for p in sorted(docs.glob("*.md")))
    flags = set(_flags_in_source()) | set(FLAG_MEANINGS)
    assert not sorted(f for f in flags if f"`{f}`" not in text)


def test_flag_meanings_are_plain_ascii() -> None:
    """The DICOM SR carries each meaning as a CodeMeaning with no SpecificCharacterSet:
    "no b≈0 discs" was written "no b?0 discs" with an encoding warning (a review)."""
    assert not {flag: m for flag, m in FLAG_MEANINGS.items() if not m.isascii()}
