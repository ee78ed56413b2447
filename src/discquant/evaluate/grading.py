"""Agreement of ordinal grades (Pfirrmann I-V) and of continuous values (Bland-Altman).

Grades: exact accuracy, balanced accuracy (mean per-class recall over the classes present
in the reference), Cohen's κ with linear and quadratic weights (scikit-learn, over the full
label set 1..5, so the weight of a disagreement is the distance between the grades even
when a grade between them occurs in neither column), the share within ±1 grade and the
confusion matrix (rows = reference, columns = prediction).
Yes/no findings (e.g. herniation): sensitivity, specificity, balanced accuracy (their
mean), prevalence and, given scores, the ROC AUC.
Values: Bland-Altman bias and 95 % limits of agreement (bias ± 1.96 SD of differences).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from discquant.results import normalise_level

GRADES = (1, 2, 3, 4, 5)


@dataclass(frozen=True)
class GradeAgreement:
    """Agreement between predicted and reference grades."""

    n: int
    exact_accuracy: float
    balanced_accuracy: float
    kappa_linear: float
    kappa_quadratic: float
    within_one: float
    confusion: list[list[int]]
    """Counts, rows = reference grade 1..5, columns = predicted grade 1..5."""
    labels: tuple[int, ...] = GRADES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _whole_numbers(values: npt.ArrayLike, what: str) -> npt.NDArray[np.int_]:
    """``values`` as integers; a fractional value (2.7) is an error, not rounded down."""
    arr = np.asarray(values, dtype=float).ravel()
    bad = arr[~np.isfinite(arr) | (arr != np.round(arr))]
    if bad.size:
        raise ValueError(f"{what} must be whole numbers, got {float(bad[0])!r}")
    return arr.astype(int)


def grade_agreement(
    reference: npt.ArrayLike, predicted: npt.ArrayLike, *, labels: tuple[int, ...] = GRADES
) -> GradeAgreement:
    """Compare predicted with reference grades.

    Parameters
    ----------
    reference, predicted
        One grade per case, each one of ``labels``.
    labels
        The ordered grades. Cohen's κ weights a disagreement by the distance between the
        two grades' positions in ``labels`` (for 1..5: the grade difference), also when
        grades in between occur in neither column.

    Raises
    ------
    ValueError
        Different lengths, no grades, or a grade not in ``labels``.

    Examples
    --------
    >>> a = grade_agreement([1, 2, 3, 3], [1, 2, 3, 4])
    >>> a.exact_accuracy, a.within_one
    (0.75, 1.0)
    """
    import warnings

    from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score, confusion_matrix

    ref = _whole_numbers(reference, "grades")
    pred = _whole_numbers(predicted, "grades")
    if ref.shape != pred.shape:
        raise ValueError(f"{ref.size} reference grades but {pred.size} predictions")
    if ref.size == 0:
        raise ValueError("no grades to compare")
    label_list = [int(g) for g in labels]
    outside = sorted(set(np.concatenate([ref, pred]).tolist()) - set(label_list))
    if outside:
        raise ValueError(f"grade(s) {outside} not among the labels {label_list}")
    nan = float("nan")
    single = np.unique(np.concatenate([ref, pred])).size < 2

    def kappa(weights: str) -> float:
        if single:
            return nan
        return float(cohen_kappa_score(ref, pred, weights=weights, labels=label_list))

    with warnings.catch_warnings():
        # Predicted grades absent from the reference are expected; they count as errors.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")
        balanced = float(balanced_accuracy_score(ref, pred))
    return GradeAgreement(
        n=int(ref.size),
        exact_accuracy=float(np.mean(ref == pred)),
        balanced_accuracy=balanced,
        kappa_linear=kappa("linear"),
        kappa_quadratic=kappa("quadratic"),
        within_one=float(np.mean(np.abs(ref - pred) <= 1)),
        confusion=confusion_matrix(ref, pred, labels=label_list).tolist(),
        labels=tuple(label_list),
    )


@dataclass(frozen=True)
class BinaryAgreement:
    """Agreement of predicted and reference yes/no findings (1 = present)."""

    n: int
    prevalence: float
    """Share of reference positives."""
    sensitivity: float
    specificity: float
    balanced_accuracy: float
    """Mean of sensitivity and specificity."""
    accuracy: float
    auc: float
    """ROC area under the curve of the scores (NaN without scores or with one class)."""
    confusion: list[list[int]]
    """Counts, rows = reference (0, 1), columns = predicted (0, 1)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def binary_agreement(
    reference: npt.ArrayLike, predicted: npt.ArrayLike, *, scores: npt.ArrayLike | None = None
) -> BinaryAgreement:
    """Compare predicted with reference yes/no findings (0/1).

    Parameters
    ----------
    reference, predicted
        0 (absent) or 1 (present), one per case.
    scores
        Optional probability of "present" per case, for the ROC AUC.

    Returns
    -------
    BinaryAgreement
        Sensitivity (specificity) is NaN when the reference has no positives (negatives),
        and so is the balanced accuracy.

    Examples
    --------
    >>> b = binary_agreement([0, 0, 0, 1], [0, 1, 0, 1])
    >>> b.sensitivity, round(b.specificity, 3), round(b.balanced_accuracy, 3)
    (1.0, 0.667, 0.833)
    """
    ref = _whole_numbers(reference, "yes/no findings")
    pred = _whole_numbers(predicted, "yes/no findings")
    if ref.shape != pred.shape:
        raise ValueError(f"{ref.size} reference values but {pred.size} predictions")
    if ref.size == 0:
        raise ValueError("nothing to compare")
    if not (np.isin(ref, (0, 1)).all() and np.isin(pred, (0, 1)).all()):
        raise ValueError("yes/no findings must be 0 or 1")
    from sklearn.metrics import confusion_matrix, recall_score, roc_auc_score

    pos, neg = ref == 1, ref == 0
    # NaN when the reference has no positives (negatives)
    sens = float(recall_score(ref, pred, labels=[0, 1], pos_label=1, zero_division=np.nan))
    spec = float(recall_score(ref, pred, labels=[0, 1], pos_label=0, zero_division=np.nan))
    auc = float("nan")
    if scores is not None and pos.any() and neg.any():
        auc = float(roc_auc_score(ref, np.asarray(scores, dtype=float).ravel()))
    confusion = confusion_matrix(ref, pred, labels=[0, 1]).tolist()
    return BinaryAgreement(
        n=int(ref.size),
        prevalence=float(pos.mean()),
        sensitivity=sens,
        specificity=spec,
        # not balanced_accuracy_score: it gives 0.667 for an all-negative reference, not NaN
        balanced_accuracy=(sens + spec) / 2,
        accuracy=float(np.mean(ref == pred)),
        auc=auc,
        confusion=confusion,
    )


