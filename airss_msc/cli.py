"""The ``airss-msc`` command: a thin shell over the library, one subcommand per stage.

Errors in the user's input end with one line on stderr and exit code 2, never
a traceback: every stage raises :class:`airss_msc.errors.InputError` for them,
and usage errors from the command-line parser are turned into the same line.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import typer
from ase.data import atomic_numbers

from airss_msc import __version__
from airss_msc.analysis.isotopes import isotope_pattern, monoisotopic_mass, most_abundant_mass
from airss_msc.analysis.peaks import match_species, read_peaks_csv
from airss_msc.analysis.rank import format_rows, load_results, rank_results, ranking_energy, ranking_note
from airss_msc.analysis.reactions import parse_reaction, reaction_energy, substitution_steps
from airss_msc.analysis.report import write_report
from airss_msc.calc.engines import ENGINES, Method, parse_method
from airss_msc.calc.excite import check_excitation_method
from airss_msc.calc.relax import RelaxSettings
from airss_msc.calc.threads import set_threads
from airss_msc.composition import FAMILIES, canonical_formula, cdtese_family, parse_range, zncdse13_family
from airss_msc.errors import DatabaseBusyError, InputError
from airss_msc.generation.confinement import parse_axes
from airss_msc.generation.generate import GeneratorSettings, generate_many, prepare
from airss_msc.generation.ligands import LIGANDS
from airss_msc.generation.substitute import parse_substitution, substituted_structures
from airss_msc.results.formats import (
    convert as convert_files,
)
from airss_msc.results.formats import (
    export_database,
    read_structures,
    write_structures,
)
from airss_msc.results.record import method_key
from airss_msc.search.candidates import run_search
from airss_msc.search.config import default_config, default_config_text, load_config
from airss_msc.search.distributed import check_executor
from airss_msc.search.farm import StopFlag, stop_on_signals
from airss_msc.search.files import relax_file
from airss_msc.search.parallel import task_executor
from airss_msc.search.rows import EXIT_FAILED, run_rows
from airss_msc.search.study import (
    Study,
    defaults_document,
    load_study,
    resolved_document,
    run_study,
    step_defaults,
)
from airss_msc.settings import cli_option

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="AIRSS-style structure search for alloy magic-size clusters (CdTeSe, ZnCdSe).",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"airss-msc {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Stages: generate -> relax -> rank -> report; search = generate + relax, resumable;
    rescore/refine add other methods' energies to stored structures."""


@app.command()
def generate(
    formula: str | None = typer.Argument(
        None, help="Composition, e.g. Cd6Te2Se4 or X13 (Lennard-Jones); optional with --template."
    ),
    n: int | None = typer.Option(
        None,
        "-n",
        "--number",
        help="How many structures (default 1; with --template: all distinct arrangements, or 100 when sampled).",
    ),
    output: Path = typer.Option(..., "-o", "--output", help="Output file (.extxyz, .xyz or .res)."),
    seed: int = typer.Option(1, "--seed", help="Base seed; structure i gets a seed derived from it."),
    minsep: list[str] | None = typer.Option(None, "--minsep", help="A-B=D or A-B=LO-HI (Angstrom); repeatable."),
    slack: float = cli_option(GeneratorSettings, "slack", "--slack"),
    shape: str = cli_option(GeneratorSettings, "shape", "--shape"),
    radius: float | None = cli_option(GeneratorSettings, "radius", "--radius"),
    axes: str | None = cli_option(GeneratorSettings, "axes", "--axes", help="ellipsoid semi-axes A,B,C"),
    inner: float | None = cli_option(GeneratorSettings, "inner", "--inner"),
    symmetry: str | None = cli_option(GeneratorSettings, "symmetry", "--symmetry"),
    max_attempts: int = cli_option(GeneratorSettings, "max_attempts", "--max-attempts"),
    template: Path | None = typer.Option(None, "--template", help="Parent cluster to substitute into."),
    substitute: list[str] | None = typer.Option(
        None, "--substitute", help="OLD:NEW=N or OLD:NEW=FRACTION; repeatable."
    ),
) -> None:
    """Write random clusters, or the distinct substitutions of a template cluster.

    Each frame stores its seed and generation parameters.
    """
    if n is not None and n < 0:
        raise InputError(f"negative count {n}: -n must be >= 0")
    if template is not None or substitute:
        images, mode = _from_template(formula, template, substitute, n, seed)
        write_structures(output, images)
        typer.echo(
            f"wrote {len(images)} {mode} arrangement(s) of {images[0].info['formula'] if images else '?'} "
            f"from {template} to {output}"
        )
        return
    if formula is None:
        raise InputError("give a FORMULA (or --template with --substitute)")
    settings = GeneratorSettings(
        minsep=tuple(minsep) if minsep else None,
        slack=slack,
        shape=shape,
        radius=radius,
        axes=parse_axes(axes) if axes else None,
        inner=inner,
        symmetry=symmetry,
        max_attempts=max_attempts,
    )
    _, rules, _ = prepare(formula, settings)
    for pair in rules.ignored:
        typer.echo(f"warning: --minsep {pair} ignored: {canonical_formula(formula)} has no such pair", err=True)
    images = generate_many(formula, 1 if n is None else n, seed, settings)
    write_structures(output, images)
    typer.echo(f"wrote {len(images)} structure(s) of {images[0].info['formula'] if images else formula} to {output}")


