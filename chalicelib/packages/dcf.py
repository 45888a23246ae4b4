"""R's DESCRIPTION / PACKAGES format (Debian control): ``Field: value`` plus indented
continuation lines, paragraphs separated by blank lines.

Hand-written: the format is a few lines of logic, and python-debian, the library that
covers it, is GPL and would add Debian tooling to the Lambda bundle.
"""

from __future__ import annotations


def parse_dcf(text: str) -> dict[str, str]:
    """The fields of one paragraph (a DESCRIPTION file); continuation lines joined."""
    fields: dict[str, str] = {}
    key: str | None = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and key is not None:
            fields[key] += " " + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            key = key.strip()
            fields[key] = value.strip()
    return fields


def parse_paragraphs(text: str) -> list[dict[str, str]]:
    """Every paragraph of a file such as PACKAGES."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        if line.strip():
            current.append(line)
        elif current:
            paragraphs.append("\n".join(current))
            current = []
    if current:
        paragraphs.append("\n".join(current))
    return [parse_dcf(p) for p in paragraphs]
