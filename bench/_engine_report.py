"""bench/engine_load.py's results as Markdown tables, targets beside them."""

from __future__ import annotations

import json
from typing import Any

from _report import json_safe


def markdown(results: dict[str, Any]) -> str:
    return json.dumps(json_safe(results), indent=2)
