"""Row-by-row checks of delimited text tables (CSV/TSV) that pandas does not make."""

from __future__ import annotations

import csv
from pathlib import Path

from discquant.errors import InvalidInputError


def sniff_delimiter(path: Path) -> str:
    """Comma, tab or semicolon, from the first non-blank line (comma when unclear).

    The same guess pandas' ``sep=None`` makes (``csv.Sniffer``), made here so that the
    row checks of :func:`data_row_lines` split the lines as pandas will.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            first = next((line for line in fh if line.strip()), "")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"cannot read table: {exc}", path=path) from exc
    try:
        return csv.Sniffer().sniff(first, delimiters=",\t;").delimiter
    except csv.Error:
        return ","


def data_row_lines(path: Path, sep: str) -> list[int]:
    """Physical line number of each data row of a delimited file, as pandas reads it.

    pandas' reader fills a short row with empty values and, given one field too many,
    shifts every column (the first field becomes the index) without a word; it also
    renames a repeated header name (``grade`` → ``grade.1``). The standard ``csv`` module
    reads the same quoting rules and reports lines, so each row is checked here first.
    Blank and whitespace-only lines are skipped, as pandas skips them; a line holding
    only ``""`` is a row with one empty field, as pandas reads it.

    Raises
    ------
    InvalidInputError
        A header name twice, or a row with more or fewer fields than the header.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh, delimiter=sep)
            header: list[str] | None = None
            lines: list[int] = []
            last_line = 0
            for row in reader:
                first, last_line = last_line + 1, reader.line_num
                # csv gives [] for a blank line, [''] for a line of only "" (a row to
                # pandas) and ['  '] for a whitespace-only one (skipped by pandas)
                if not row or (len(row) == 1 and row[0] and not row[0].strip()):
                    continue
                if header is None:
                    header = row
                    # blank names (trailing separators of a spreadsheet export) are
                    # empty columns, not a repeated one
                    seen = {n for n in header if n.strip() and header.count(n) > 1}
                    if seen:
                        raise InvalidInputError(
                            f"column(s) {sorted(seen)} appear more than once in the header",
                            path=path,
                        )
                    continue
                if len(row) != len(header):
                    raise InvalidInputError(
                        f"line {first} has {len(row)} field(s), the header has {len(header)}",
                        path=path,
                    )
                lines.append(first)
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read table: {exc}", path=path) from exc
    return lines
