"""Write BENCHMARKS.md: the prose of ``benchmarks/narrative.md`` around the tables that the
benchmark scripts wrote to ``benchmarks/out/*.md`` (each table names the commit it ran on).

``narrative.md`` holds sections that start with ``@@<key>``; a section ``<key>_after`` goes
below its tables. ``out/`` is not committed (the scripts' runs and logs live there), so a table
missing from it is taken from the BENCHMARKS.md being replaced, where the prose around it still
matches; one that neither has is shown as "(not run: ...)". A fresh checkout thus reassembles
BENCHMARKS.md unchanged, and a rerun benchmark replaces only its own table.

    python -m benchmarks.assemble_benchmarks
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.paths import BENCHMARKS_MD as TARGET
from benchmarks.paths import NARRATIVE, OUT

#: narrative key -> the table files of that section, in page order
SECTIONS = [
    ("quick", ["quick.md"]),
    ("generator", ["generator_speed.md"]),
    ("parallel", ["parallel_scaling.md"]),
    ("protocol", ["default_protocol.md"]),
    ("relaxcost", ["relax_cost.md"]),
    ("batched", ["batched_relax.md"]),
    ("capping", ["capping.md"]),
    ("capped_excitations", ["capped_excitations.md"]),
    ("energy", ["energy_validation.md"]),
    ("fitted", ["fitted_correction.md"]),
    ("lj", ["search_efficiency.md"]),
    ("lj38", ["search_efficiency_lj38.md"]),
    ("landscape", ["search_landscape.md"]),
    ("landscape_chgnet", ["search_landscape_chgnet_judged.md"]),
    ("tda", ["tda_timing.md"]),
    ("excitation", ["excitation_validation.md"]),
]


def table_file(name: str, previous: dict[str, str] | None = None) -> str:
    path = OUT / name
    if path.exists():
        return path.read_text().strip()
    if previous and name in previous:
        return previous[name]
    return f"(not run: benchmarks/out/{name} missing)"


def demote(text: str, levels: int = 2) -> str:
    """Push a script's headings below the page's section headings."""
    return "\n".join("#" * levels + line if line.startswith("#") else line for line in text.splitlines())


def narrative(path: Path) -> dict[str, str]:
    sections = {}
    for chunk in path.read_text().split("\n@@")[1:]:
        key, _, body = chunk.partition("\n")
        sections[key.strip()] = body.strip()
    return sections


def promote(text: str, levels: int = 2) -> str:
    """Undo :func:`demote`."""
    cut = "#" * levels
    return "\n".join(line[levels:] if line.startswith(cut + "#") else line for line in text.splitlines())


def previous_tables(page: str, prose: dict[str, str]) -> dict[str, str]:
    """The tables of an assembled page, by file name, found between the prose that frames them.

    Only sections with one table can be cut apart this way; a section whose prose changed since
    the page was written is left out (its table must then come from ``out/``)."""
    found: dict[str, str] = {}
    for i, (key, files) in enumerate(SECTIONS):
        if len(files) != 1:
            continue
        start = page.find(prose[key] + "\n")
        if start < 0:
            continue
        start += len(prose[key])
        # the table ends where the next prose the page has begins (a section added since is not there)
        later = [prose[key + "_after"]] if key + "_after" in prose else []
        later += [prose[k] for k, _ in SECTIONS[i + 1 :]] + [
            prose[k + "_after"] for k, _ in SECTIONS[i + 1 :] if k + "_after" in prose
        ]
        ends = [e for e in (page.find(text, start) for text in later) if e >= 0]
        # and never past the page's next section heading: the scripts' headings are demoted below
        # "## ", so a section whose prose changed cannot swallow the sections after it
        heading = page.find("\n## ", start)
        if heading >= 0:
            ends.append(heading + 1)
        end = min(ends) if ends else len(page)
        text = page[start:end].strip()
        if text and not text.startswith("(not run:"):
            found[files[0]] = promote(text)
    return found


def assemble(prose: dict[str, str], previous: dict[str, str] | None = None) -> str:
    doc = [prose["header"], ""]
    for key, files in SECTIONS:
        doc += [prose[key], ""]
        for name in files:
            doc += [demote(table_file(name, previous)), ""]
        if key + "_after" in prose:
            doc += [prose[key + "_after"], ""]
    return "\n".join(doc).rstrip() + "\n"


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    prose = narrative(NARRATIVE)
    previous = previous_tables(TARGET.read_text(), prose) if TARGET.exists() else {}
    TARGET.write_text(assemble(prose, previous))
    print(f"{TARGET} written")


if __name__ == "__main__":
    main()
