"""An import-linter contract: the packages named import nothing private (a name with a leading
underscore) of each other. A helper two packages need is public, and lives where both may use it."""

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
    spec = importlib.util.find_spec(importer)
    if spec is None or spec.origin is None:
        return []
    tree = ast.parse(Path(spec.origin).read_text())
    return [
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.lineno == line_number
        for alias in node.names
        if alias.name.startswith("_")
    ]
