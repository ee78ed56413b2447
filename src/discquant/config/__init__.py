"""Packaged configuration files (YAML/JSON), and reading a user's YAML file."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_EXPONENT_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)[eE][-+]?[0-9]+$")
"""A number with an exponent (``1e-3``, ``1.5e3``, ``5.0E4``): a float in YAML 1.2, text in
PyYAML's YAML 1.1 unless it has both a dot and a signed exponent (``1.0e-3``). Configs are
checked strictly, so ``lr: 1e-3`` would be refused as text; it is read as the number its
writer meant (YAML 1.2's float form, those with an exponent)."""


class DuplicateKeyError(ValueError):
    """A YAML mapping names one key twice."""


def _loader() -> Any:
    """PyYAML's safe loader that also reads :data:`_EXPONENT_FLOAT` numbers as floats
    (PyYAML has no YAML 1.2 mode; ruamel.yaml would be a dependency for this alone)."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            # PyYAML lets the last of two equal keys win: `steps: 40` ... `steps: 20`
            # trained 20 steps without a word (an audit); YAML 1.2 forbids it.
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":  # `<<:` merges, as before
                    continue
                key = self.construct_object(key_node, deep=True)
                line = key_node.start_mark.line + 1
                try:
                    hash(key)
                except TypeError:  # a list as a key: SafeLoader's own error follows
                    continue
                if key in seen:  # null, dates and numbers too: any key written twice
                    raise DuplicateKeyError(f"duplicate key {key!r} (lines {seen[key]} and {line})")
                seen[key] = line
            return super().construct_mapping(node, deep=deep)

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+.0123456789"))
    return Loader


def read_yaml(path: Path) -> Any:
    """The content of a UTF-8 YAML file (``{}`` for an empty one), or a one-line error.

    Raises
    ------
    InputNotFoundError
        ``path`` is not a file.
    InvalidInputError
        Not UTF-8, not YAML, or a mapping that names a key twice.
    """
    from discquant.errors import InputNotFoundError, InvalidInputError

    if not path.is_file():
        raise InputNotFoundError("config file not found", path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=path
        ) from exc
    return parse_yaml(text, path)


def parse_yaml(text: str, where: str | Path) -> Any:
    """YAML text read as :func:`read_yaml` reads a file (``where`` names it in errors):
    safe, YAML 1.2 exponent floats, and a key written twice refused.

    Raises
    ------
    InvalidInputError
        Not YAML, or a mapping that names a key twice.
    """
    import yaml

    from discquant.errors import InvalidInputError, one_line

    try:
        raw = yaml.load(text, Loader=_loader())  # a SafeLoader
    except DuplicateKeyError as exc:
        raise InvalidInputError(str(exc), path=where) from exc
    except (yaml.YAMLError, RecursionError) as exc:  # RecursionError: nested too deep
        raise InvalidInputError(f"not YAML ({one_line(exc)})", path=where) from exc
    return {} if raw is None else raw  # an empty file; [] or 0 stay what they are


TRAINING_CONFIGS = ("segment", "grade")
"""The shipped models whose training configuration is packaged (``config/train/``)."""


def training_config_text(model: str) -> str:
    """The YAML configuration the shipped ``model`` was trained with (``segment``, ``grade``).

    The repository's ``configs/segment.yaml`` and ``configs/grade.yaml`` link to these
    packaged files, so an installed package has them too (its users had no ``configs``
    folder to start from; an audit). Their data paths name the project's data folder.

    Examples
    --------
    >>> training_config_text("grade").splitlines()[0]
    '# `discquant train grade --config configs/grade.yaml --out DIR`'
    """
    from importlib import resources

    if model not in TRAINING_CONFIGS:
        raise ValueError(f"no packaged training configuration {model!r}; one of {TRAINING_CONFIGS}")
    return (resources.files("discquant") / "config" / "train" / f"{model}.yaml").read_text(
        encoding="utf-8"
    )
