import csv
import io
import subprocess
import sys

import pytest
from ase.db import connect

from airss_msc.composition import format_formula


def test_generate_relax_rank_pipeline(tmp_path, run_cli):
    out = tmp_path / "x.extxyz"
    code, stdout, err = run_cli("generate", "X9", "-n", "4", "-o", out, "--seed", "2", "--minsep", "X-X=0.9-1.0")
    assert code == 0, err
    db = tmp_path / "r.db"
    code, stdout, err = run_cli("relax", out, "--db", db, "--method", "lj", "--fmax", "0.01")
    assert code == 0, err
    assert len(list(connect(db).select())) == 4
    code, stdout, err = run_cli("rank", db, "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(stdout)))
    assert rows[0].keys() >= {
        "rank",
        "id",
        "formula",
        "energy_eV",
        "delta_meV_per_atom",
        "gap_eV",
        "wavelength_nm",
        "status",
    }
    energies = [float(r["energy_eV"]) for r in rows]
    assert energies == sorted(energies) and len(rows) >= 1
    code, stdout, err = run_cli("rank", db, "--top", "1")
    assert code == 0 and stdout.count("X9") == 1


def test_generated_frames_carry_seed_and_parameters(tmp_path, run_cli):
    from airss_msc.results.formats import read_structures

    out = tmp_path / "c.extxyz"
    assert run_cli("generate", "Cd4Se4", "-n", "3", "-o", out, "--radius", "5")[0] == 0
    frames = read_structures(out)
    assert len(frames) == 3
    for f in frames:
        assert {"seed", "minsep", "shape", "symmetry"} <= set(f.info)
        assert f.info["shape"] == "sphere r=5"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["generate", "Cd4Se4x", "-n", "2", "-o", "{tmp}/a.xyz"], "malformed formula"),
        (["generate", "Cd4Qq4", "-n", "2", "-o", "{tmp}/a.xyz"], "unknown element"),
        (["generate", "Cd4Se4", "-n", "-3", "-o", "{tmp}/a.xyz"], "negative"),
        (
            ["generate", "Cd13Se13", "-n", "2", "-o", "{tmp}/a.xyz", "--minsep", "Cd-Se=7", "--radius", "4"],
            "impossible",
        ),
        (["relax", "{tmp}/missing.xyz", "--db", "{tmp}/r.db"], "not found|does not exist|no such file"),
        (["search", "{tmp}/missing.toml"], "not found"),
        (["rank", "{tmp}/missing.db"], "not found"),
        (["relax", "{tmp}/bad.xyz", "--db", "{tmp}/r.db"], "bad.xyz"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, run_cli, args, match):
    import re

    (tmp_path / "bad.xyz").write_text("3\n\nCd 0 0 zero\n")
    code, _stdout, err = run_cli(*[a.format(tmp=tmp_path) for a in args])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("airss-msc: error:"), err
    assert re.search(match, lines[0]), lines[0]
    assert "Traceback" not in err


def test_failed_command_keeps_stored_results(tmp_path, run_cli):
    src = tmp_path / "x.extxyz"
    db = tmp_path / "r.db"
    run_cli("generate", "X5", "-n", "2", "-o", src)
    assert run_cli("relax", src, "--db", db, "--method", "lj")[0] == 0
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[search]\ncompositions = ["X5"]\ndb = "{db}"\n[relax]\nmethod = "nonsense"\n')
    code, _, err = run_cli("search", bad)
    assert code == 2 and "unknown method" in err
    assert len(list(connect(db).select())) == 2


