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
    from airss_msc.build.confinement import parse_axes
    from airss_msc.build.generate import GeneratorSettings

    return GeneratorSettings(
        minsep=tuple(minsep) if minsep else None, slack=slack, shape=shape, radius=radius,
        axes=parse_axes(axes) if axes else None, inner=inner, symmetry=symmetry,
    )


@app.command()
def generate(
    formula: Optional[str] = typer.Argument(None, help="Composition, e.g. Cd6Te2Se4 or X13 (Lennard-Jones); "
                                            "optional with --template."),
    n: Optional[int] = typer.Option(None, "-n", "--number", help="How many structures (default 1; with "
                                    "--template: all distinct arrangements, or 100 when sampled)."),
    output: Path = typer.Option(..., "-o", "--output", help="Output file (.extxyz, .xyz or .res)."),
    seed: int = typer.Option(1, "--seed", help="Base seed; structure i gets a seed derived from it."),
    minsep: Optional[List[str]] = typer.Option(None, "--minsep", help="A-B=D or A-B=LO-HI (Angstrom); repeatable."),
    slack: float = typer.Option(1.0, "--slack", help="Factor on all minimum separations."),
    shape: str = typer.Option("sphere", "--shape", help="sphere | ellipsoid | shell."),
    radius: Optional[float] = typer.Option(None, "--radius", help="Sphere/shell outer radius, Angstrom (default from composition)."),
    axes: Optional[str] = typer.Option(None, "--axes", help="Ellipsoid semi-axes A,B,C in Angstrom."),
    inner: Optional[float] = typer.Option(None, "--inner", help="Shell inner radius, Angstrom."),
    symmetry: Optional[str] = typer.Option(None, "--symmetry", help="Point group (C2v, Td, Ih, ...) or 'random'."),
    template: Optional[Path] = typer.Option(None, "--template", help="Parent cluster to substitute into."),
    substitute: Optional[List[str]] = typer.Option(None, "--substitute", help="OLD:NEW=N or OLD:NEW=FRACTION; repeatable."),
) -> None:
    """Write random clusters, or the distinct substitutions of a template cluster.

    Each frame stores its seed and generation parameters.
    """
    from airss_msc.results.formats import write_structures

    if n is not None and n < 0:
        raise InputError(f"negative count {n}: -n must be >= 0")
    if template is not None or substitute:
        images, mode = _from_template(formula, template, substitute, n, seed)
        write_structures(output, images)
        typer.echo(f"wrote {len(images)} {mode} arrangement(s) of {images[0].info['formula'] if images else '?'} "
                   f"from {template} to {output}")
        return
    if formula is None:
        raise InputError("give a FORMULA (or --template with --substitute)")
    from airss_msc.build.generate import generate_many, prepare

    settings = _generator_settings(minsep, slack, shape, radius, axes, inner, symmetry)
    prepare(formula, settings)
    images = generate_many(formula, 1 if n is None else n, seed, settings)
    write_structures(output, images)
    typer.echo(f"wrote {len(images)} structure(s) of {images[0].info['formula'] if images else formula} to {output}")


def _from_template(formula, template, substitute, n, seed):
    from airss_msc.composition import canonical_formula
    from airss_msc.results.formats import read_structures
    from airss_msc.build.substitute import parse_substitution, substituted_structures

    if template is None or not substitute:
        raise InputError("--template and --substitute go together")
    parents = read_structures(template)
    if len(parents) != 1:
        raise InputError(f"template {template} holds {len(parents)} structures; give a file with one")
    parent = parents[0]
    parent.info.setdefault("name", template.stem)
    images, mode = substituted_structures(parent, [parse_substitution(s) for s in substitute], seed=seed,
                                          max_count=n)
    if formula and images and canonical_formula(formula) != images[0].info["formula"]:
        raise InputError(f"substituting {template} gives {images[0].info['formula']}, not {canonical_formula(formula)}")
    typer.echo(f"{len(images)} symmetry-distinct arrangement(s), {mode}", err=True)
    return images, mode


def _relax_settings(method, fmax, steps, optimizer, max_seconds):
    from airss_msc.calc.relax import RelaxSettings

    return RelaxSettings(method=method, fmax=fmax, steps=steps, optimizer=optimizer,
                         max_seconds=max_seconds).validate()