@dataclass(frozen=True)
class BlandAltman:
    """Bland-Altman summary of ``measured - reference``."""

    n: int
    bias: float
    sd: float
    loa_low: float
    loa_high: float
    bias_percent: float
    """Mean of ``(measured - reference) / reference`` × 100, over the ``n_relative``
    pairs whose reference is not 0."""
    within_5_percent: float
    """Share of those pairs whose relative error is within ±5 %."""
    n_relative: int = 0
    """Pairs in the relative figures (a reference of 0 has no relative error)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bland_altman(reference: npt.ArrayLike, measured: npt.ArrayLike) -> BlandAltman:
    """Bias and 95 % limits of agreement (Bland & Altman 1986, Lancet 327:307).

    Examples
    --------
    >>> ba = bland_altman([1.0, 2.0, 3.0], [1.1, 2.1, 3.1])
    >>> round(ba.bias, 6), round(ba.sd, 6)
    (0.1, 0.0)
    """
    ref = np.asarray(reference, dtype=float).ravel()
    mea = np.asarray(measured, dtype=float).ravel()
    if ref.shape != mea.shape:
        raise ValueError(f"{ref.size} reference values but {mea.size} measurements")
    ok = np.isfinite(ref) & np.isfinite(mea)
    ref, mea = ref[ok], mea[ok]
    if ref.size < 2:
        raise ValueError("Bland-Altman needs at least two paired values")
    diff = mea - ref
    bias = float(diff.mean())
    sd = float(diff.std(ddof=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = diff / ref
    rel = rel[np.isfinite(rel)]
    return BlandAltman(
        n=int(ref.size),
        bias=bias,
        sd=sd,
        loa_low=bias - 1.96 * sd,
        loa_high=bias + 1.96 * sd,
        bias_percent=float(100 * rel.mean()) if rel.size else float("nan"),
        within_5_percent=float(np.mean(np.abs(rel) <= 0.05 + 1e-9)) if rel.size else float("nan"),
        n_relative=int(rel.size),
    )


def bland_altman_plot(
    reference: npt.ArrayLike,
    measured: npt.ArrayLike,
    path: Path,
    *,
    quantity: str = "ADC (µm²/ms)",
) -> BlandAltman:
    """Draw the Bland-Altman plot (mean vs difference, bias and limits) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ba = bland_altman(reference, measured)
    ref = np.asarray(reference, dtype=float).ravel()
    mea = np.asarray(measured, dtype=float).ravel()
    ok = np.isfinite(ref) & np.isfinite(mea)
    mean = (ref[ok] + mea[ok]) / 2
    diff = mea[ok] - ref[ok]
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(mean, diff, s=10, alpha=0.7)
    for y, style, text in (
        (ba.bias, "-", f"bias {ba.bias:.3g}"),
        (ba.loa_low, "--", f"−1.96 SD {ba.loa_low:.3g}"),
        (ba.loa_high, "--", f"+1.96 SD {ba.loa_high:.3g}"),
    ):
        ax.axhline(y, linestyle=style, color="k", linewidth=1)
        ax.annotate(text, (1.0, y), xycoords=("axes fraction", "data"), ha="right", va="bottom")
    # the quantity on a line of its own: a column name (adc_np_median_um2_per_ms) ran off
    # the figure; "tight" keeps every label inside the saved image (a user trial)
    ax.set_xlabel(f"mean of measured and reference\n{quantity}")
    ax.set_ylabel(f"measured − reference\n{quantity}")
    ax.set_title(f"Bland-Altman (n = {ba.n})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight", pad_inches=0.1)
    plt.close(fig)
    return ba