def _from_template(formula, template, substitute, n, seed):
    if template is None or not substitute:
        raise InputError("--template and --substitute go together")
    parents = read_structures(template)
    if len(parents) != 1:
        raise InputError(f"template {template} holds {len(parents)} structures; give a file with one")
    parent = parents[0]
    parent.info.setdefault("name", template.stem)
    found = substituted_structures(parent, [parse_substitution(s) for s in substitute], seed=seed, max_count=n)
    images, mode = found.structures, found.mode
    if formula and images and canonical_formula(formula) != images[0].info["formula"]:
        raise InputError(f"substituting {template} gives {images[0].info['formula']}, not {canonical_formula(formula)}")
    typer.echo(f"{len(images)} symmetry-distinct arrangement(s), {mode}", err=True)
    return images, mode


_METHOD_HELP = (
    "Engine method: chgnet | sevennet | GFN1-xTB | GFN2-xTB | pyscf:PBE/def2-SVP | lj ... ('airss-msc methods')"
)

# What each row command runs when no option is given: the same objects a study's steps start from.
_REFINE, _RESCORE, _SPECTRUM, _CAP = (step_defaults(kind) for kind in ("refine", "rescore", "spectrum", "cap"))


@app.command()
def relax(
    input_file: Path = typer.Argument(..., help="Structures to relax (.extxyz, .xyz, .res)."),
    db: Path = typer.Option(..., "--db", help="Results database (ASE SQLite); rows are appended."),
    method: str = cli_option(RelaxSettings, "method", "--method"),
    fmax: float = cli_option(RelaxSettings, "fmax", "--fmax"),
    steps: int = cli_option(RelaxSettings, "steps", "--steps"),
    optimizer: str = cli_option(RelaxSettings, "optimizer", "--optimizer"),
    max_seconds: float | None = cli_option(RelaxSettings, "max_seconds", "--max-seconds"),
    score: list[str] | None = typer.Option(
        None, "--score", help="Also store single points of this method on each relaxed structure; repeatable."
    ),
    threads: int | None = typer.Option(
        None, "--threads", help="Threads per process (default 1, or SLURM_CPUS_PER_TASK)."
    ),
    serial: bool = typer.Option(False, "--serial", help="Run in this process even under an MPI launcher."),
) -> None:
    """Relax every structure of a file; one database row per structure.

    A rerun skips the structures already stored with the same method (exit code 3: stopped
    early by a signal; rerun to resume).
    """
    settings = RelaxSettings(
        method=method,
        fmax=fmax,
        steps=steps,
        optimizer=optimizer,
        max_seconds=max_seconds,
        single_points=tuple(score or ()),
    ).validate()
    settings.check_engines()
    outcome = _farmed(
        lambda executor, workers: relax_file(
            input_file, db, settings, log=lambda line: typer.echo(line, err=True), executor=executor, workers=workers
        ),
        threads,
        serial,
    )
    typer.echo(f"relaxed {outcome.done} structure(s) into {db} ({outcome.skipped} already there)")
    if outcome.interrupted:
        typer.echo(
            f"stopped early ({outcome.reason}): rerun the same command to relax the remaining {outcome.remaining}",
            err=True,
        )
        raise typer.Exit(3)