@app.command()
def relax(
    input_file: Path = typer.Argument(..., help="Structures to relax (.extxyz, .xyz, .res)."),
    db: Path = typer.Option(..., "--db", help="Results database (ASE SQLite); rows are appended."),
    method: str = typer.Option("GFN1-xTB", "--method", help="GFN1-xTB | GFN2-xTB | xtb:GFN-FF | lj ..."),
    fmax: float = typer.Option(0.05, "--fmax", help="Force convergence, eV/Angstrom."),
    steps: int = typer.Option(500, "--steps", help="Optimizer step limit per structure."),
    optimizer: str = typer.Option("PreconLBFGS", "--optimizer", help="PreconLBFGS | BFGS | LBFGS | LBFGSLineSearch | FIRE."),
    max_seconds: Optional[float] = typer.Option(None, "--max-seconds", help="Wall-time limit per structure, s."),
    threads: Optional[int] = typer.Option(None, "--threads", help="OpenMP threads (default 1, or SLURM_CPUS_PER_TASK)."),
) -> None:
    """Relax every structure of a file; one database row per structure."""
    from airss_msc.results.formats import read_structures
    from airss_msc.calc.relax import relax_structure
    from airss_msc.search.farm import set_threads
    from airss_msc.results.store import ResultsDB

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

    from airss_msc.search.config import default_config, default_config_text, load_config

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
    from airss_msc.search.parallel import task_executor
    from airss_msc.search.farm import run_search, set_threads

    # Every rank, before any engine library is loaded.
    set_threads(cfg.threads)
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
    no_merge: bool = typer.Option(False, "--no-merge", help="List duplicates separately."),
    exclude_anion_bonded: bool = typer.Option(False, "--exclude-anion-bonded",
                                              help="Rank only structures without Se-Se/Te-Te/S-S bonds."),
    energy_tol: float = typer.Option(1e-3, "--energy-tol", help="Duplicate energy window, eV/atom."),
    rmsd_tol: float = typer.Option(0.1, "--rmsd-tol", help="Duplicate RMSD after species-aware alignment, Angstrom."),
    energy: Optional[str] = typer.Option(None, "--energy", help="Rank by single points of this method "
                                         "(stored by 'airss-msc rescore'), e.g. GFN2-xTB."),
) -> None:
    """Rank stored structures per composition, lowest energy first."""
    from airss_msc.analysis.rank import energy_key, format_rows, load_records, rank_records, with_energy

    if top is not None and top < 1:
        raise InputError(f"--top must be >= 1, got {top}")
    if energy_tol < 0 or rmsd_tol < 0:
        raise InputError("--energy-tol and --rmsd-tol must be >= 0")
    records = load_records(sources)
    if energy:
        records = with_energy(records, energy_key(energy))
        if not records:
            raise InputError(f"no stored {energy} single points: run 'airss-msc rescore DB --method {energy}' first")
    rows = rank_records(records, include_all=all_rows, top=top, merge=not no_merge,
                        energy_tol=energy_tol, rmsd_tol=rmsd_tol, exclude_anion_bonded=exclude_anion_bonded)
    typer.echo(format_rows(rows, fmt))