def _read_parquet(path: Path) -> Any:
    """A Parquet table (``discquant cohort``'s ``cohort_discs.parquet``) as a DataFrame."""
    from discquant.errors import InvalidInputError

    try:
        import pandas as pd

        df = pd.read_parquet(path)
    except ImportError as exc:  # pyarrow is a dependency; a trimmed install may lack it
        raise InvalidInputError(
            "reading .parquet needs pyarrow, which is not installed; give the .csv beside it",
            path=path,
        ) from exc
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise InvalidInputError(
            f"cannot read Parquet table: {str(exc).splitlines()[0] if str(exc) else exc!r}",
            path=path,
        ) from exc
    repeated = sorted({str(c) for c in df.columns[df.columns.duplicated()]})
    if repeated:
        raise InvalidInputError(
            f"column(s) {repeated} appear more than once in the header", path=path
        )
    from discquant.delimited import find_column

    for key in ("subject", "level"):
        name = find_column(list(df.columns), key)
        if name is not None:  # text, as in the CSV/TSV reader; empty stays empty
            df[name] = df[name].map(lambda v: v if pd.isna(v) else str(v)).astype(object)
    return df


@dataclass(frozen=True)
class _Table:
    """A table read by :func:`read_table`, with what its messages need."""

    df: Any
    """Rows in file order, index 0..n-1; ``subject`` and ``level`` as they are matched."""
    rows: list[int]
    """Each row's line in a text file, or its data row (from 1) in a Parquet file."""
    subject_written: Any
    level_written: Any
    """``subject`` and ``level`` as the file writes them (stripped of blanks)."""
    sep: str | None
    """The separator of a text table; ``None`` for Parquet."""

    def where(self, positions: Sequence[int]) -> str:
        """``on line(s) …`` of a text file, ``in data row(s) …`` of a Parquet file."""
        nums = ", ".join(str(self.rows[int(k)]) for k in positions)
        many = "s" if len(positions) > 1 else ""
        return f"on line{many} {nums}" if self.sep is not None else f"in data row{many} {nums}"

    def found(self) -> str:
        """The columns found and, for a text table, the separator it was read with."""
        from discquant.delimited import SEPARATOR_NAMES

        text = f"found {[str(c) for c in self.df.columns]}"
        if self.sep is not None:
            text += f", read as {SEPARATOR_NAMES.get(self.sep, repr(self.sep))}-separated"
        return text