def test_console_script_runs_as_a_process(tmp_path):
    # the installed entry point, as a user runs it: no traceback on bad input
    proc = subprocess.run(
        [sys.executable, "-m", "airss_msc.cli", "generate", "Cd4Xx4", "-n", "1", "-o", str(tmp_path / "a.xyz")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == "airss-msc: error: unknown element 'Xx' in formula 'Cd4Xx4'"


def test_compositions_command(run_cli):
    code, out, _ = run_cli("compositions", "cdtese", "--atoms", "9-16")
    formulas = out.split()
    assert code == 0 and "Cd7TeSe3" in formulas and "Cd6Te2Se3" in formulas
    code, out, _ = run_cli("compositions", "cdtese", "--atoms", "9-16", "--charge-balanced")
    assert code == 0 and "Cd7TeSe3" not in out.split() and "Cd6Te2Se4" in out.split()
    code, out, _ = run_cli("compositions", "zncdse13")
    assert code == 0
    assert out.split() == [format_formula({"Zn": x, "Cd": 13 - x, "Se": 13}) for x in range(14)]
    code, out, err = run_cli("compositions", "cdtese", "--atoms", "11-11", "--charge-balanced")
    assert code == 0 and out == "" and "no cdtese formulas with 11-11 atoms" in err
    assert run_cli("compositions", "gaas")[0] == 2


def test_convert_round_trip_through_res(tmp_path, run_cli):
    from airss_msc.results.formats import read_structures

    src = tmp_path / "a.extxyz"
    run_cli("generate", "Cd4Se4", "-n", "3", "-o", src)
    assert run_cli("convert", src, tmp_path / "a.res")[0] == 0
    assert run_cli("convert", tmp_path / "a.res", tmp_path / "b.extxyz")[0] == 0
    a, b = read_structures(src), read_structures(tmp_path / "b.extxyz")
    assert [x.info["seed"] for x in a] == [x.info["seed"] for x in b]
    for x, y in zip(a, b, strict=True):
        assert x.get_chemical_symbols() == y.get_chemical_symbols()
        shift = x.positions.mean(0) - y.positions.mean(0)
        assert abs(x.positions - y.positions - shift).max() < 1e-4


def test_isotopes_output_is_assigned_back_to_its_formula(tmp_path, run_cli):
    code, out, _ = run_cli("isotopes", "Cd6Te2Se3")
    assert code == 0
    peaks = tmp_path / "p.csv"
    peaks.write_text("\n".join(line for line in out.splitlines() if not line.startswith("#")))
    code, out, err = run_cli("assign", peaks, "--elements", "Cd,Te,Se", "--atoms", "9-16")
    assert code == 0, err
    best = out.splitlines()[1].split(",")
    assert best[0] == "Cd6Te2Se3" and float(best[1]) > 0.9


def test_generate_from_template_substitutes_exactly(tmp_path, run_cli):
    import itertools

    import numpy as np
    from ase import Atoms

    from airss_msc.results.formats import read_structures, write_structures

    pos = [np.array(p) * 2.9 for p in itertools.product((-0.5, 0.5), repeat=3)]
    syms = ["Cd" if (i + j + k) % 2 == 0 else "Se" for i, j, k in itertools.product((0, 1), repeat=3)]
    write_structures(tmp_path / "parent.xyz", [Atoms(syms, positions=pos)])
    code, _out, err = run_cli(
        "generate",
        "-o",
        tmp_path / "sub.extxyz",
        "--template",
        tmp_path / "parent.xyz",
        "--substitute",
        "Cd:Zn=1",
        "--substitute",
        "Se:Te=1",
    )
    assert code == 0, err
    frames = read_structures(tmp_path / "sub.extxyz")
    # Td cube: 1 way for the Zn; then the Te is next to the Zn or not... 2 distinct, multiplicities 3 and 1
    assert len(frames) == 2
    assert sorted(f.info["multiplicity"] for f in frames) == [4, 12]
    for f in frames:
        assert f.get_chemical_formula(mode="hill") == "Cd3Se3TeZn"
    code, _, err = run_cli(
        "generate", "Cd4Se4", "-o", tmp_path / "x.xyz", "--template", tmp_path / "parent.xyz", "--substitute", "Se:Te=1"
    )
    assert code == 2 and "not Cd4Se4" in err


@pytest.mark.slow
def test_rescore_then_rank_by_the_single_points(tmp_path, run_cli):
    from airss_msc.calc.engines import make_calculator

    src, db = tmp_path / "c.extxyz", tmp_path / "r.db"
    assert run_cli("generate", "Cd2Se2", "-n", "2", "-o", src, "--seed", "4")[0] == 0
    assert run_cli("relax", src, "--db", db, "--steps", "300", "--method", "GFN1-xTB")[0] == 0
    code, out, err = run_cli("rescore", db, "--method", "GFN2-xTB")
    assert code == 0 and "stored as e_tblite_gfn2_xtb" in out, err
    rows = list(connect(db).select(status="relaxed"))
    assert rows and all("e_tblite_gfn2_xtb" in r.key_value_pairs for r in rows)
    atoms = rows[0].toatoms()
    atoms.calc = make_calculator("GFN2-xTB")
    assert rows[0].e_tblite_gfn2_xtb == pytest.approx(atoms.get_potential_energy(), abs=1e-6)
    code, out, _ = run_cli("rank", db, "--energy", "GFN2-xTB", "--format", "csv")
    ranked = list(csv.DictReader(io.StringIO(out)))
    assert float(ranked[0]["energy_eV"]) == pytest.approx(min(r.e_tblite_gfn2_xtb for r in rows), abs=1e-4)
    # the geometry engine's own energy is stored beside it; a method never run is refused
    assert run_cli("rank", db, "--energy", "GFN1-xTB")[0] == 0
    code, _, err = run_cli("rank", db, "--energy", "xtb:GFN-FF")
    assert code == 2 and "no stored xtb:GFN-FF energies" in err
    # a rerun skips the rows already scored
    code, out, err = run_cli("rescore", db, "--method", "GFN2-xTB")
    assert code == 0 and "0 single point(s)" in out and "2 already done" in err


def test_usage_error_through_the_installed_command_is_one_line():
    """typer 0.29 vendors click and stopped installing it: the error path must not import click."""
    import shutil
    from pathlib import Path

    exe = shutil.which("airss-msc", path=str(Path(sys.executable).parent))
    assert exe, "the airss-msc console script is not installed beside this Python"
    # "Cd-Cd=3.0" without its own --minsep is an unexpected extra argument
    proc = subprocess.run(
        [exe, "generate", "Cd4Se4", "-n", "2", "-o", "x.extxyz", "--minsep", "Cd-Se=2.5", "Cd-Cd=3.0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("airss-msc: error:") and "Cd-Cd=3.0" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    proc = subprocess.run([exe, "rank"], capture_output=True, text=True, timeout=120)  # missing argument
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "Missing argument" in proc.stderr


# ------------------------------------------------------------ export to AIRSS .res


def _lj_db(tmp_path, run_cli):
    """A small Lennard-Jones search, plus one unfinished row."""
    import numpy as np

    from airss_msc.results.record import Result
    from airss_msc.results.store import ResultsDB

    db = tmp_path / "r.db"
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[search]\ncompositions = ["X7", "X8"]\ncandidates = 4\nseed = 3\ndb = "{db}"\n'
        '[relax]\nmethod = "lj"\nfmax = 0.01\nsteps = 500\n'
    )
    code, _, err = run_cli("search", cfg)
    assert code == 0, err
    with ResultsDB(db, write=True) as store:
        store.add(
            Result(
                symbols=("X",) * 7,
                positions=np.random.default_rng(1).normal(size=(7, 3)) * 1.5,
                status="max_steps",
                method="lj",
                energy=-12.0,
                provenance={"formula": "X7", "seed": 99},
            )
        )
    return db


def _rank_csv(run_cli, *args, drop=("id",)):
    code, out, err = run_cli("rank", *map(str, args), "--format", "csv")
    assert code == 0, err
    return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(io.StringIO(out))]


def test_export_writes_relaxed_rows_that_rank_as_the_database(tmp_path, run_cli):
    from airss_msc.results.formats import read_structures

    db = _lj_db(tmp_path, run_cli)
    out = tmp_path / "out"
    code, stdout, err = run_cli("export", db, out)
    assert code == 0, err
    assert "exported 8 structure(s)" in stdout and "1 row(s) not relaxed left out" in stdout
    files = sorted(out.glob("*.res"))
    assert len(files) == 8 and all(len(p.stem) <= 20 for p in files)
    assert {p.stem for p in files} == {f"X{7 + (k - 1) // 4}-r{k}" for k in range(1, 9)}
    rows = {r.id: r for r in connect(db).select()}
    for path in files:
        (atoms,) = read_structures(path)
        row = rows[atoms.info["row"]]
        assert atoms.info["seed"] == row.seed and atoms.info["status"] == "relaxed"
        assert atoms.info["method"] == "lj" and atoms.info["energy"] == row.energy
    # airss-msc rank of the files is airss-msc rank of the database (but for the id column)
    assert _rank_csv(run_cli, *files) == _rank_csv(run_cli, db)
    # --all adds the unfinished row, with no energy where cryan would rank it
    code, stdout, err = run_cli("export", db, tmp_path / "all", "--all")
    assert code == 0 and "exported 9 structure(s)" in stdout, err
    unfinished = (tmp_path / "all" / "X7-r9.res").read_text().splitlines()
    assert unfinished[0].split()[4] == "n/a" and "REM status=max_steps" in unfinished
    assert _rank_csv(run_cli, *sorted((tmp_path / "all").glob("*.res")), "--all") == _rank_csv(run_cli, db, "--all")


def test_export_by_another_methods_energy(tmp_path, run_cli):
    from airss_msc.results.formats import read_structures
    from airss_msc.results.store import ResultsDB

    db = _lj_db(tmp_path, run_cli)
    with ResultsDB(db, write=True) as store:  # stored single points, as 'rescore' leaves them
        for row in list(connect(db).select(status="relaxed"))[:5]:
            store.set_single_point(row.id, "tblite:GFN2-xTB", -100.0 - row.id, gap=2.0 + row.id / 10)
    code, stdout, err = run_cli("export", db, tmp_path / "out", "--energy", "gfn2")
    assert code == 0 and "exported 5 structure(s)" in stdout, err
    assert "3 row(s) without a tblite:GFN2-xTB energy left out" in stdout
    for path in (tmp_path / "out").glob("*.res"):
        (atoms,) = read_structures(path)
        assert atoms.info["energy"] == -100.0 - atoms.info["row"]
        assert atoms.info["method"] == "tblite:GFN2-xTB" and atoms.info["geometry_method"] == "lj"
        assert atoms.info["gap_eV"] == pytest.approx(2.0 + atoms.info["row"] / 10)
    files = sorted((tmp_path / "out").glob("*.res"))
    assert _rank_csv(run_cli, *files, drop=("id", "other_ranks")) == _rank_csv(
        run_cli, db, "--energy", "GFN2-xTB", drop=("id", "other_ranks")
    )


def test_relaxing_an_export_again_keeps_none_of_the_old_result(tmp_path, run_cli):
    from airss_msc.results.store import ResultsDB

    db = _lj_db(tmp_path, run_cli)
    with ResultsDB(db, write=True) as store:
        row = next(iter(connect(db).select(status="relaxed")))
        store.set_single_point(row.id, "tblite:GFN2-xTB", -100.0, gap=2.0)
    assert run_cli("export", db, tmp_path / "out", "--energy", "gfn2")[0] == 0
    (exported,) = (tmp_path / "out").glob("*.res")
    again = tmp_path / "again.db"
    code, _, err = run_cli("relax", exported, "--db", again, "--method", "lj")
    assert code == 0, err
    (res,) = ResultsDB(again).records()
    assert res.method == "lj" and res.energy == pytest.approx(row.energy, abs=1e-3)
    assert not {"geometry_method", "geometry_energy"} & set(res.provenance)
    assert res.provenance["source"] == f"{exported.name}:1" and res.provenance["row"] == row.id


def test_convert_database_writes_the_export_into_one_file(tmp_path, run_cli):
    from airss_msc.results.formats import read_structures

    db = _lj_db(tmp_path, run_cli)
    code, stdout, err = run_cli("convert", db, tmp_path / "all.res")
    assert code == 0 and "converted 8 structure(s)" in stdout, err
    assert run_cli("export", db, tmp_path / "out")[0] == 0
    together = (tmp_path / "all.res").read_text()
    assert together == "".join(
        p.read_text() for p in sorted((tmp_path / "out").glob("*.res"), key=lambda p: int(p.stem.split("-r")[1]))
    )
    assert len(read_structures(tmp_path / "all.res")) == 8
    code, stdout, err = run_cli("convert", db, tmp_path / "all.extxyz")
    assert code == 0 and read_structures(tmp_path / "all.extxyz")[0].info["name"] == "X7-r1"


def test_export_errors_are_one_line(tmp_path, run_cli):
    code, _, err = run_cli("export", tmp_path / "missing.db", tmp_path / "out")
    assert code == 2 and "no such database" in err and len(err.strip().splitlines()) == 1
    db = _lj_db(tmp_path, run_cli)
    code, _, err = run_cli("export", db, tmp_path / "out", "--energy", "pyscf")
    assert code == 2 and "nothing to export" in err and "without a pyscf:PBE/def2-SVP energy" in err
    code, _, err = run_cli("export", db, tmp_path / "out", "--energy", "nonsense")
    assert code == 2 and "unknown" in err
    code, _, err = run_cli("convert", db, tmp_path / "out.pdb")
    assert code == 2 and "unknown structure file extension" in err


def test_an_empty_composition_family_says_so(run_cli):
    code, out, err = run_cli("compositions", "cdtese", "--atoms", "11-11", "--charge-balanced")
    assert code == 0 and out == "" and "no cdtese formulas with 11-11 atoms that are charge balanced" in err


def test_methods_columns_line_up(run_cli):
    code, out, _ = run_cli("methods")
    lines = out.splitlines()
    assert code == 0 and len(lines) > 5
    column = lines[0].index("installed")
    assert all(line[column - 2 : column] == "  " and line[column] != " " for line in lines)