@app.command()
def search(
    config: Path | None = typer.Argument(None, help="Search config (TOML). Omit with --default."),
    default: bool = typer.Option(False, "--default", help="Run the embedded default (demo) search."),
    db: str | None = typer.Option(None, "--db", help="Override the database named in the config."),
    show_config: bool = typer.Option(
        False, "--show-default-config", help="Print the embedded default config and exit."
    ),
    serial: bool = typer.Option(False, "--serial", help="Run in this process even under an MPI launcher."),
    executor: str | None = typer.Option(
        None,
        "--executor",
        help="Where relaxations run (overrides \\[search] "
        "executor): 'mpi' (default), 'dask' (a local Dask cluster) or "
        "'dask://HOST:PORT' (a running Dask scheduler).",
    ),
) -> None:
    """Generate and relax candidates as the config says; rerunning resumes.

    Under 'mpiexec -n N' rank 0 coordinates and N-1 ranks relax; with a Dask executor this
    process coordinates the Dask workers. Exit code 3 means the search stopped early
    (walltime or signal); rerun it to resume.
    """
    if show_config:
        typer.echo(default_config_text())
        return
    if config is None and not default:
        raise InputError("give a CONFIG.toml or --default")
    cfg = default_config(db) if config is None else load_config(config)
    if db and config is not None:
        cfg = replace(cfg, db=db)
    if executor is not None:
        cfg = replace(cfg, executor=check_executor(executor))
    if _farmed(
        lambda pool, workers: run_search(cfg, executor=pool, workers=workers), cfg.threads, serial, cfg.executor
    ).interrupted:
        raise typer.Exit(3)


def _farmed(job, threads: int | None, serial: bool = False, executor_name: str | None = None):
    """Run ``job(executor, workers)`` serially, under an MPI launcher as a task farm, or on the
    Dask cluster ``executor_name`` names.

    Returns the job's outcome on the coordinator; worker ranks exit when done.
    Stop handlers go in first, on every rank: a SIGTERM during MPI start-up or the
    job's preparation is kept and stops the job cleanly (its own handlers inherit it).
    """
    with stop_on_signals(StopFlag()):
        n = set_threads(threads)  # every rank, before any engine library is loaded
        with task_executor(force_serial=serial, executor=executor_name, threads=n) as (executor, workers, coordinator):
            if not coordinator:
                raise typer.Exit(0)
            return job(executor, max(workers, 1))


@app.command()
def config(
    path: Path | None = typer.Argument(
        None, help="A search or study config: print it as read, every key filled in. Omit with --defaults."
    ),
    defaults: bool = typer.Option(
        False,
        "--defaults",
        help="Print every config key with its default, unit and "
        "meaning (TOML; the same defaults as the commands' options).",
    ),
    markdown: bool = typer.Option(False, "--markdown", help="With --defaults: the README's Markdown tables."),
    mode: str | None = typer.Option(None, "--mode", help="Apply the config's \\[mode.NAME] overrides first."),
) -> None:
    """Show what a config means: every key, its default and its unit."""
    if defaults == (path is not None):
        raise InputError("give a CONFIG.toml or --defaults")
    if defaults:
        typer.echo(defaults_document(markdown=markdown), nl=False)
        return
    assert path is not None  # the check above: a path without --defaults
    typer.echo(resolved_document(load_study(path, mode)), nl=False)