def read_table(path: Path, *, subject_key: Callable[[str], str] | None = None) -> Any:
    """Read a TSV, CSV or Parquet table as a DataFrame.

    ``.parquet`` (or a file that starts as one) is read with ``pandas.read_parquet``;
    otherwise as text separated by commas, tabs or semicolons (the one that splits the
    header and the first rows alike; a tie goes to tab for ``.tsv``/``.txt``, else to
    comma), with or without a byte-order mark. Header names match ignoring case and
    surrounding blanks (``Subject``); ``subject`` and ``level`` are renamed so.
    A ``session`` column (a cohort's table of a BIDS dataset with sessions) joins its
    non-empty cells to the subject: ``01`` of session ``2`` is the subject ``01_ses-2``, as
    its output folder ``sub-01/ses-2`` and a reference's ``sub-01_ses-2`` are named.
    ``subject``, ``session`` and ``level`` are read as text (``1`` in one table matches ``1`` in the
    other, whether or not the rest of the column looks numeric), stripped of surrounding
    blanks; a level spelled ``L4/L5``, ``L4_L5``, ``L4L5``, ``l4-l5``, ``L4 - L5`` is read
    as ``L4-L5`` (:func:`normalise_level`). Blank lines are skipped; error messages give a
    text file's own line numbers, and a Parquet file's data rows (counted from 1).

    Parameters
    ----------
    path
        The table.
    subject_key
        Applied to every subject after the checks for empty cells, before the check for
        duplicates: e.g. ``discquant.output_paths.bids_label``, under which
        ``sub-spider_002`` and ``spider002`` are one subject (and two rows naming it at one
        level are duplicates).

    Raises
    ------
    InputNotFoundError
        No such file.
    InvalidInputError
        A folder; a binary or non-UTF-8 file that is not Parquet; unreadable, a header
        name twice, a row whose field count is not the header's, no ``subject`` or
        ``level`` column (the message lists the columns found and the separator), an
        empty subject or level, or a (subject, level) pair on more than one row (it
        would be counted twice).
    """
    return _read_table(path, subject_key=subject_key).df


