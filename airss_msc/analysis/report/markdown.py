"""Markdown renderer of report sections (figures as relative links beside the file)."""

from __future__ import annotations

from airss_msc.analysis.report.document import Bullets, Code, Image, Section, Structure, Table, Text


def _table(t: Table) -> str:
    lines = ["| " + " | ".join(t.head) + " |", "|" + "---|" * len(t.head)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in t.body]
    return "\n".join(lines)


def _block(block) -> str:
    if isinstance(block, Text):
        return block.text
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Image):
        return f"![{block.alt}]({block.path.name})"
    if isinstance(block, Structure):
        return (
            f"### {block.title}\n\n![{block.title}]({block.png.name})\n\n"
            f"Coordinates: [{block.xyz.name}]({block.xyz.name})"
        )
    if isinstance(block, Code):
        return f"```\n{block.text}\n```"
    raise TypeError(f"no Markdown for {type(block).__name__}")


def render(sections: list[Section]) -> str:
    parts = []
    for section in sections:
        parts.append("#" * section.level + " " + section.title)
        parts.extend(_block(b) for b in section.blocks)
    return "\n\n".join(parts) + "\n"