@app.command()
def rescore(
    db: Path = typer.Argument(..., help="Results database."),
    method: str = typer.Option("GFN2-xTB", "--method", help="Single-point method (GFN2-xTB, xtb:GFN-FF, ...)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="OpenMP threads."),
) -> None:
    """Single-point energies of every relaxed structure with another method, stored as e_<method>.

    GFN1-xTB geometries are sane but its energies favour anion-anion bonded
    structures; GFN2-xTB single points are the recommended cross-check
    (BENCHMARKS.md). Rows already rescored with the method are skipped.
    """
    from airss_msc.calc.engines import SCFError, make_calculator
    from airss_msc.analysis.rank import energy_key
    from airss_msc.search.farm import set_threads
    from airss_msc.results.store import ResultsDB

    key = energy_key(method)
    set_threads(threads)
    done = failed = 0
    with ResultsDB(db, write=True) as store:
        for rec in store.records(status="relaxed"):
            if key in rec.key_value_pairs:
                continue
            atoms = rec.atoms.copy()
            atoms.calc = make_calculator(method)
            try:
                store.set_values(rec.id, **{key: float(atoms.get_potential_energy())})
                done += 1
            except SCFError as exc:
                failed += 1
                typer.echo(f"row {rec.id}: {exc}", err=True)
    typer.echo(f"{done} single point(s) with {method} stored as {key} in {db}; {failed} failed")


@app.command()
def report(
    db: Path = typer.Argument(..., help="Results database."),
    output: Path = typer.Option(Path("report"), "-o", "--output", help="Output directory."),
    top: int = typer.Option(5, "--top", help="Structures per composition shown in detail."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", help="Gap-to-band calibration (TOML)."),
    bands: Optional[Path] = typer.Option(None, "--bands", help="Measured bands (TOML; default: packaged)."),
    temperature: float = typer.Option(298.15, "--temperature", help="K, for Boltzmann populations."),
) -> None:
    """Write an HTML page and a Markdown twin with tables and plots."""
    from airss_msc.analysis.report import write_report

    path = write_report(str(db), output, top=top, calibration=str(calibration) if calibration else None,
                        bands=str(bands) if bands else None, temperature=temperature)
    typer.echo(f"report written to {path}")


@app.command()
def demo(
    output: Path = typer.Option(Path("demo-output"), "-o", "--output", help="Directory for the database and report."),
) -> None:
    """The embedded default search end to end: search, rank, report."""
    from airss_msc.search.config import default_config
    from airss_msc.analysis.rank import format_rows, load_records, rank_records
    from airss_msc.analysis.report import write_report

    output.mkdir(parents=True, exist_ok=True)
    cfg = default_config(str(output / "results.db"))
    outcome = _run_search(cfg)
    rows = rank_records(load_records([cfg.db]), include_all=True)
    typer.echo(format_rows(rows, "table"))
    path = write_report(cfg.db, output / "report")
    typer.echo(f"\nreport: {path}")
    if outcome.interrupted:
        raise typer.Exit(3)


@app.command()
def compositions(
    family: str = typer.Argument(..., help="cdtese | zncdse13"),
    atoms: str = typer.Option("9-16", "--atoms", help="Atom count range N-M (cdtese)."),
    charge_balanced: bool = typer.Option(False, "--charge-balanced", help="Only Cd2+/Te2-/Se2- balanced formulas."),
    binaries: bool = typer.Option(False, "--binaries", help="Include the CdTe/CdSe end members (cdtese)."),
) -> None:
    """List the formulas of a composition family, one per line."""
    from airss_msc.composition import cdtese_family, parse_range, zncdse13_family

    name = family.lower()
    if name == "cdtese":
        formulas = cdtese_family(parse_range(atoms, "atom range"), charge_balanced, binaries)
    elif name == "zncdse13":
        formulas = zncdse13_family()
    else:
        raise InputError(f"unknown family {family!r}: choose cdtese or zncdse13")
    for f in formulas:
        typer.echo(f)


@app.command()
def convert(
    source: Path = typer.Argument(..., help="Input structures (.xyz, .extxyz, .res)."),
    destination: Path = typer.Argument(..., help="Output file; format from the extension."),
) -> None:
    """Convert structure files between xyz, extxyz and AIRSS .res."""
    from airss_msc.results.formats import convert as convert_files

    count = convert_files(source, destination)
    typer.echo(f"converted {count} structure(s) to {destination}")


@app.command()
def isotopes(
    formula: str = typer.Argument(..., help="e.g. Cd7TeSe3"),
    charge: int = typer.Option(1, "--charge", help="Charge state z (m/z = mass/|z|)."),
    exact: bool = typer.Option(False, "--exact", help="Exact isotopic fine structure instead of nominal-mass peaks."),
    min_abundance: float = typer.Option(1e-3, "--min-abundance", help="Drop peaks below this fraction of the tallest."),
) -> None:
    """Isotopic pattern of a bare cluster ion (m/z and relative intensity, tallest = 100)."""
    from airss_msc.analysis.isotopes import isotope_pattern, monoisotopic_mass, most_abundant_mass

    peaks = isotope_pattern(formula, charge=charge, mode="exact" if exact else "nominal",
                            min_abundance=min_abundance)
    typer.echo(f"# {formula} charge {charge:+d}: lightest-isotope mass {monoisotopic_mass(formula):.3f} Da, "
               f"most abundant {most_abundant_mass(formula):.3f} Da")
    typer.echo("mz,intensity")  # readable back by `airss-msc assign`
    for mz, rel in peaks:
        typer.echo(f"{mz:.4f},{rel:.3f}")


@app.command()
def assign(
    peaks_csv: Path = typer.Argument(..., help="Measured peaks: CSV with columns mz,intensity."),
    elements: str = typer.Option("Cd,Te,Se", "--elements", help="Elements of the candidate formulas."),
    atoms: str = typer.Option("9-16", "--atoms", help="Atom count range N-M."),
    charge: int = typer.Option(1, "--charge", help="Charge state."),
    tolerance: float = typer.Option(0.25, "--tolerance", help="m/z window for matching a predicted peak."),
    top: int = typer.Option(10, "--top", help="Species to list."),
) -> None:
    """Propose formulas for measured ESI-MS peaks by isotope-pattern match, with scores."""
    from airss_msc.composition import parse_range
    from airss_msc.analysis.isotopes import match_species, read_peaks_csv

    measured = read_peaks_csv(peaks_csv)
    els = tuple(e.strip() for e in elements.split(",") if e.strip())
    from ase.data import atomic_numbers

    for el in els:
        if el not in atomic_numbers:
            raise InputError(f"unknown element {el!r} in --elements")
    matches = match_species(measured, els, parse_range(atoms, "atom range"), charge=charge, tolerance=tolerance)
    typer.echo("formula,score,cosine,base_mz,mass_error_ppm,weight,matched_peaks,ambiguous_with")
    for m in matches[:top]:
        typer.echo(f"{m.formula},{m.score:.3f},{m.cosine:.3f},{m.base_mz:.3f},{m.mass_error_ppm:.1f},"
                   f"{m.weight:.4g},{m.n_matched}/{m.n_predicted},{' '.join(m.ambiguous_with)}")


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