def _read_table(path: Path, *, subject_key: Callable[[str], str] | None = None) -> _Table:
    """:func:`read_table`, keeping each row's line and the subjects and levels as written."""
    import pandas as pd

    from discquant.delimited import (
        check_text,
        data_row_lines,
        find_column,
        header_fields,
        is_parquet,
        sniff_delimiter,
    )
    from discquant.errors import InputNotFoundError, InvalidInputError

    if path.is_dir():
        hint = ""
        for name in ("cohort_discs.csv", "cohort_discs.parquet"):
            if (path / name).is_file():
                hint = f" (it holds {name}: give that)"
                break
        raise InvalidInputError(f"a folder, not a table file{hint}", path=path)
    if not path.is_file():
        raise InputNotFoundError("file not found", path=path)
    sep: str | None = None
    if is_parquet(path):
        df = _read_parquet(path)
        rows = list(range(1, len(df) + 1))
    else:
        check_text(path)
        sep = sniff_delimiter(path, prefer="\t" if path.suffix.lower() in (".tsv", ".txt") else ",")
        rows = data_row_lines(path, sep)
        header = header_fields(path, sep)
        keys = ("subject", "session", "level")
        text = {n for n in (find_column(header, k) for k in keys) if n}
        try:
            df = pd.read_csv(path, sep=sep, dtype=dict.fromkeys(text, str), encoding="utf-8-sig")
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise InvalidInputError(f"cannot read table: {exc}", path=path) from exc
        if len(rows) != len(df):  # both readers follow the same rules; never seen to differ
            raise InvalidInputError(
                f"cannot read table: {len(df)} rows read but {len(rows)} lines with data",
                path=path,
            )
    df = df.reset_index(drop=True)
    table = _Table(df, rows, None, None, sep)
    names = {k: find_column(list(df.columns), k) for k in ("subject", "level")}
    missing = sorted(k for k, n in names.items() if n is None)
    if missing:
        raise InvalidInputError(f"missing column(s) {missing} ({table.found()})", path=path)
    df = df.rename(columns={n: k for k, n in names.items() if n != k})
    for key in ("subject", "level"):
        df[key] = df[key].str.strip()
        empty = df[key].isna() | (df[key] == "")
        if empty.any():
            first_empty = int(np.flatnonzero(empty.to_numpy())[0])
            raise InvalidInputError(f"empty {key} {table.where([first_empty])}", path=path)
    session = find_column(list(df.columns), "session")
    if session is not None:  # a cohort's table of sessions: one study per subject and session
        ses = df[session].astype("string").str.strip().str.removeprefix("ses-")
        has = (ses.notna() & (ses != "")).to_numpy(dtype=bool)
        df.loc[has, "subject"] = df["subject"][has] + "_ses-" + ses[has]
    written = df["subject"].copy()
    level_written = df["level"].copy()
    df["level"] = level_written.map(normalise_level)
    if subject_key is not None:
        df["subject"] = written.map(subject_key)
        # A subject with no letter or digit has no BIDS label (bids_label gives "unknown"
        # for all of them): two such patients in the two tables were paired silently.
        bare = ~written.str.removeprefix("sub-").str.contains(r"[A-Za-z0-9]", regex=True)
        if bare.any():
            k = int(np.flatnonzero(bare.to_numpy())[0])
            raise InvalidInputError(
                f"subject {written.iloc[k]!r} {table.where([k])} has no letter or digit "
                "(A-Z, 0-9), so it has no BIDS label to match on",
                path=path,
            )
    dup = df.duplicated(["subject", "level"], keep=False).to_numpy()
    if dup.any():
        first = int(np.flatnonzero(dup)[0])
        subject, level = df["subject"].iloc[first], df["level"].iloc[first]
        same = np.flatnonzero(((df["subject"] == subject) & (df["level"] == level)).to_numpy())
        as_written = ""
        for col, why in ((written, "subjects match by BIDS label"), (level_written, None)):
            spelled = list(dict.fromkeys(str(col.iloc[int(k)]) for k in same))
            if len(spelled) > 1:
                why = why or f"levels are read as {level}"
                as_written += f" (written {', '.join(repr(n) for n in spelled)}: {why})"
        raise InvalidInputError(
            f"duplicate (subject, level) row ({subject}, {level}) {table.where(list(same))}"
            + as_written,
            path=path,
        )
    return _Table(df, rows, written, level_written, sep)


def _numeric_column(
    merged: Any, col: str, name: str, path: Path, allowed: Sequence[int] | None = None
) -> Any:
    """``merged[col]`` as floats; raise, naming ``path``, at the first unusable value.

    Empty cells must have been dropped before. Unusable: text, ±inf, or with ``allowed`` a
    value not in it.
    """
    import pandas as pd

    from discquant.delimited import decimal_comma_hint
    from discquant.errors import InvalidInputError

    vals = pd.to_numeric(merged[col], errors="coerce")
    bad = ~np.isfinite(vals.to_numpy(float))  # text and ±inf (inf left Bland-Altman silently)
    if allowed is not None:
        bad |= ~np.isin(vals.to_numpy(float), list(allowed))
    if bad.any():
        row = merged.iloc[int(np.flatnonzero(bad)[0])]
        if allowed is None:
            what = "values must be finite numbers"
        elif tuple(allowed) == GRADES:
            what = "grades must be integers 1-5"
        else:
            what = "values must be one of " + ", ".join(str(a) for a in allowed)
        cell = "an empty cell" if pd.isna(row[col]) else repr(str(row[col]))
        text = "" if pd.isna(row[col]) else str(row[col]).strip()
        raise InvalidInputError(
            f"{what}: {cell} in column {name!r} (subject {row['subject']}, level {row['level']})"
            + decimal_comma_hint(text),
            path=path,
        )
    return vals.astype(float)


