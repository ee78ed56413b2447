"""Packaged configuration files (YAML/JSON), and reading a user's YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_yaml(path: Path) -> Any:
    """The content of a UTF-8 YAML file (``{}`` for an empty one), or a one-line error.

    Raises
    ------
    InputNotFoundError
        ``path`` is not a file.
    InvalidInputError
        Not UTF-8, or not YAML.
    """
    import yaml

    from discquant.errors import InputNotFoundError, InvalidInputError

    if not path.is_file():
        raise InputNotFoundError("config file not found", path=path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=path
        ) from exc
    except (yaml.YAMLError, RecursionError) as exc:  # RecursionError: nested too deep
        raise InvalidInputError(f"not YAML ({exc})", path=path) from exc
    return {} if raw is None else raw  # an empty file; [] or 0 stay what they are