@app.command()
def rank(
    sources: list[str] = typer.Argument(..., help="Databases and/or structure files with energies."),
    top: int | None = typer.Option(None, "--top", help="Best N per composition."),
    fmt: str = typer.Option("table", "--format", help="table | csv | json."),
    all_rows: bool = typer.Option(False, "--all", help="Also list rows that are not 'relaxed'."),
    no_merge: bool = typer.Option(False, "--no-merge", help="List duplicates separately."),
    exclude_anion_bonded: bool = typer.Option(
        False, "--exclude-anion-bonded", help="Rank only structures without Se-Se/Te-Te/S-S bonds."
    ),
    energy_tol: float = typer.Option(
        1e-3,
        "--energy-tol",
        help="Duplicate energy window, eV/atom, on the relaxing engine's energy (rows of one engine).",
    ),
    rmsd_tol: float = typer.Option(0.1, "--rmsd-tol", help="Duplicate RMSD after species-aware alignment, Angstrom."),
    energy: str | None = typer.Option(
        None,
        "--energy",
        help="Rank by this method's stored energies "
        "(from 'rescore'/'refine'), e.g. GFN2-xTB or pyscf:PBE/def2-SVP; 'own' for each row's "
        "own method. Default: a reference (DFT) energy refined to the measured depth in every composition, "
        "else the search's rank_energy.",
    ),
) -> None:
    """Rank stored structures per composition, lowest energy first.

    'other_ranks' shows each minimum's rank by every other stored method; '*'
    marks rows whose order the methods disagree on. Exit code 1: nothing to rank
    (no relaxed structure; one line on stderr says what is stored), as grep does
    for no match, so a script's 'rank DB > table.csv && ...' stops there.
    """
    if top is not None and top < 1:
        raise InputError(f"--top must be >= 1, got {top}")
    if energy_tol < 0 or rmsd_tol < 0:
        raise InputError("--energy-tol and --rmsd-tol must be >= 0")
    results = load_results(sources)
    energy = ranking_energy(energy, sources, results)
    if energy and not any(str(parse_method(energy)) in r.energies for r in results):
        raise InputError(f"no stored {energy} energies: run 'airss-msc rescore DB --method {energy}' first")
    rows = rank_results(
        results,
        energy=energy,
        include_all=all_rows,
        top=top,
        merge=not no_merge,
        energy_tol=energy_tol,
        rmsd_tol=rmsd_tol,
        exclude_anion_bonded=exclude_anion_bonded,
    )
    if not rows:
        raise typer.Exit(_nothing_ranked(sources, results, fmt, exclude_anion_bonded))
    # the table is for a person: the note goes above it; csv/json stay machine-readable (note on stderr)
    typer.echo(ranking_note(rows, energy), err=fmt != "table")
    typer.echo(format_rows(rows, fmt))


def _nothing_ranked(sources: list[str], results, fmt: str, exclude_anion_bonded: bool) -> int:
    """Say on stderr that nothing is ranked and what is stored; csv/json still get their empty table."""
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    stored = ", ".join(f"{n} {status}" for status, n in counts.items())
    which = "relaxed structures without anion-anion bonds" if exclude_anion_bonded else "relaxed structures"
    typer.echo(
        f"no {which} in {', '.join(sources)}"
        + (f" ({len(results)} stored: {stored}; 'rank --all' lists them)" if results else " (no rows)"),
        err=True,
    )
    if fmt != "table":
        typer.echo(format_rows([], fmt))
    return 1


@app.command()
def reaction(
    sources: list[str] = typer.Argument(..., help="Databases (and/or structure files) holding every species."),
    equation: list[str] | None = typer.Option(
        None, "--equation", "-e", help="A reaction, e.g. 'Cd13Te13 + CdSe -> Cd13Te12Se + CdTe'; repeatable."
    ),
    parent: str | None = typer.Option(
        None, "--parent", help="Write the stepwise substitution pathway from this parent (with --replace and --unit)."
    ),
    replace_: str | None = typer.Option(
        None, "--replace", help="OLD=NEW: the element each step replaces, e.g. Te=Se, or Zn=Cd for the cation exchange."
    ),
    unit: str | None = typer.Option(
        None,
        "--unit",
        help="The exchanged unit holding NEW (a monomer CdSe or a "
        "fragment Cd2Se2); it leaves with one NEW turned into OLD.",
    ),
    steps: int | None = typer.Option(None, "--steps", help="Steps of the pathway (default: all)."),
    energy: str | None = typer.Option(
        None,
        "--energy",
        help="The one method every species is taken at (default: as 'rank': a reference (DFT) energy refined "
        "to the measured depth in every composition, else the database's ranking energy).",
    ),
) -> None:
    """Reaction energies (eV, products minus reactants), each species at its lowest stored energy.

    One stated method for every species (its measured error is printed); where the reference
    (DFT) energy is stored on every species' row, its reaction energy is shown beside it.
    """
    reactions = [parse_reaction(e) for e in equation or ()]
    if parent or replace_ or unit:
        if not (parent and replace_ and unit) or replace_.count("=") != 1:
            raise InputError("a pathway needs --parent, --replace OLD=NEW and --unit together")
        old, new = (s.strip() for s in replace_.split("="))
        reactions += substitution_steps(parent, old, new, unit, steps)
    if not reactions:
        raise InputError("give --equation 'A + B -> C + D' or a pathway (--parent, --replace, --unit)")
    results = load_results(sources)
    method = ranking_energy(energy, sources, results)
    if method is None:
        raise InputError("these databases store no ranking energy: say which with --energy")
    found = [reaction_energy(r, results, method) for r in reactions]
    reference = next((f.reference for f in found if f.reference), None)
    typer.echo(
        f"dE by {method} (eV, products minus reactants; each species at its lowest stored energy)"
        + (f"; {reference} on the same rows where stored" if reference else "")
    )
    width = max(len(str(f.reaction)) for f in found)
    for f in found:
        ref = f"   {reference}: {f.reference_delta_eV:+.3f}" if f.reference_delta_eV is not None else ""
        typer.echo(f"{f.reaction!s:<{width}}  {f.delta_eV:+8.3f}  {'downhill' if f.downhill else 'uphill  '}{ref}")
    if found[0].error:
        typer.echo(f"measured error of {method}: {found[0].error}")


