"""Build the API reference (HTML, with pdoc) from the docstrings; any warning is an error.

    python docs/build_api.py [OUTPUT_DIR]     # default docs/api; `make docs` runs this

The reference covers :data:`MODULES`: the package page documents every exported name
(``airss_msc.__all__``) and each subpackage page lists and links its modules. Docstrings
are reStructuredText-flavoured (``code``, :func:`name`); pdoc turns them into Markdown.
``tests/test_api_docs.py`` runs this script, so CI fails on a docstring pdoc cannot render.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

#: The public modules. Subpackages bring their own modules (all of them, or their ``__all__``).
MODULES = (
    "airss_msc",
    "airss_msc.generation",
    "airss_msc.calc",
    "airss_msc.results",
    "airss_msc.search",
    "airss_msc.analysis",
    "airss_msc.composition",
    "airss_msc.errors",
)


def build(output: Path) -> list[Path]:
    """Write the reference into ``output``; returns the HTML pages written."""
    # pdoc blocks subprocesses while it imports modules, with a warning; matplotlib's first
    # import runs fc-list to build its font cache, which is harmless.
    os.environ.setdefault("PDOC_ALLOW_EXEC", "1")
    import pdoc
    import pdoc.render

    import airss_msc

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pdoc.render.configure(docformat="restructuredtext", footer_text=f"airss-msc {airss_msc.__version__}")
        pdoc.pdoc(*MODULES, output_directory=output)
    return sorted(output.rglob("*.html"))


def main(argv: list[str]) -> int:
    output = Path(argv[0] if argv else Path(__file__).parent / "api")
    pages = build(output)
    print(f"{len(pages)} pages in {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
