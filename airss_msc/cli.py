"""The ``airss-msc`` command: one subcommand per stage.

Errors in the user's input end with one line on stderr and exit code 2, never
a traceback: every stage raises :class:`airss_msc.errors.InputError` for them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from airss_msc import __version__
from airss_msc.errors import DatabaseBusyError, InputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="AIRSS-style structure search for alloy magic-size clusters (CdTeSe, ZnCdSe) with xTB.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"airss-msc {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """Stages: generate -> relax -> rank -> report; search = generate + relax, resumable."""


def _generator_settings(minsep, slack, shape, radius, axes, inner, symmetry):
    from airss_msc.confinement import parse_axes
    from airss_msc.generate import GeneratorSettings

    return GeneratorSettings(
        minsep=tuple(minsep) if minsep else None, slack=slack, shape=shape, radius=radius,
        axes=parse_axes(axes) if axes else None, inner=inner, symmetry=symmetry,
    )


@app.command()
def generate(
    formula: str = typer.Argument(..., help="Composition, e.g. Cd6Te2Se4 or X13 (Lennard-Jones)."),
    n: int = typer.Option(1, "-n", "--number", help="How many structures."),
    output: Path = typer.Option(..., "-o", "--output", help="Output file (.extxyz, .xyz or .res)."),
    seed: int = typer.Option(1, "--seed", help="Base seed; structure i gets a seed derived from it."),
    minsep: Optional[List[str]] = typer.Option(None, "--minsep", help="A-B=D or A-B=LO-HI (Angstrom); repeatable."),
    slack: float = typer.Option(1.0, "--slack", help="Factor on all minimum separations."),
    shape: str = typer.Option("sphere", "--shape", help="sphere | ellipsoid | shell."),
    radius: Optional[float] = typer.Option(None, "--radius", help="Sphere/shell outer radius, Angstrom (default from composition)."),
    axes: Optional[str] = typer.Option(None, "--axes", help="Ellipsoid semi-axes A,B,C in Angstrom."),
    inner: Optional[float] = typer.Option(None, "--inner", help="Shell inner radius, Angstrom."),
    symmetry: Optional[str] = typer.Option(None, "--symmetry", help="Point group (C2v, Td, Ih, ...) or 'random'."),
) -> None:
    """Write N random clusters; each frame stores its seed and generation parameters."""
    from airss_msc.formats import write_structures
    from airss_msc.generate import generate_many, prepare

    settings = _generator_settings(minsep, slack, shape, radius, axes, inner, symmetry)
    if n < 0:
        raise InputError(f"negative count {n}: -n must be >= 0")
    prepare(formula, settings)
    images = generate_many(formula, n, seed, settings)
    write_structures(output, images)
    typer.echo(f"wrote {len(images)} structure(s) of {images[0].info['formula'] if images else formula} to {output}")


def _relax_settings(method, fmax, steps, optimizer, max_seconds):
    from airss_msc.relax import RelaxSettings

    return RelaxSettings(method=method, fmax=fmax, steps=steps, optimizer=optimizer,
                         max_seconds=max_seconds).validate()


@app.command()
def relax(
    input_file: Path = typer.Argument(..., help="Structures to relax (.extxyz, .xyz, .res)."),
    db: Path = typer.Option(..., "--db", help="Results database (ASE SQLite); rows are appended."),
    method: str = typer.Option("GFN1-xTB", "--method", help="GFN1-xTB | GFN2-xTB | xtb:GFN-FF | lj ..."),
    fmax: float = typer.Option(0.05, "--fmax", help="Force convergence, eV/Angstrom."),
    steps: int = typer.Option(500, "--steps", help="Optimizer step limit per structure."),
    optimizer: str = typer.Option("LBFGS", "--optimizer", help="LBFGS | BFGS | FIRE."),
    max_seconds: Optional[float] = typer.Option(None, "--max-seconds", help="Wall-time limit per structure, s."),
    threads: Optional[int] = typer.Option(None, "--threads", help="OpenMP threads (default 1, or SLURM_CPUS_PER_TASK)."),
) -> None:
    """Relax every structure of a file; one database row per structure."""
    from airss_msc.formats import read_structures
    from airss_msc.relax import relax_structure
    from airss_msc.search import set_threads
    from airss_msc.store import ResultsDB

    settings = _relax_settings(method, fmax, steps, optimizer, max_seconds)
    images = read_structures(input_file)
    set_threads(threads)
    with ResultsDB(db, write=True) as store:
        for k, atoms in enumerate(images, 1):
            atoms.info.setdefault("source", f"{input_file.name}:{k}")
            summary = relax_structure(atoms, settings)
            row = store.add(summary)
            energy = summary["energy"]
            typer.echo(f"[{k}/{len(images)}] {atoms.get_chemical_formula()} -> row {row}: {summary['status']}"
                       + (f"  E={energy:.4f} eV" if energy is not None else "")
                       + (f"  ({summary['message']})" if summary["message"] else ""), err=True)
    typer.echo(f"relaxed {len(images)} structure(s) into {db}")


@app.command()
def search(
    config: Optional[Path] = typer.Argument(None, help="Search config (TOML). Omit with --default."),
    default: bool = typer.Option(False, "--default", help="Run the embedded default (demo) search."),
    db: Optional[str] = typer.Option(None, "--db", help="Override the database named in the config."),
    show_config: bool = typer.Option(False, "--show-default-config", help="Print the embedded default config and exit."),
    serial: bool = typer.Option(False, "--serial", help="Run in this process even under an MPI launcher."),
) -> None:
    """Generate and relax candidates as the config says; rerunning resumes.

    Under 'mpiexec -n N' rank 0 coordinates and N-1 ranks relax. Exit code 3
    means the search stopped early (walltime or signal); rerun it to resume.
    """
    from dataclasses import replace

    from airss_msc.config import default_config, default_config_text, load_config

    if show_config:
        typer.echo(default_config_text())
        return
    if config is None and not default:
        raise InputError("give a CONFIG.toml or --default")
    cfg = default_config(db) if config is None else load_config(config)
    if db and config is not None:
        cfg = replace(cfg, db=db)
    if _run_search(cfg, serial).interrupted:
        raise typer.Exit(3)


def _run_search(cfg, serial: bool = False):
    """Run a search serially or, under an MPI launcher, as a task farm.

    Returns the outcome on the coordinator; worker ranks exit when done.
    """
    from airss_msc.parallel import task_executor, threads_per_rank
    from airss_msc.search import run_search, set_threads

    # Every rank, before any engine library is loaded.
    set_threads(threads_per_rank(cfg.threads))
    with task_executor(force_serial=serial) as (executor, workers, coordinator):
        if not coordinator:
            raise typer.Exit(0)
        return run_search(cfg, executor=executor, workers=max(workers, 1))


@app.command()
def rank(
    sources: List[str] = typer.Argument(..., help="Databases and/or structure files with energies."),
    top: Optional[int] = typer.Option(None, "--top", help="Best N per composition."),
    fmt: str = typer.Option("table", "--format", help="table | csv | json."),
    all_rows: bool = typer.Option(False, "--all", help="Also list rows that are not 'relaxed'."),
) -> None:
    """Rank stored structures per composition, lowest energy first."""
    from airss_msc.rank import format_rows, load_records, rank_records

    if top is not None and top < 1:
        raise InputError(f"--top must be >= 1, got {top}")
    rows = rank_records(load_records(sources), include_all=all_rows, top=top)
    typer.echo(format_rows(rows, fmt))


@app.command()
def report(
    db: Path = typer.Argument(..., help="Results database."),
    output: Path = typer.Option(Path("report"), "-o", "--output", help="Output directory."),
    top: int = typer.Option(5, "--top", help="Structures per composition shown in detail."),
) -> None:
    """Write an HTML page and a Markdown twin with tables and plots."""
    from airss_msc.report import write_report

    path = write_report(str(db), output, top=top)
    typer.echo(f"report written to {path}")


@app.command()
def demo(
    output: Path = typer.Option(Path("demo-output"), "-o", "--output", help="Directory for the database and report."),
) -> None:
    """The embedded default search end to end: search, rank, report."""
    from airss_msc.config import default_config
    from airss_msc.rank import format_rows, load_records, rank_records
    from airss_msc.report import write_report

    output.mkdir(parents=True, exist_ok=True)
    cfg = default_config(str(output / "results.db"))
    outcome = _run_search(cfg)
    rows = rank_records(load_records([cfg.db]), include_all=True)
    typer.echo(format_rows(rows, "table"))
    path = write_report(cfg.db, output / "report")
    typer.echo(f"\nreport: {path}")
    if outcome.interrupted:
        raise typer.Exit(3)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning input errors into one line and exit 2."""
    try:
        # Without standalone mode click returns an Exit's code instead of exiting.
        code = app(args=argv, prog_name="airss-msc", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except (InputError, DatabaseBusyError) as exc:
        print(f"airss-msc: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("airss-msc: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # click usage errors and the like
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(2)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