@app.command()
def rescore(
    db: Path = typer.Argument(..., help="Results database."),
    method: str = cli_option(_RESCORE, "method", "--method", help=_METHOD_HELP),
    threads: int | None = typer.Option(None, "--threads", help="Threads per process."),
    serial: bool = typer.Option(False, "--serial", help="Run in this process even under an MPI launcher."),
) -> None:
    """Single points of every relaxed structure with another method, stored beside its energy.

    Resumable and spread over MPI ranks like 'search'. Rows already scored are skipped.
    Exit code 1: some single point failed (FAILED lines on stderr); 3: stopped early, rerun.
    """
    _rows(db, method, None, None, None, threads, serial, "rescore")


@app.command()
def refine(
    db: Path = typer.Argument(..., help="Results database."),
    top: int = cli_option(_REFINE, "top", "--top", help="lowest unique structures per composition to refine"),
    depth: bool = cli_option(_REFINE, "depth", "--depth/--no-depth"),
    method: str = cli_option(_REFINE, "method", "--method", help=_METHOD_HELP),
    relax_: bool = cli_option(
        _REFINE, "relax", "--relax", help="relax with the method (new rows) instead of single points"
    ),
    fmax: float = cli_option(_REFINE, "fmax", "--fmax", help="force convergence for --relax"),
    steps: int = cli_option(_REFINE, "steps", "--steps", help="step limit for --relax"),
    energy: str | None = cli_option(_REFINE, "energy", "--energy"),
    formula: list[str] | None = typer.Option(None, "--formula", help="Only this composition (repeatable)."),
    threads: int | None = typer.Option(None, "--threads", help="Threads per process."),
    serial: bool = typer.Option(False, "--serial", help="Run in this process even under an MPI launcher."),
) -> None:
    """DFT (or any method) single points or relaxations of the K lowest unique structures per
    composition; resumable, spread over MPI ranks, used by 'rank --energy METHOD'.

    Exit code 1: some structure failed (FAILED lines on stderr); 3: stopped early, rerun."""
    if top < 1:
        raise InputError(f"--top must be >= 1, got {top}")
    settings = RelaxSettings(method=method, fmax=fmax, steps=steps) if relax_ else None
    _rows(db, method, top, energy, settings, threads, serial, "refine", formulas=formula, measured_depth=depth)


@app.command()
def spectrum(
    db: Path = typer.Argument(..., help="Results database."),
    top: int = cli_option(_SPECTRUM, "top", "--top", help="lowest unique structures per composition"),
    method: str = cli_option(_SPECTRUM, "method", "--method", help="excitation method (TDDFT/TDA)"),
    states: int = cli_option(_SPECTRUM, "states", "--states", help="number of excited singlets"),
    energy: str | None = cli_option(_SPECTRUM, "energy", "--energy"),
    rows: str = cli_option(_SPECTRUM, "rows", "--rows"),
    formula: list[str] | None = typer.Option(None, "--formula", help="Only this composition (repeatable)."),
    threads: int | None = typer.Option(None, "--threads", help="Threads per process."),
    serial: bool = typer.Option(False, "--serial", help="Run in this process even under an MPI launcher."),
) -> None:
    """Vertical excitations (energies, oscillator strengths) of the K lowest unique structures per
    composition; resumable, spread over MPI ranks; the report shows the spectra against the bands.

    Exit code 1: some structure failed (FAILED lines on stderr); 3: stopped early, rerun."""
    if top < 1 or states < 1:
        raise InputError("--top and --states must be >= 1")
    check_excitation_method(method)
    _rows(db, method, top, energy, None, threads, serial, "spectrum", nstates=states, rows=rows, formulas=formula)


