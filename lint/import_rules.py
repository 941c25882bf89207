"""Contracts of our own for import-linter (`lint-imports`, so `make lint` runs them):

- private_names: the packages named import nothing private (a name with a leading underscore) of each
  other. A helper two packages need is public, and lives where both may use it.
- app_keys: an aiohttp `web.AppKey` is made only in the keys modules named, so that one file lists
  all that an app holds.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import cast

from grimp import ImportGraph
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


class PrivateNamesContract(Contract):
    packages = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        found: list[str] = []
        packages = [str(p) for p in cast(list[str], self.packages)]
        for package in packages:
            for importer in sorted(graph.find_descendants(package) | {package}):
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    other = next((p for p in packages if _within(imported, p)), None)
                    if other is None or other == package:
                        continue
                    for detail in graph.get_import_details(importer=importer, imported=imported):
                        for name in _private_names(importer, int(detail["line_number"])):
                            found.append(f"{importer}:{detail['line_number']} imports {imported}.{name}")
        return ContractCheck(kept=not found, metadata={"found": found})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for line in check.metadata["found"]:
            output.print_error(line)
            output.new_line()


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _private_names(importer: str, line_number: int) -> list[str]:
    """The private names the `from ... import ...` statement at that line of `importer` takes (the
    whole statement, however many lines it spans)."""
    tree = _tree(importer)
    if tree is None:
        return []
    return [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.lineno == line_number
        for alias in node.names
        if alias.name.startswith("_")
    ]


class AppKeysContract(Contract):
    """No module of the root package but `homes` makes an aiohttp AppKey."""

    homes = fields.ListField(subfield=fields.StringField())

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        homes = {str(h) for h in cast(list[str], self.homes)}
        # Only a module that imports aiohttp can make a key (external packages are one node each).
        users = graph.find_modules_that_directly_import("aiohttp") - homes
        found = [
            f"{module}:{line} makes an AppKey: make it in {' or '.join(sorted(homes))}"
            for module in sorted(users)
            for line in _app_keys(module)
        ]
        return ContractCheck(kept=not found, metadata={"found": found})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for line in check.metadata["found"]:
            output.print_error(line)
            output.new_line()


def _app_keys(module: str) -> list[int]:
    """The lines of `module` that call `AppKey(...)` or `web.AppKey(...)` (subscripted or not)."""
    tree = _tree(module)
    lines = []
    for node in ast.walk(tree) if tree is not None else ():
        if not isinstance(node, ast.Call):
            continue
        func = node.func.value if isinstance(node.func, ast.Subscript) else node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        if name == "AppKey":
            lines.append(node.lineno)
    return lines


def _tree(module: str) -> ast.Module | None:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return ast.parse(Path(spec.origin).read_text())
