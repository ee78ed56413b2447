"""Delimited text tables (CSV/TSV): their separator and header, and the row-by-row
checks that pandas does not make."""

from __future__ import annotations

import csv
import itertools
from collections.abc import Sequence
from pathlib import Path

from discquant.errors import InvalidInputError

#: The separators a table may use, in the order that breaks a tie.
SEPARATORS = (",", "\t", ";")

#: How a message names a separator.
SEPARATOR_NAMES = {",": "comma", "\t": "tab", ";": "semicolon"}


def _first_line(path: Path) -> str:
    """The first non-blank line of a UTF-8 text file (a leading BOM dropped)."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return next((line for line in fh if line.strip()), "")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"cannot read table: {exc}", path=path) from exc


def sniff_delimiter(path: Path, *, prefer: str = ",", sample: int = 20) -> str:
    """Comma, tab or semicolon, from the header and the first ``sample`` rows.

    Each separator splits the rows as ``csv`` does, quotes respected. The one that splits
    the header into the most fields (more than one) and every sampled row into as many is
    taken; when no separator splits every row alike (a short row, an error later), the
    one that splits the header into the most fields. A tie goes to ``prefer`` (e.g. tab
    for a ``.tsv``), then to the order of :data:`SEPARATORS`. ``csv.Sniffer``, used
    before, read the header alone and preferred a comma to a tab, so ``adc (µm², median)``
    in a TSV header split the table at its comma.
    """
    order = [prefer, *(s for s in SEPARATORS if s != prefer)]
    shapes: dict[str, tuple[int, bool]] = {}
    try:
        for sep in order:
            with path.open(newline="", encoding="utf-8-sig") as fh:
                filled = (r for r in csv.reader(fh, delimiter=sep) if any(f.strip() for f in r))
                rows = list(itertools.islice(filled, sample + 1))
            width = len(rows[0]) if rows else 1
            shapes[sep] = (width, width > 1 and all(len(r) == width for r in rows))
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"cannot read table: {exc}", path=path) from exc
    except csv.Error:
        return prefer
    return max(order, key=lambda s: (shapes[s][1], shapes[s][0]))  # max keeps a tie's first


def header_fields(path: Path, sep: str) -> list[str]:
    """The header's names as ``csv`` reads them with ``sep`` (a leading BOM dropped)."""
    try:
        return next(csv.reader([_first_line(path)], delimiter=sep), [])
    except csv.Error as exc:
        raise InvalidInputError(f"cannot read table: {exc}", path=path) from exc


def find_column(names: Sequence[object], wanted: str) -> str | None:
    """The name in ``names`` that means ``wanted``: itself, else the one name equal to it
    ignoring case and surrounding blanks (``Grade``, `` grade``). ``None`` when there is
    none or several (``Grade`` and ``GRADE``: the caller names them)."""
    text = [str(n) for n in names]
    if wanted in text:
        return wanted
    key = wanted.strip().casefold()
    same = [n for n in text if n.strip().lstrip("\ufeff").casefold() == key]
    return same[0] if len(same) == 1 else None


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


def decimal_comma_hint(text: str) -> str:
    """`` (decimal comma? use a point)`` when ``text`` is a number written with a decimal
    comma (``1,664``), else ``""``: for the messages that refuse a value that is no number
    (decimal commas are never read as points)."""
    if "," not in text:
        return ""
    try:
        float(text.strip().replace(",", "."))
    except ValueError:
        return ""
    return " (decimal comma? use a point)"


_PARQUET_MAGIC = b"PAR1"

#: Leading bytes of binary files a user may give for a table by mistake.
_BINARY_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed, e.g. a .nii.gz image"),
    (b"PK\x03\x04", "a zip archive, e.g. an .xlsx workbook: export it as CSV"),
    (b"\x89PNG", "a PNG image"),
    (b"%PDF", "a PDF"),
    (_PARQUET_MAGIC, "a Parquet table: give the rows as CSV or TSV"),
)


def is_parquet(path: Path) -> bool:
    """``.parquet`` by name, or a Parquet file by its leading bytes whatever its name."""
    if path.suffix.lower() == ".parquet":
        return True
    with path.open("rb") as fh:
        return fh.read(4) == _PARQUET_MAGIC


def check_text(path: Path) -> None:
    """Refuse a binary or non-UTF-8 file before the CSV readers meet it.

    Raises
    ------
    InvalidInputError
        "not a CSV/TSV text table" with what the file looks like (the readers' own message
        was the codec's: "'utf-8' codec can't decode byte 0x8b in position 1").
    """
    data = path.read_bytes()
    for magic, kind in _BINARY_MAGIC:
        if data.startswith(magic):
            raise InvalidInputError(f"not a CSV/TSV text table ({kind})", path=path)
    if b"\x00" in data[:65536]:
        raise InvalidInputError("not a CSV/TSV text table (binary data)", path=path)
    try:
        data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InvalidInputError(
            f"not a CSV/TSV text table in UTF-8 (byte 0x{data[exc.start]:02x} on line "
            f"{line}); save it as UTF-8 text",
            path=path,
        ) from exc