@app.command()
def cap(
    db: Path = typer.Argument(..., help="Results database."),
    ligand: str = cli_option(_CAP, "ligand", "--ligand", help="model amine: " + " | ".join(LIGANDS)),
    sites: str = cli_option(
        _CAP,
        "sites",
        "--sites",
        help="'auto' (every Cd/Zn with fewer than 4 anion neighbours) or how many, least coordinated first",
    ),
    top: int = cli_option(_CAP, "top", "--top", help="lowest unique bare structures per composition to cap"),
    method: str = cli_option(
        _CAP,
        "method",
        "--method",
        help="engine that relaxes the capped cluster (it must know C, N, H: the ML potentials do)",
    ),
    fmax: float = cli_option(_CAP, "fmax", "--fmax"),
    steps: int = cli_option(_CAP, "steps", "--steps", help="step limit per capped relaxation"),
    energy: str | None = cli_option(_CAP, "energy", "--energy"),
    formula: list[str] | None = typer.Option(None, "--formula", help="Only this composition (repeatable)."),
    threads: int | None = typer.Option(None, "--threads", help="Threads per process."),
    serial: bool = typer.Option(False, "--serial", help="Run in this process even under an MPI launcher."),
) -> None:
    """Put model amine ligands on the under-coordinated surface cations of the best structures,
    relax them and store each capped cluster as a new row linked to its bare parent.

    Exit code 1: some capped cluster did not relax intact, e.g. 'fragmented' (FAILED lines on
    stderr); 3: stopped early, rerun."""
    if top < 1:
        raise InputError(f"--top must be >= 1, got {top}")
    settings = RelaxSettings(method=method, fmax=fmax, steps=steps)
    _rows(db, method, top, energy, settings, threads, serial, "cap", ligand=ligand, sites=sites, formulas=formula)


def _rows(
    db,
    method,
    top,
    energy,
    settings,
    threads,
    serial,
    name,
    nstates: int = 0,
    ligand: str = "",
    sites: str = "auto",
    rows: str = "all",
    formulas=None,
    measured_depth: bool = False,
):
    outcome = _farmed(
        lambda executor, workers: run_rows(
            str(db),
            method,
            top=top,
            measured_depth=measured_depth,
            rank_energy=energy,
            relax=settings,
            nstates=nstates,
            ligand=ligand,
            sites=sites,
            rows=rows,
            formulas=tuple(formulas or ()),
            executor=executor,
            workers=workers,
            log=lambda line: typer.echo(line, err=True),
            name=name,
        ),
        threads,
        serial,
    )
    canonical = parse_method(method)
    if ligand:
        typer.echo(
            f"{outcome.done - outcome.failed} {ligand}-capped relaxation(s) with {canonical} stored in {db}; "
            f"{outcome.failed} failed, {outcome.remaining} remaining"
        )
    elif nstates:
        typer.echo(
            f"{outcome.done - outcome.failed} excitation run(s) with {canonical} stored in {db}; "
            f"{outcome.failed} failed, {outcome.remaining} remaining"
        )
    else:
        what = "relaxation(s)" if settings is not None else "single point(s)"
        typer.echo(
            f"{outcome.done - outcome.failed} {what} with {canonical} stored as e_{method_key(str(canonical))} "
            f"in {db}; {outcome.failed} failed, {outcome.remaining} remaining"
        )
    if outcome.interrupted:
        raise typer.Exit(3)
    if outcome.failures:  # the FAILED lines went to stderr with the log
        raise typer.Exit(EXIT_FAILED)


