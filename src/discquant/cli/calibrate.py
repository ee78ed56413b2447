"""`discquant calibrate`: fit a nucleus-ADC → water-content calibration from paired data."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Any

import typer

from discquant.cli._common import output_file, setup_logging, user_errors
from discquant.output_paths import check_output_file


def _numbers(column: Any, name: str, lines: list[int], path: Path) -> Any:
    """``column`` as floats; the first value that is not a number is an error naming its
    line and column (and, for ``1,664``, the decimal comma: it is not read as a point)."""
    import pandas as pd

    from discquant.delimited import decimal_comma_hint
    from discquant.errors import InvalidInputError

    values = pd.to_numeric(column, errors="coerce")
    bad = column.notna().to_numpy() & values.isna().to_numpy()
    if bad.any():
        k = int(bad.argmax())
        text = str(column.iloc[k]).strip()
        raise InvalidInputError(
            f"non-numeric value {text!r} on line {lines[k]}, column {name!r}"
            f"{decimal_comma_hint(text)}",
            path=path,
        )
    return values.to_numpy(float)


def calibrate_cmd(
    pairs: Annotated[Path, typer.Argument(help="CSV/TSV with paired ADC and water values.")],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", parser=output_file, help="Calibration file to write (JSON)."),
    ],
    adc_column: Annotated[str, typer.Option(help="Column with nucleus ADC in µm²/ms.")] = "adc",
    water_column: Annotated[str, typer.Option(help="Column with water content in %.")] = "water",
    label: Annotated[
        str | None, typer.Option(help="Where the pairs come from (shown wherever it is used).")
    ] = None,
) -> None:
    """Fit water % = a + b × ADC by least squares and write it for `analyze --calibration`."""
    setup_logging()
    import numpy as np
    import pandas as pd

    from discquant.delimited import check_text, data_row_lines, find_column, sniff_delimiter
    from discquant.errors import InvalidInputError
    from discquant.measure.water import fit_calibration
    from discquant.output_paths import check_not_an_input

    with user_errors():
        if pairs.is_dir():
            raise InvalidInputError("a folder, not a table file", path=pairs)
        if not pairs.is_file():
            raise InvalidInputError("file not found", path=pairs)
        check_output_file(out)
        check_not_an_input(out, [("the input table", pairs)], option="--out")
        check_text(pairs)  # a Parquet or binary file: the codec's message (an audit)
        sep = sniff_delimiter(pairs)
        # a short row read as an empty value was left out unsaid
        lines = data_row_lines(pairs, sep)
        try:
            table = pd.read_csv(pairs, sep=sep)
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError, csv.Error) as exc:
            raise InvalidInputError(f"not a CSV/TSV table ({exc})", path=pairs) from exc
        # "ADC", " Water", a BOM before the first name: the column meant, as evaluate
        # grade reads them (it said "missing column(s)")
        found = {
            want: find_column(list(table.columns), want) for want in (adc_column, water_column)
        }
        missing = {want for want, name in found.items() if name is None}
        if missing:
            only = str(table.columns[0]) if len(table.columns) == 1 else ""
            if len(only.split()) > 1:  # "adc water": spaces are not read as a separator
                raise InvalidInputError(
                    f"one column {only!r}: separate the columns with a comma, tab or "
                    "semicolon, not spaces",
                    path=pairs,
                )
            columns = [str(c) for c in table.columns]
            raise InvalidInputError(
                f"missing column(s) {sorted(missing)} (found {columns})", path=pairs
            )
        adc_name, water_name = str(found[adc_column]), str(found[water_column])
        if adc_name == water_name:  # fitted ADC against itself: "R² = 1.000" (an audit)
            raise InvalidInputError(
                f"--adc-column and --water-column name the same column {adc_name!r}",
                path=pairs,
            )
        adc = _numbers(table[adc_name], adc_name, lines, pairs)
        water = _numbers(table[water_name], water_name, lines, pairs)
        # "inf" parses as a number; it is no measurement, and was counted as left out
        infinite = np.flatnonzero(np.isinf(adc) | np.isinf(water))
        if infinite.size:
            nums = ", ".join(str(lines[k]) for k in infinite)
            raise InvalidInputError(f"infinite value on line(s) {nums}", path=pairs)
        try:
            cal = fit_calibration(adc, water, label=label or f"fitted from {pairs.name}")
        except InvalidInputError as exc:
            raise InvalidInputError(str(exc), path=pairs) from exc
        cal.save(out)
    left_out = len(table) - cal.n_pairs
    slope = cal.slope_percent_per_um2_per_ms
    typer.echo(
        f"water % = {cal.intercept_percent:.2f} {'−' if slope < 0 else '+'} {abs(slope):.2f} × ADC "
        f"(n = {cal.n_pairs}, R² = {cal.r2:.3f}) → {out}"
        + (f"; {left_out} row(s) with an empty or NA value left out" if left_out else "")
    )
