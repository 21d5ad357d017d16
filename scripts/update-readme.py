"""Regenerate the configuration reference in README.md from the config schema (between the markers)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from edge.config.reference import reference_markdown

BEGIN, END = "<!-- config-reference:begin -->", "<!-- config-reference:end -->"


def main() -> int:
    readme = Path(__file__).resolve().parent.parent / "README.md"
    text = readme.read_text(encoding="utf-8")
    block = f"{BEGIN}\n{reference_markdown()}{END}"
    if BEGIN in text:
        text = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.replace("CONFIG_REFERENCE", block)
    readme.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
