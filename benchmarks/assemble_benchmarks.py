#!/usr/bin/env python
"""Write BENCHMARKS.md: the prose of ``benchmarks/narrative.md`` around the tables that the
benchmark scripts wrote to ``benchmarks/out/*.md`` (each table names the commit it ran on).

``narrative.md`` holds sections that start with ``@@<key>``; a section ``<key>_after`` goes
below its tables. A table that no script has written yet is shown as "(not run: ...)".

    python benchmarks/assemble_benchmarks.py
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
TARGET = HERE.parent / "BENCHMARKS.md"
#: narrative key -> the table files of that section, in page order
SECTIONS = [("quick", ["quick.md"]), ("generator", ["generator_speed.md"]), ("parallel", ["parallel_scaling.md"]),
            ("protocol", ["default_protocol.md"]), ("energy", ["energy_validation.md"]),
            ("lj", ["search_efficiency.md"]), ("landscape", ["search_landscape.md"]),
            ("landscape_chgnet", ["search_landscape_chgnet_judged.md"]), ("tda", ["tda_timing.md"])]


def table_file(name: str) -> str:
    path = OUT / name
    return path.read_text().strip() if path.exists() else f"(not run: benchmarks/out/{name} missing)"


def demote(text: str, levels: int = 2) -> str:
    """Push a script's headings below the page's section headings."""
    return "\n".join("#" * levels + line if line.startswith("#") else line for line in text.splitlines())


def narrative(path: Path) -> dict[str, str]:
    sections = {}
    for chunk in path.read_text().split("\n@@")[1:]:
        key, _, body = chunk.partition("\n")
        sections[key.strip()] = body.strip()
    return sections


def assemble(prose: dict[str, str]) -> str:
    doc = [prose["header"], ""]
    for key, files in SECTIONS:
        doc += [prose[key], ""]
        for name in files:
            doc += [demote(table_file(name)), ""]
        if key + "_after" in prose:
            doc += [prose[key + "_after"], ""]
    return "\n".join(doc).rstrip() + "\n"


def main() -> None:
    TARGET.write_text(assemble(narrative(HERE / "narrative.md")))
    print(f"{TARGET} written")


if __name__ == "__main__":
    main()
