"""Text from data, made safe to print in Markdown (report.md, model cards) and on plots.

A results file, a dataset or a checkpoint's config is untrusted: a period label, a label name,
a CPU model string or an error message may hold a line break (breaks a table), an HTML comment
(opens or closes a card section), a link or image (fetches from anywhere), or be megabytes long.
`md_text` bounds the length, turns control characters and line breaks into spaces, and escapes
the Markdown that would act (HTML and comments, links, code spans, emphasis stars, backslashes). A table
renderer escapes `|` itself.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

MAX_CHARS = 500  # longest text cell a report or card shows; longer text is cut with "…"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_ESCAPE = str.maketrans({"\\": "\\\\", "`": "\\`", "*": "\\*", "[": "\\[", "]": "\\]",
                         "<": "&lt;"})


def plain_text(value: Any, limit: int = MAX_CHARS) -> str:
    """`value` as one line of at most `limit` characters, control characters as spaces."""
    text = _CONTROL.sub(" ", str(value))
    text = "".join(" " if unicodedata.category(c) in ("Cs", "Co", "Cn") and c not in "\t" else c
                   for c in text) if not text.isascii() else text
    return text if len(text) <= limit else text[: limit - 1] + "…"


def md_text(value: Any, limit: int = MAX_CHARS) -> str:
    """`plain_text`, with the Markdown that would act escaped."""
    return plain_text(value, limit).translate(_ESCAPE)


def md_safe_tree(node: Any, limit: int = MAX_CHARS) -> Any:
    """A copy of a JSON-like tree with every string (keys too) passed through `md_text`."""
    if isinstance(node, str):
        return md_text(node, limit)
    if isinstance(node, dict):
        return {(md_text(k, limit) if isinstance(k, str) else k): md_safe_tree(v, limit) for k, v in node.items()}
    if isinstance(node, list):
        return [md_safe_tree(v, limit) for v in node]
    return node
