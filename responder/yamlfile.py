"""YAML loading that remembers where each value came from, so errors can name file, line and field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from responder.errors import ConfigError

PathKey = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)


@dataclass
class YamlDoc:
    """Parsed YAML plus the line of every key and item."""

    filename: str
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)

    def line_of(self, loc: Sequence[str | int]) -> int:
        """The line of the deepest known part of `loc` (1 when nothing matches)."""
        key = tuple(loc)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return 1


def _index_lines(node: yaml.Node, path: PathKey, lines: dict[PathKey, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            child = (*path, str(key_node.value))
            lines[child] = key_node.start_mark.line + 1
            _index_lines(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*path, index)
            lines[child] = item.start_mark.line + 1
            _index_lines(item, child, lines)


def parse_yaml(text: str, filename: str) -> YamlDoc:
    """Parse one YAML document; syntax errors become a ConfigError with the line."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 1
        raise ConfigError([f"{filename}:{line}: YAML syntax: {exc.problem}"]) from exc
    finally:
        loader.dispose()
    doc = YamlDoc(filename, data)
    if node is not None:
        _index_lines(node, (), doc.lines)
    return doc


def load_yaml(path: Path) -> YamlDoc:
    """Read and parse a YAML file; a missing file is a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from exc
    return parse_yaml(text, str(path))


def field_path(loc: Sequence[str | int]) -> str:
    """people[0].phone from ('people', 0, 'phone')."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(document)"


def validation_problems(doc: YamlDoc, exc: ValidationError, prefix: PathKey = ()) -> list[str]:
    """One 'file:line: field: message' line per pydantic error."""
    problems = []
    errors = exc.errors()
    failed_items = {tuple(e["loc"][:-1]) for e in errors if e["loc"] and isinstance(e["loc"][-1], int)}
    failed_items |= {
        tuple(e["loc"][:i]) for e in errors for i, p in enumerate(e["loc"]) if isinstance(p, int)
    }
    for error in errors:
        if error["type"] == "too_short" and tuple(error["loc"]) in failed_items:
            continue  # "at least 1 item after validation": the bad item is reported already
        loc = [*prefix, *(part for part in error["loc"] if not _is_union_tag(part))]
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{doc.filename}:{doc.line_of(loc)}: {field_path(loc)}: {message}")
    return problems


def _is_union_tag(part: object) -> bool:
    # pydantic puts the union member's type name into loc (e.g. "function-after[...]"); it is no field.
    return isinstance(part, str) and ("[" in part or part.endswith("-tagged"))


def validate_doc(doc: YamlDoc, model: type[M]) -> M:
    """Validate a parsed document against a model; errors carry file, line and field."""
    try:
        return model.model_validate(doc.data if doc.data is not None else {})
    except ValidationError as exc:
        raise ConfigError(validation_problems(doc, exc)) from exc