@app.command()
def study(
    config: Path = typer.Argument(
        ..., help="Study config (TOML): a search plus \\[study] steps, e.g. analysis/msc399/msc399.toml."
    ),
    mode: str | None = typer.Option(
        None,
        "--mode",
        help="Apply the config's \\[mode.NAME] overrides (e.g. reduced for a laptop, full for a cluster).",
    ),
    db: str | None = typer.Option(None, "--db", help="Override the database (the report goes beside it)."),
    threads: int | None = typer.Option(None, "--threads", help="Threads per process (overrides \\[search] threads)."),
    serial: bool = typer.Option(False, "--serial", help="Run in this process even under an MPI launcher."),
) -> None:
    """Search, then the config's steps over the best rows (DFT refinement, spectra, ligand capping),
    then the report; every stage resumes what is stored.

    Exit code 3: stopped early, rerun to resume. Exit code 1: finished (report written), but a
    step failed on some structure (the FAILED lines name it, the step and the status).
    """
    plan = load_study(config, mode, db)
    outcome = _farmed(
        lambda executor, workers: run_study(plan, executor, workers, log=lambda line: typer.echo(line, err=True)),
        threads or plan.search.threads,
        serial,
        plan.search.executor,
    )
    for name, stage in outcome.stages:
        typer.echo(
            f"{name}: {stage.done - stage.failed} done, {stage.failed} failed, {stage.skipped} already "
            f"stored, {stage.remaining} remaining ({stage.wall_seconds:.0f} s)"
        )
    if outcome.report is not None:
        typer.echo(f"report: {outcome.report}")
    for line in outcome.failure_lines():  # again at the end: a long log buries the step's own lines
        typer.echo(line, err=True)
    if outcome.interrupted:
        raise typer.Exit(3)
    if outcome.failures:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def report(
    db: Path = typer.Argument(..., help="Results database."),
    output: Path = typer.Option(Path("report"), "-o", "--output", help="Output directory."),
    top: int = cli_option(Study, "report_top", "--top"),
    energy: str | None = typer.Option(None, "--energy", help="Rank by this method's stored energies."),
    calibration: Path | None = typer.Option(None, "--calibration", help="Gap-to-band calibration (TOML)."),
    bands: Path | None = typer.Option(None, "--bands", help="Measured bands (TOML; default: packaged)."),
    temperature: float = typer.Option(298.15, "--temperature", help="K, for Boltzmann populations."),
) -> None:
    """Write an HTML page and a Markdown twin with tables and plots."""
    path = write_report(
        str(db),
        output,
        top=top,
        energy=energy,
        calibration=str(calibration) if calibration else None,
        bands=str(bands) if bands else None,
        temperature=temperature,
    )
    typer.echo(f"report written to {path}")


@app.command()
def demo(
    output: Path = typer.Option(Path("demo-output"), "-o", "--output", help="Directory for the database and report."),
) -> None:
    """The embedded default search end to end: search, rank, report."""
    output.mkdir(parents=True, exist_ok=True)
    cfg = default_config(str(output / "results.db"))
    outcome = _farmed(lambda executor, workers: run_search(cfg, executor=executor, workers=workers), cfg.threads)
    results = load_results([cfg.db])
    energy = ranking_energy(None, [cfg.db], results)
    rows = rank_results(results, energy=energy, include_all=True)
    typer.echo(ranking_note(rows, energy) + " ('airss-msc rank DB --energy own' ranks each row by its own method)")
    typer.echo(format_rows(rows, "table"))
    path = write_report(cfg.db, output / "report")
    typer.echo(f"\nreport: {path}")
    if outcome.interrupted:
        raise typer.Exit(3)


@app.command()
def methods() -> None:
    """List every engine, its models and what it can do (and whether it is installed)."""
    header = ["method", "installed", "gap", "scf", "relaxes", "excitations", "needs_box", "version"]
    table = []
    for engine in ENGINES.values():
        try:
            engine.check_available()
            installed = "yes"
        except InputError:
            installed = "no"
        for model in engine.models:
            caps = engine.capabilities(model)
            table.append(
                [
                    str(Method(engine.name, model)),
                    installed,
                    _yn(caps.gap),
                    _yn(caps.scf),
                    _yn(caps.gradients),
                    _yn(caps.excitations),
                    _yn(caps.periodic_box),
                    engine.version(),
                ]
            )
    widths = [max(len(row[k]) for row in [header, *table]) for k in range(len(header))]
    for row in [header, *table]:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _yn(flag: bool) -> str:
    return "yes" if flag else "no"


@app.command()
def compositions(
    family: str = typer.Argument(..., help=" | ".join(FAMILIES)),
    atoms: str = typer.Option("9-16", "--atoms", help="Atom count range N-M (cdtese)."),
    charge_balanced: bool = typer.Option(False, "--charge-balanced", help="Only Cd2+/Te2-/Se2- balanced formulas."),
    binaries: bool = typer.Option(False, "--binaries", help="Include the CdTe/CdSe end members (cdtese)."),
) -> None:
    """List the formulas of a composition family, one per line."""
    name = family.lower()
    if name == "cdtese":
        formulas = list(cdtese_family(parse_range(atoms, "atom range"), charge_balanced, binaries))
    elif name == "zncdse13":
        formulas = list(zncdse13_family())
    else:
        raise InputError(f"unknown family {family!r}: choose {' or '.join(FAMILIES)}")
    if not formulas:
        typer.echo(
            f"no {name} formulas with {atoms} atoms"
            + (" that are charge balanced" if charge_balanced else "")
            + (" (end members excluded: --binaries adds them)" if name == "cdtese" and not binaries else ""),
            err=True,
        )
    for f in formulas:
        typer.echo(f)


