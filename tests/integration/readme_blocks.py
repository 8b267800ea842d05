"""README.md's fenced code blocks, in order: what the README-commands test runs and `.ci/run` reads.

Run as a script, it prints the one command of the ```bash block that follows the paragraph starting with
the given words (``python tests/integration/readme_blocks.py "Run the whole test suite"``). It runs
before any dependency is installed, so it uses the standard library only.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, its text, and the last prose line above it."""

    language: str
    source: str
    lead: str

    def commands(self) -> list[str]:
        """The block's non-empty lines, each one shell command (README keeps them one per line)."""
        return [line.strip() for line in self.source.splitlines() if line.strip()]


def code_blocks(text: str) -> list[Block]:
    blocks: list[Block] = []
    language, lines, lead = None, [], ""
    for line in text.splitlines():
        fence = FENCE.match(line)
        if language is None and fence:
            language, lines = fence.group(1), []
        elif language is not None and line.strip() == "```":
            blocks.append(Block(language, "\n".join(lines) + "\n", lead))
            language = None
        elif language is not None:
            lines.append(line)
        elif line.strip():
            lead = line.strip()
    return blocks


def setup_command(lead: str, text: str | None = None) -> str:
    """The one command of the bash block introduced by the prose line starting with ``lead``."""
    found = [b for b in code_blocks(text or README.read_text()) if b.language == "bash" and b.lead.startswith(lead)]
    if len(found) != 1 or len(found[0].commands()) != 1:
        raise SystemExit(f"README.md must have exactly one one-line ```bash block after {lead!r}")
    return found[0].commands()[0]


if __name__ == "__main__":
    print(setup_command(sys.argv[1]))