def _sample(values: Any, n: int = 3) -> str:
    """The first ``n`` distinct values, then ``…`` when there are more."""
    distinct = list(dict.fromkeys(str(v) for v in values))
    return ", ".join(distinct[:n]) + (", …" if len(distinct) > n else "")


def _unmatched(table: _Table, other: _Table) -> list[dict[str, Any]]:
    """The rows of ``table`` whose (subject, level) ``other`` lacks, as written, with
    their line (a text table) or data row (Parquet)."""
    keys = set(zip(other.df["subject"], other.df["level"], strict=True))
    where = "line" if table.sep is not None else "row"
    return [
        {
            "subject": str(table.subject_written.iloc[k]),
            "level": str(table.level_written.iloc[k]),
            where: table.rows[k],
        }
        for k, key in enumerate(zip(table.df["subject"], table.df["level"], strict=True))
        if key not in keys
    ]


def unmatched_warnings(
    report: dict[str, Any], pred: Path, ref: Path, *, limit: int = 5
) -> list[str]:
    """One line per table with rows that match no row of the other (the first ``limit``
    of them, then a count), from ``report["unmatched_pred"]`` and ``["unmatched_ref"]``."""
    lines = []
    for key, path, what, other in (
        ("unmatched_pred", pred, "prediction", "reference"),
        ("unmatched_ref", ref, "reference", "prediction"),
    ):
        rows = report.get(key) or []
        if not rows:
            continue
        shown = [
            f"{r['subject']} {r['level']} ({'line' if 'line' in r else 'data row'} "
            f"{r.get('line', r.get('row'))})"
            for r in rows[:limit]
        ]
        more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
        lines.append(
            f"{path}: {len(rows)} {what} row(s) match no {other} row (subject and level) "
            f"and are left out: {', '.join(shown)}{more}"
        )
    return lines


def _num(value: float, spec: str = ".3f") -> str:
    """``value`` formatted, or ``n/a`` when it is undefined (NaN: e.g. κ of one class)."""
    return format(value, spec) if np.isfinite(value) else "n/a"


def _summary_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Columns right-aligned to their widest cell, the first (the level) left-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in [header, *rows]
    ]


def format_grade_summary(results: Sequence[tuple[str, GradeAgreement]]) -> str:
    """A compact summary of grade agreement: one line per group (``all`` and each level)
    and the first group's confusion matrix. Undefined figures read ``n/a``."""
    header = ["level", "n", "exact", "balanced", "kappa lin", "kappa quad", "within ±1"]
    rows = [
        [
            name,
            str(a.n),
            _num(a.exact_accuracy),
            _num(a.balanced_accuracy),
            _num(a.kappa_linear),
            _num(a.kappa_quadratic),
            _num(a.within_one),
        ]
        for name, a in results
    ]
    lines = _summary_table(header, rows)
    name, a = results[0]
    lines.append(f"confusion, {name} (rows = reference, columns = predicted)")
    width = max(3, *(len(str(c)) for row in a.confusion for c in row))
    lines.append("   " + "".join(f"{g:>{width + 1}d}" for g in a.labels))
    for g, row in zip(a.labels, a.confusion, strict=True):
        lines.append(f"{g:>3d}" + "".join(f"{c:>{width + 1}d}" for c in row))
    return "\n".join(lines)


def format_binary_summary(results: Sequence[tuple[str, BinaryAgreement]]) -> str:
    """A compact summary of yes/no agreement: one line per group and the first group's
    2 × 2 confusion matrix. Undefined figures read ``n/a``."""
    header = ["level", "n", "prevalence", "sensitivity", "specificity", "balanced", "accuracy"]
    header.append("ROC AUC")
    rows = [
        [
            name,
            str(b.n),
            _num(b.prevalence),
            _num(b.sensitivity),
            _num(b.specificity),
            _num(b.balanced_accuracy),
            _num(b.accuracy),
            _num(b.auc),
        ]
        for name, b in results
    ]
    lines = _summary_table(header, rows)
    name, b = results[0]
    lines.append(f"confusion, {name} (rows = reference, columns = predicted)")
    lines.append("           no   yes")
    lines.append(f"    no {b.confusion[0][0]:>6d}{b.confusion[0][1]:>6d}")
    lines.append(f"   yes {b.confusion[1][0]:>6d}{b.confusion[1][1]:>6d}")
    return "\n".join(lines)


