"""The Python examples of the README and the docs/ pages, cut out so that tests run them as written."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def python_block(page: str, after: str) -> str:
    """The first ```python block of ``page`` (a path from the repository root) that follows the text ``after``."""
    text = (ROOT / page).read_text()
    return re.search(rf"{re.escape(after)}.*?```python\n(.*?)```", text, re.S).group(1)