@app.command()
def convert(
    source: Path = typer.Argument(..., help="Input structures (.xyz, .extxyz, .res)."),
    destination: Path = typer.Argument(..., help="Output file; format from the extension."),
) -> None:
    """Convert structure files between xyz, extxyz and AIRSS .res."""
    count = convert_files(source, destination)
    typer.echo(f"converted {count} structure(s) to {destination}")


@app.command()
def export(
    db: Path = typer.Argument(..., help="Results database."),
    out_dir: Path = typer.Argument(..., help="Directory for the .res files (created if needed)."),
    all_rows: bool = typer.Option(
        False, "--all", help="Also rows that are not 'relaxed' (enthalpy n/a in TITL, any energy in a REM line)."
    ),
    energy: str | None = typer.Option(
        None,
        "--energy",
        help="Write this method's stored energies (from 'rescore'/'refine') instead of each row's own.",
    ),
) -> None:
    """Write relaxed rows as AIRSS .res files, one per row: cat OUT_DIR/*.res | cryan -cl -r.

    Files are named <composition>-r<row id>.res (Cd6Se6-r12.res); seed, status, method
    and gap go in REM lines, and 'airss-msc rank OUT_DIR/*.res' reads them back.
    """
    paths, left_out = export_database(db, out_dir, include_all=all_rows, energy=energy)
    skipped = "; ".join(f"{n} row(s) {reason} left out" for reason, n in left_out.items())
    typer.echo(f"exported {len(paths)} structure(s) to {out_dir}" + (f" ({skipped})" if skipped else ""))


@app.command()
def isotopes(
    formula: str = typer.Argument(..., help="e.g. Cd7TeSe3"),
    charge: int = typer.Option(1, "--charge", help="Charge state z (m/z = mass/|z|)."),
    exact: bool = typer.Option(False, "--exact", help="Exact isotopic fine structure instead of nominal-mass peaks."),
    min_abundance: float = typer.Option(1e-3, "--min-abundance", help="Drop peaks below this fraction of the tallest."),
) -> None:
    """Isotopic pattern of a bare cluster ion (m/z and relative intensity, tallest = 100)."""
    peaks = isotope_pattern(formula, charge=charge, mode="exact" if exact else "nominal", min_abundance=min_abundance)
    typer.echo(
        f"# {formula} charge {charge:+d}: lightest-isotope mass {monoisotopic_mass(formula):.3f} Da, "
        f"most abundant {most_abundant_mass(formula):.3f} Da"
    )
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
    measured = read_peaks_csv(peaks_csv)
    els = tuple(e.strip() for e in elements.split(",") if e.strip())
    for el in els:
        if el not in atomic_numbers:
            raise InputError(f"unknown element {el!r} in --elements")
    matches = match_species(measured, els, parse_range(atoms, "atom range"), charge=charge, tolerance=tolerance)
    typer.echo("formula,score,cosine,base_mz,mass_error_ppm,weight,matched_peaks,ambiguous_with")
    for m in matches[:top]:
        typer.echo(
            f"{m.formula},{m.score:.3f},{m.cosine:.3f},{m.base_mz:.3f},{m.mass_error_ppm:.1f},"
            f"{m.weight:.4g},{m.n_matched}/{m.n_predicted},{' '.join(m.ambiguous_with)}"
        )


def _usage_error(exc: BaseException) -> str | None:
    """The message of a command-line usage error, or None if ``exc`` is not one.

    Duck-typed on purpose: typer up to 0.2x raises click's exceptions, typer 0.29+
    its own vendored copy, and click may not be installed at all.
    """
    formatter = getattr(exc, "format_message", None)
    if callable(formatter) and isinstance(getattr(exc, "exit_code", None), int):
        return str(formatter())
    return None


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; input and usage errors become one line on stderr and exit 2."""
    try:
        # Without standalone mode the parser returns an Exit's code instead of exiting.
        code = app(args=argv, prog_name="airss-msc", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except (InputError, DatabaseBusyError) as exc:
        print(f"airss-msc: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        print("airss-msc: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        message = _usage_error(exc)
        if message is None:
            raise
        command = getattr(getattr(exc, "ctx", None), "command_path", "airss-msc")
        print(f"airss-msc: error: {message} (see '{command} --help')", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