def evaluate_tables(
    pred: Path,
    ref: Path,
    *,
    ref_column: str = "grade",
    pred_column: str = "grade",
    by_level: bool = True,
    bland_altman_mode: bool = False,
    binary: bool = False,
    score_column: str | None = None,
    plot: Path | None = None,
    subject_key: Callable[[str], str] | None = None,
) -> tuple[dict[str, Any], str]:
    """Match two tables on (subject, level) and compare one column; returns (JSON, text).

    Subjects match as written, or as ``subject_key`` turns them (``discquant evaluate
    grade`` passes ``bids_label``, so that ``sub-spider002`` matches the ``spider002`` of
    a cohort table); levels as :func:`normalise_level` reads them (``L4/L5`` is
    ``L4-L5``); see :func:`read_table`. Column names match ignoring case. Rows of either
    table that match no row of the other are left out, and listed in the JSON
    (``unmatched_pred``, ``unmatched_ref``: subject and level as written, and the line);
    :func:`unmatched_warnings` says so in words.

    ``binary`` compares yes/no columns (0/1) with :func:`binary_agreement`; its
    ``score_column`` in the predictions (e.g. ``p_herniation``) gives the ROC AUC.
    Matched rows with an empty value (or pandas' missing marks: NA, NaN, null, ...) in
    either compared column are left out (counted in
    ``n_empty``); text in a compared column, or an empty or non-numeric score, is an
    error naming the file. ``plot`` is written only after every check has passed.

    The text is a compact summary: the match counts, one line per group (all, then each
    level) and, for grades, the confusion matrix of all rows; the JSON holds every
    group's figures and confusion matrix.
    """
    import pandas as pd

    from discquant.delimited import find_column
    from discquant.errors import InvalidInputError

    for col in (pred_column, ref_column, score_column):
        if col is not None and col.strip().casefold() in ("subject", "level"):
            raise InvalidInputError(f"{col!r} names the disc; it cannot be a compared column")
    pt = _read_table(pred, subject_key=subject_key)
    rt = _read_table(ref, subject_key=subject_key)
    p, r = pt.df, rt.df

    def column(table: _Table, col: str, path: Path, option: str) -> str:
        """The name ``col`` has in ``table`` (case and blanks aside), or an error."""
        name = find_column(list(table.df.columns), col)
        if name is not None:
            return name
        hint = ""
        if col == "grade" and "pfirrmann_grade" in table.df.columns:
            # discquant's own tables (cohort_discs, sub-*_discs.tsv) name it so; the
            # column is not guessed, since another column may be meant.
            hint = f"; discquant's tables call it pfirrmann_grade: add {option} pfirrmann_grade"
        raise InvalidInputError(f"no column {col!r}{hint} ({table.found()})", path=path)

    pred_name = column(pt, pred_column, pred, "--pred-column")
    ref_name = column(rt, ref_column, ref, "--column")
    score_name = column(pt, score_column, pred, "--score-column") if score_column else None
    if score_name is not None and score_name == pred_name:  # also "P_Herniation" for both
        raise InvalidInputError(
            f"the score column {score_column!r} is the compared column; give the predicted "
            "probability (e.g. p_herniation)",
            path=pred,
        )
    keep = [pred_name] + ([score_name] if score_name else [])
    p = p[["subject", "level", *keep]].rename(columns={pred_name: "pred"})
    if score_name:
        p = p.rename(columns={score_name: "score"})
    r = r[["subject", "level", ref_name]].rename(columns={ref_name: "ref"})
    both = pd.merge(r, p, on=["subject", "level"], how="inner", validate="one_to_one")
    m = both.dropna(subset=["ref", "pred"]).reset_index(drop=True)
    report: dict[str, Any] = {
        "n_pred": len(p),
        "n_ref": len(r),
        "n_matched": len(m),
        "n_empty": len(both) - len(m),
        "column": ref_column,
    }
    if m.empty:
        for side, df, path in (("--pred", p, pred), ("--ref", r, ref)):
            if df.empty:
                raise InvalidInputError(f"{side} has no data rows", path=path)
        if both.empty:  # say what each side calls its subjects and levels
            seen = "; ".join(
                f"{side} has subjects {_sample(df['subject'])} at levels {_sample(df['level'])}"
                for side, df in (("--pred", p), ("--ref", r))
            )
            how = "by BIDS label" if subject_key is not None else "as written"
            raise InvalidInputError(
                f"no (subject, level) row is in both tables (subjects compared {how}: {seen})",
                path=pred,
            )
        raise InvalidInputError(
            "no (subject, level) row is in both tables with a value in both", path=pred
        )
    report["unmatched_pred"] = _unmatched(pt, rt)
    report["unmatched_ref"] = _unmatched(rt, pt)
    allowed: Sequence[int] | None = None
    if binary:
        allowed = (0, 1)
    elif not bland_altman_mode:
        allowed = GRADES
    m["ref"] = _numeric_column(m, "ref", ref_name, ref, allowed)
    m["pred"] = _numeric_column(m, "pred", pred_name, pred, allowed)
    if binary and score_name:
        m["score"] = _numeric_column(m, "score", score_name, pred)
    if bland_altman_mode and len(m) < 2:
        raise InvalidInputError(
            f"Bland-Altman needs at least two matched rows, found {len(m)}", path=pred
        )
    groups: list[tuple[str, Any]] = [("all", m)]
    if by_level:
        groups += [(str(lev), g) for lev, g in m.groupby("level")]
        # each level's results sit beside the report's own keys: a level written "all"
        # replaced the overall figures, exit 0 (an audit)
        reserved = {*report, "all", "plot"}
        if clash := sorted(name for name, _ in groups[1:] if name in reserved):
            raise InvalidInputError(
                f"level {clash[0]!r} is a name of the report's own results: rename it",
                path=ref,
            )
    lines: list[str] = [f"matched {len(m)} of {len(r)} reference rows ({len(p)} predictions)"]
    if report["n_empty"]:
        lines[0] += f"; {report['n_empty']} matched row(s) left out for an empty or NA value"
    if bland_altman_mode:
        for name, g in groups:
            if len(g) < 2:  # said, not left out: a level missing from the output reads as lost
                report[name] = {"n": len(g), "note": "fewer than 2 pairs: not computed"}
                lines.append(f"{name:>8s}  n={len(g):<5d} fewer than 2 pairs: not computed")
                continue
            ba = bland_altman(g["ref"].to_numpy(float), g["pred"].to_numpy(float))
            report[name] = ba.to_dict()
            lines.append(
                f"{name:>8s}  n={ba.n:<5d} bias={ba.bias:+.4f} "
                f"(mean relative difference {_num(ba.bias_percent, '+.2f')} %)  "
                f"LoA [{ba.loa_low:+.4f}, {ba.loa_high:+.4f}]  "
                f"within 5 %: {_num(ba.within_5_percent)}"
                + (f" (relative figures over {ba.n_relative})" if ba.n_relative < ba.n else "")
            )
        if plot is not None:
            bland_altman_plot(
                m["ref"].to_numpy(float), m["pred"].to_numpy(float), plot, quantity=ref_column
            )
            report["plot"] = str(plot)
    elif binary:
        found: list[tuple[str, BinaryAgreement]] = []
        for name, g in groups:
            sc = g["score"].to_numpy(float) if score_name else None
            b = binary_agreement(g["ref"].to_numpy(int), g["pred"].to_numpy(int), scores=sc)
            report[name] = b.to_dict()
            found.append((name, b))
        lines.append(format_binary_summary(found))
    else:
        graded: list[tuple[str, GradeAgreement]] = []
        for name, g in groups:
            a = grade_agreement(g["ref"].to_numpy(int), g["pred"].to_numpy(int))
            report[name] = a.to_dict()
            graded.append((name, a))
        lines.append(format_grade_summary(graded))
    return report, "\n".join(lines)
