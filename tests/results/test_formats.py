"""Tests for airss_msc.results.formats: round trips, AIRSS .res details, errors, atomic writes."""

from __future__ import annotations

import io

import ase.io
import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from airss_msc.errors import InputError
from airss_msc.generation.generate import generate_cluster
from airss_msc.results import formats
from airss_msc.results.formats import (
    convert,
    from_molecule,
    read_structures,
    to_molecule,
    write_res_files,
    write_structures,
)


def centred(atoms) -> np.ndarray:
    return atoms.positions - atoms.positions.mean(axis=0)


@pytest.fixture
def cluster():
    atoms = generate_cluster("Cd4Se4", 7)
    atoms.info.update(energy=-123.456789012, gap_eV=1.25, status="relaxed", method="GFN2-xTB")
    return atoms


@pytest.fixture(autouse=True)
def ase_io_never_parallel(monkeypatch):
    """ASE's read/write must get parallel=False: with mpi4py loaded they would
    otherwise broadcast from rank 0 and hang worker ranks."""
    real_read, real_write = ase.io.read, ase.io.write

    def read(*args, **kwargs):
        assert kwargs.get("parallel") is False
        return real_read(*args, **kwargs)

    def write(*args, **kwargs):
        assert kwargs.get("parallel") is False
        return real_write(*args, **kwargs)

    monkeypatch.setattr(ase.io, "read", read)
    monkeypatch.setattr(ase.io, "write", write)


@pytest.mark.parametrize("ext", ["xyz", "extxyz", "res"])
def test_round_trip_preserves_structure_and_metadata(tmp_path, cluster, ext):
    other = generate_cluster("Cd4Se4", 8)  # no energy at all
    path = tmp_path / f"out.{ext}"
    assert write_structures(path, [cluster, other]) == 2
    back = read_structures(path)
    assert len(back) == 2
    first, second = back
    assert first.get_chemical_symbols() == cluster.get_chemical_symbols()
    assert np.abs(centred(first) - centred(cluster)).max() < 1e-5
    assert not first.pbc.any()
    assert first.info["seed"] == 7 and type(first.info["seed"]) is int  # not np.int64
    assert first.info["energy"] == pytest.approx(-123.456789012, abs=1e-9)
    for key in ("formula", "minsep", "shape", "symmetry", "status", "method"):
        assert first.info[key] == cluster.info[key], key
    assert first.info["gap_eV"] == pytest.approx(1.25)
    # A structure without an energy must not come back with energy 0.
    assert second.info["seed"] == 8 and "energy" not in second.info


@pytest.mark.parametrize("ext", ["extxyz", "res"])
def test_energy_from_calculator_is_written_and_read_as_info(tmp_path, ext):
    atoms = generate_cluster("Cd4Se4", 7)
    atoms.calc = SinglePointCalculator(atoms, energy=-42.5)
    write_structures(tmp_path / f"e.{ext}", atoms)
    (back,) = read_structures(tmp_path / f"e.{ext}")
    assert back.info["energy"] == pytest.approx(-42.5)


def test_res_file_is_airss_shaped_and_box_holds_cluster_with_vacuum(tmp_path, cluster):
    path = tmp_path / "one.res"
    write_structures(path, cluster)
    lines = path.read_text().splitlines()
    titl = lines[0].split()
    assert titl[0] == "TITL" and titl[1] == "Cd4Se4-7"
    assert float(titl[2]) == 0.0 and float(titl[4]) == pytest.approx(-123.456789012)
    assert int(titl[7]) == 8 and titl[8] == "(C1)" and titl[-3:] == ["n", "-", "1"]
    cell = next(line.split() for line in lines if line.startswith("CELL"))
    box = float(cell[2])
    assert cell[2] == cell[3] == cell[4] and [float(a) for a in cell[5:]] == [90.0] * 3
    assert float(titl[3]) == pytest.approx(box**3, rel=1e-6)
    assert "LATT -1" in lines and "SFAC Cd Se" in lines and lines[-1] == "END"
    atom_lines = [line.split() for line in lines if line.split()[0] in ("Cd", "Se")]
    assert len(atom_lines) == 8 and all(t[1] == ("1" if t[0] == "Cd" else "2") for t in atom_lines)
    frac = np.array([[float(v) for v in t[2:5]] for t in atom_lines])
    margin = formats.RES_VACUUM / 2 / box
    assert frac.min() >= margin - 1e-7 and frac.max() <= 1 - margin + 1e-7
    # An independent reader agrees (pymatgen's AIRSS parser).
    from pymatgen.io.res import AirssProvider

    airss = AirssProvider.from_file(str(path))
    assert airss.energy == pytest.approx(-123.456789012) and len(airss.structure) == 8
    from ase.io.res import Res  # and ASE's, for the AIRSS fields of TITL

    assert Res.parse_title(lines[0]) == {
        "name": "Cd4Se4-7",
        "pressure": 0.0,
        "energy": -123.456789012,
        "spacegroup": "C1",
        "times_found": 1,
    }


def test_concatenated_res_reads_all_structures(tmp_path):
    images = [generate_cluster("Cd4Se4", seed) for seed in (1, 2, 3)]
    for i, atoms in enumerate(images):
        atoms.info["energy"] = -10.0 - i
    paths = write_res_files(tmp_path / "res", images)
    assert [p.name for p in paths] == ["Cd4Se4-1.res", "Cd4Se4-2.res", "Cd4Se4-3.res"]
    combined = tmp_path / "all.res"
    combined.write_text("".join(p.read_text() for p in paths))  # cat *.res
    back = read_structures(combined)
    assert [a.info["seed"] for a in back] == [1, 2, 3]
    assert [a.info["name"] for a in back] == ["Cd4Se4-1", "Cd4Se4-2", "Cd4Se4-3"]
    assert [a.info["energy"] for a in back] == pytest.approx([-10.0, -11.0, -12.0])
    for original, read in zip(images, back, strict=True):
        assert np.abs(centred(read) - centred(original)).max() < 1e-5


def test_write_res_files_refuses_duplicate_names(tmp_path):
    a = generate_cluster("Cd4Se4", 1)
    with pytest.raises(InputError, match="Cd4Se4-1"):
        write_res_files(tmp_path, [a, a.copy()])
    assert not list(tmp_path.iterdir())


def test_reads_airss_written_res_with_atom_across_box_face(tmp_path):
    # As CASTEP/AIRSS leave it: a Cd drifted through x=0 and sits at x=0.98.
    text = (
        "TITL CdSe-88231-3071-5 0.00 1000.000000 -3.75000 0.00 0.00 3 (C2v) n - 4\n"
        "REM Run started: 10:00:00\n"
        "CELL 1.54180   10.00000   10.00000   10.00000   90.00000   90.00000   90.00000\n"
        "LATT -1\n"
        "SFAC Cd Se\n"
        "Cd   1  0.980000  0.500000  0.500000 1.0\n"
        "Cd   1  0.220000  0.500000  0.500000 1.0\n"
        "Se   2  0.100000  0.600000  0.500000 1.0\n"
        "END\n"
    )
    path = tmp_path / "airss.res"
    path.write_text(text)
    (atoms,) = read_structures(path)
    assert atoms.info["name"] == "CdSe-88231-3071-5"
    assert atoms.info["energy"] == pytest.approx(-3.75)
    assert atoms.info["symmetry"] == "C2v" and atoms.info["times_found"] == 4
    assert atoms.get_distance(0, 1) == pytest.approx(2.4)  # not 7.6 across the box
    assert np.allclose(atoms.positions.mean(axis=0), 0.0)


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("empty.xyz", "", "empty.xyz"),
        ("empty.res", "\n", "empty.res"),
        ("badnum.xyz", "2\n\nCd 0 0 0\nSe 0 x.5 0\n", "badnum.xyz:4"),
        ("truncated.xyz", "3\n\nCd 0 0 0\nSe 0 0 2.6\n", "truncated.xyz:1"),
        ("count.xyz", "3\n\nCd 0 0 0\nSe 0 0 2.6\n2\n\nCd 0 0 0\nSe 0 0 2.6\n", "count.xyz"),
        ("element.xyz", "2\n\nCd 0 0 0\nQq 0 0 2.6\n", "element.xyz"),
        (
            "truncated.res",
            "TITL a 0 1000 -1 0 0 1 (C1) n - 1\nCELL 1.5 10 10 10 90 90 90\nLATT -1\nSFAC Cd\nCd 1 0.5 0.5 0.5 1.0\n",
            "truncated.res:1",
        ),
        (
            "badnum.res",
            (
                "TITL a 0 1000 -1 0 0 1 (C1) n - 1\nCELL 1.5 10 10 10 90 90 90\n"
                "LATT -1\nSFAC Cd\nCd 1 0.5 0.5 nan? 1.0\nEND\n"
            ),
            "badnum.res:5",
        ),
        (
            "count.res",
            (
                "TITL a 0 1000 -1 0 0 2 (C1) n - 1\nCELL 1.5 10 10 10 90 90 90\n"
                "LATT -1\nSFAC Cd\nCd 1 0.5 0.5 0.5 1.0\nEND\n"
            ),
            "count.res:1",
        ),
        (
            "element.res",
            (
                "TITL a 0 1000 -1 0 0 1 (C1) n - 1\nCELL 1.5 10 10 10 90 90 90\n"
                "LATT -1\nSFAC Cd\nQq 1 0.5 0.5 0.5 1.0\nEND\n"
            ),
            "element.res:5",
        ),
        (
            "titl.res",
            (
                "TITL a 0 1000 -1.x 0 0 1 (C1) n - 1\nCELL 1.5 10 10 10 90 90 90\n"
                "LATT -1\nSFAC Cd\nCd 1 0.5 0.5 0.5 1.0\nEND\n"
            ),
            "titl.res:1",
        ),
        (
            "nocell.res",
            "TITL a 0 1000 -1 0 0 1 (C1) n - 1\nLATT -1\nSFAC Cd\nCd 1 0.5 0.5 0.5 1.0\nEND\n",
            "nocell.res:1",
        ),
    ],
)
def test_corrupt_files_raise_one_line_input_error(tmp_path, name, text, where):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InputError) as err:
        read_structures(path)
    message = str(err.value)
    assert message.startswith(str(tmp_path / where)) and "\n" not in message


def test_missing_file_and_unknown_extension_raise_input_error(tmp_path, cluster):
    with pytest.raises(InputError, match="no such file"):
        read_structures(tmp_path / "missing.xyz")
    (tmp_path / "x.pdb").write_text("ATOM\n")
    with pytest.raises(InputError, match=r"x\.pdb"):
        read_structures(tmp_path / "x.pdb")
    with pytest.raises(InputError, match=r"x\.cif"):
        write_structures(tmp_path / "x.cif", cluster)
    with pytest.raises(InputError, match="no structures"):
        write_structures(tmp_path / "x.xyz", [])


def test_failed_write_keeps_previous_file_and_leaves_no_temp(tmp_path, cluster):
    path = tmp_path / "keep.res"
    write_structures(path, cluster)
    before = path.read_text()
    broken = generate_cluster("Cd4Se4", 9)
    broken.info["energy"] = "not a number"  # fails while rendering the second block
    with pytest.raises(InputError, match="not a number"):
        write_structures(path, [cluster, broken])
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.res"]


def test_rem_values_keep_their_types(tmp_path, cluster):
    cluster.info.update(code="123", flag="true", note=" padded ", tags=["a", "b"], ok=True)
    write_structures(tmp_path / "t.res", cluster)
    (back,) = read_structures(tmp_path / "t.res")
    for key in ("code", "flag", "note", "tags", "ok"):
        assert back.info[key] == cluster.info[key] and type(back.info[key]) is type(cluster.info[key])


def test_pymatgen_molecule_round_trip(cluster):
    mol = to_molecule(cluster)
    assert [site.specie.symbol for site in mol] == cluster.get_chemical_symbols()
    assert np.abs(mol.cart_coords - cluster.positions).max() < 1e-12
    back = from_molecule(mol)
    assert back.get_chemical_symbols() == cluster.get_chemical_symbols()
    assert np.abs(back.positions - cluster.positions).max() < 1e-12
    assert back.info["seed"] == 7 and back.info["energy"] == pytest.approx(-123.456789012)
    assert not back.pbc.any()


def test_convert_extxyz_res_extxyz(tmp_path, cluster):
    src, mid, dst = tmp_path / "a.extxyz", tmp_path / "b.res", tmp_path / "c.extxyz"
    write_structures(src, [cluster, generate_cluster("Cd4Se4", 8)])
    assert convert(src, mid) == 2
    assert convert(mid, dst) == 2
    first = read_structures(dst)[0]
    assert first.get_chemical_symbols() == cluster.get_chemical_symbols()
    assert np.abs(centred(first) - centred(cluster)).max() < 1e-5
    assert first.info["seed"] == 7 and first.info["energy"] == pytest.approx(-123.456789012)


def test_none_info_value_does_not_come_back_as_true_from_extxyz(tmp_path, cluster):
    cluster.info["gap_eV"] = None  # e.g. not computed yet
    write_structures(tmp_path / "n.extxyz", cluster)
    (back,) = read_structures(tmp_path / "n.extxyz")
    assert back.info.get("gap_eV") is None


def _frames_for_writer_tests():
    """Frames as generation and relaxation write them (symbols, positions, scalar info), and
    frames with more (forces, a list in info, a cell, charges)."""
    plain = [generate_cluster("Cd13Se13", seed) for seed in range(6)]
    plain[0].info.update(
        energy=-123.456789012,
        status="relaxed",
        method="GFN1-xTB",
        ok=True,
        flag=np.bool_(False),
        steps=np.int64(42),
        gap_eV=np.float32(1.1),
        note='a "quoted" {b} [c]',
        other="it's",
    )
    plain[1].calc = SinglePointCalculator(plain[1], energy=-5.5)  # energy from a calculator
    plain[2].positions[0] = [-0.0, 1e-9, -123456.123456789]
    plain[3].pbc = [True, False, True]
    plain[4].info["energy"] = float("nan")
    x13 = generate_cluster("X13", 1)  # one-letter symbol
    forces = generate_cluster("Cd4Se4", 1)
    forces.calc = SinglePointCalculator(forces, energy=-1.0, forces=np.ones((8, 3)))
    listed = generate_cluster("Cd4Se4", 2)
    listed.info["tags"] = ["a", "b"]
    boxed = generate_cluster("Cd4Se4", 3)
    boxed.cell = [20.0, 20.0, 20.0]
    charges = generate_cluster("Cd4Se4", 4)
    charges.set_initial_charges(np.arange(8.0))
    return plain + [x13], [forces, listed, boxed, charges]


def test_extxyz_file_is_ases_extxyz_of_the_frames(tmp_path):
    """What write_structures adds to ASE's writer: the energy once, as a calculator result, and
    no None values (extxyz would write a bare key, read back as True)."""
    plain, more = _frames_for_writer_tests()
    images = plain + more
    path = tmp_path / "x.extxyz"
    write_structures(path, images)
    expected = io.StringIO()
    for atoms in images:
        copy = atoms.copy()
        energy = formats.energy_of(atoms)
        copy.info = {k: v for k, v in atoms.info.items() if k != "energy" and v is not None}
        results = dict(atoms.calc.results) if atoms.calc is not None else {}
        if energy is not None:
            results["energy"] = energy
        if results:
            copy.calc = SinglePointCalculator(copy, **results)
        ase.io.write(expected, copy, format="extxyz", parallel=False)
    assert path.read_text() == expected.getvalue()


@pytest.mark.parametrize("ext", ["extxyz", "xyz"])
def test_extxyz_round_trip_through_ase_and_our_reader(tmp_path, ext):
    plain, more = _frames_for_writer_tests()
    images = plain[:2] + more[:1] + plain[2:] + more[1:]  # mixed order
    path = tmp_path / f"many.{ext}"
    assert write_structures(path, images) == len(images)
    by_ase = ase.io.read(path, index=":", format="extxyz", parallel=False)
    ours = read_structures(path)
    assert len(by_ase) == len(ours) == len(images)
    for original, a, b in zip(images, by_ase, ours, strict=True):
        for back in (a, b):
            assert back.get_chemical_symbols() == original.get_chemical_symbols()
            assert np.abs(back.positions - original.positions).max() < 1e-6
        keys = {k for k, v in original.info.items() if v is not None}
        assert keys <= set(b.info) | {"energy"}
        for key in ("seed", "formula", "minsep", "shape", "symmetry", "attempts", "generator"):
            assert b.info[key] == original.info[key], key
        energy = formats.energy_of(original)
        if energy is None:
            assert "energy" not in b.info
        elif np.isfinite(energy):
            assert b.info["energy"] == pytest.approx(energy, abs=1e-9)
    first = ours[0]
    assert first.info["status"] == "relaxed" and first.info["ok"] is True and first.info["flag"] is False
    assert first.info["steps"] == 42 and first.info["gap_eV"] == pytest.approx(1.1)
    assert first.info["note"] == 'a "quoted" {b} [c]' and first.info["other"] == "it's"
    assert ours[1].info["energy"] == -5.5
    assert ours[2].info["energy"] == -1.0 and ours[2].info["seed"] == 1  # with forces
    assert ours[-3].info["tags"] == ["a", "b"]


def test_large_extxyz_write_round_trips(tmp_path):
    from airss_msc.generation.generate import generate_many

    images = generate_many("Cd13Se13", 300, base_seed=4)
    path = tmp_path / "big.extxyz"
    write_structures(path, images)
    back = read_structures(path)
    assert [a.info["seed"] for a in back] == [a.info["seed"] for a in images]
    assert [a.info["candidate"] for a in back] == list(range(300))
    assert max(np.abs(a.positions - b.positions).max() for a, b in zip(images, back, strict=True)) < 1e-6


# ------------------------------------------------------------ export of database rows to AIRSS .res

SEED19 = 1234567890123456789  # derived seeds have 19 digits: too long for a cryan name


def _row(row_id, status="relaxed", energy=-60.25, gap=1.5, formula="Cd6Se6", seed=SEED19, shift=0.0):
    from airss_msc.results.record import Result

    atoms = generate_cluster(formula, row_id)
    return Result(
        symbols=tuple(atoms.get_chemical_symbols()),
        positions=atoms.positions + shift,
        status=status,
        method="tblite:GFN2-xTB",
        energy=energy,
        gap=gap,
        provenance={"formula": formula, "seed": seed},
        id=row_id,
        source="/runs/r.db",
    )


def test_export_res_round_trips_rows_with_seed_gap_status_method_in_rem(tmp_path):
    from airss_msc.results.formats import export_res

    rows = [_row(12), _row(13, energy=-60.5, gap=None)]
    paths = export_res(rows, tmp_path / "out")
    assert [p.name for p in paths] == ["Cd6Se6-r12.res", "Cd6Se6-r13.res"]
    text = paths[0].read_text()
    titl = text.splitlines()[0].split()
    assert titl[1] == "Cd6Se6-r12" and float(titl[4]) == -60.25 and titl[7] == "12"
    assert str(SEED19) not in text.splitlines()[0]  # the seed is in a REM line, not the name
    for line in (
        f"REM seed={SEED19}",
        "REM status=relaxed",
        "REM method=tblite:GFN2-xTB",
        "REM gap_eV=1.5",
        "REM formula=Cd6Se6",
        "REM row=12",
        "REM db=r.db",
    ):
        assert line in text.splitlines(), line
    for result, path in zip(rows, paths, strict=True):
        (back,) = read_structures(path)
        assert back.get_chemical_symbols() == list(result.symbols)
        assert np.abs(centred(back) - (result.positions - result.positions.mean(axis=0))).max() < 1e-6
        assert back.info["energy"] == result.energy and back.info["seed"] == SEED19
        assert back.info["status"] == "relaxed" and back.info["method"] == "tblite:GFN2-xTB"
        assert back.info["row"] == result.id and back.info.get("gap_eV") == result.gap


def test_an_ml_rows_stored_gaps_are_written_since_its_own_method_has_none(tmp_path):
    """CHGNet geometry, SevenNet-0 and GFN2-xTB single points: the GFN2 gap must reach the .res."""
    from dataclasses import replace

    from airss_msc.results.formats import RESULT_INFO_KEYS, export_res

    row = replace(
        _row(12, gap=None),
        method="chgnet:0.3.0",
        energies={"chgnet:0.3.0": -60.25, "sevennet:7net-0": -61.0, "tblite:GFN2-xTB": -600.0},
        gaps={"tblite:GFN2-xTB": 1.75},
    )
    (path,) = export_res([row], tmp_path / "own")
    lines = path.read_text().splitlines()
    assert 'REM gaps={"tblite:GFN2-xTB": 1.75}' in lines and not any(x.startswith("REM gap_eV") for x in lines)
    (back,) = read_structures(path)
    assert back.info["gaps"] == {"tblite:GFN2-xTB": 1.75}
    assert "gaps" in RESULT_INFO_KEYS  # relaxed again (relax_file), the old gaps are not provenance
    # written as GFN2-xTB energies: that gap is the method's own, and not repeated
    (path,) = export_res([row], tmp_path / "gfn2", energy="tblite:GFN2-xTB")
    lines = path.read_text().splitlines()
    assert "REM gap_eV=1.75" in lines and not any(x.startswith("REM gaps=") for x in lines)


def test_unrelaxed_structures_carry_no_energy_in_titl(tmp_path):
    """cryan ranks whatever number stands in TITL: a structure without an energy, or one whose
    relaxation did not finish, has n/a there (AIRSS's mark for an unknown field), never 0.0."""
    from airss_msc.results.formats import NO_ENERGY, export_res

    unfinished, none = _row(2, status="max_steps", energy=-58.0), _row(3, status="collapsed", energy=None, gap=None)
    generated = generate_cluster("Cd6Se6", 4)  # no energy, no status
    paths = export_res([unfinished, none], tmp_path / "out")
    write_structures(tmp_path / "gen.res", generated)
    for path in paths + [tmp_path / "gen.res"]:
        lines = path.read_text().splitlines()
        assert lines[0].split()[4] == NO_ENERGY == "n/a", lines[0]
    assert paths[0].read_text().split()[8] == "(n/a)"  # no symmetry stored: AIRSS's mark, not ASE's (P1)
    assert "REM energy=-58.0" in paths[0].read_text().splitlines()  # kept, away from cryan's ranking
    back = [read_structures(p)[0] for p in paths + [tmp_path / "gen.res"]]
    assert back[0].info["energy"] == -58.0 and back[0].info["status"] == "max_steps"
    assert "energy" not in back[1].info and back[1].info["status"] == "collapsed"
    assert "energy" not in back[2].info and back[2].info["seed"] == 4
    # a relaxed structure keeps its energy in TITL; any other number there is still refused
    relaxed = export_res([_row(5)], tmp_path / "ok")[0]
    assert float(relaxed.read_text().split()[4]) == -60.25
    bad = tmp_path / "bad.res"
    bad.write_text(relaxed.read_text().replace(" -60.25 ", " n/a/b ", 1))
    with pytest.raises(InputError, match="bad number in TITL"):
        read_structures(bad)


def test_airss_res_with_unknown_enthalpy_reads_without_energy(tmp_path):
    path = tmp_path / "gen.res"
    path.write_text(
        "TITL Cd2-1 0.0 1000.0 n/a 0 0 2 (n/a) n - 1\nCELL 1.54180 10 10 10 90 90 90\nLATT -1\n"
        "SFAC Cd\nCd 1 0.40 0.5 0.5 1.0\nCd 1 0.65 0.5 0.5 1.0\nEND\n"
    )
    (atoms,) = read_structures(path)
    assert "energy" not in atoms.info and atoms.info["name"] == "Cd2-1"
    assert atoms.get_distance(0, 1) == pytest.approx(2.5)


def test_export_names_are_short_unique_and_whole_in_cryan(tmp_path):
    from airss_msc.results.formats import CRYAN_NAME_WIDTH, export_name, export_res

    rows = [_row(k, seed=SEED19 + k) for k in (1, 2, 999999)]
    names = [export_name(r) for r in rows]
    assert names == ["Cd6Se6-r1", "Cd6Se6-r2", "Cd6Se6-r999999"]
    long = _row(123456, formula="Zn6Cd12Te6Se12")
    assert len("Zn6Cd12Te6Se12-r123456") > CRYAN_NAME_WIDTH == 20
    assert export_name(long) == "r123456"  # cryan would show Zn6Cd12*-r123456
    assert all(len(n) <= CRYAN_NAME_WIDTH and " " not in n for n in names)
    paths = export_res(rows + [long], tmp_path / "out")
    assert len({p.name for p in paths}) == 4
    # the same row twice (two databases into one call) is refused, nothing half-written
    with pytest.raises(InputError, match="both named 'Cd6Se6-r1'"):
        export_res([rows[0], _row(1, shift=1.0)], tmp_path / "dup")
    assert not (tmp_path / "dup").exists()


def test_no_rem_line_contains_titl(tmp_path):
    """cryan starts a new structure at any line containing TITL."""
    atoms = generate_cluster("Cd4Se4", 1)
    atoms.info.update(energy=-1.0, note="TITL inside", tags=["a TITL b"], TITLE="dropped")
    path = tmp_path / "t.res"
    write_structures(path, atoms)
    lines = path.read_text().splitlines()
    assert [k for k, line in enumerate(lines) if "TITL" in line] == [0]
    (back,) = read_structures(path)
    assert back.info["note"] == "TITL inside" and back.info["tags"] == ["a TITL b"] and "TITLE" not in back.info


def test_structures_of_one_write_share_one_box_whatever_their_orientation(tmp_path):
    """cryan scales distances by the volumes it compares: a rotated copy in a box of another
    size would never merge with its original (AIRSS cluster searches use one fixed box)."""
    from scipy.spatial.transform import Rotation

    from airss_msc.results.formats import export_res

    original = _row(1)
    rotated = _row(2, energy=original.energy)
    rotated.positions = original.positions @ Rotation.from_euler("zyx", [40, 25, 70], degrees=True).as_matrix().T
    bigger = _row(3, formula="Cd13Se13")
    paths = export_res([original, rotated, bigger], tmp_path / "out")
    texts = [p.read_text().splitlines() for p in paths]
    cells = {next(line for line in t if line.startswith("CELL")) for t in texts}
    volumes = {t[0].split()[3] for t in texts}
    assert len(cells) == 1 and len(volumes) == 1
    box = float(cells.pop().split()[2])
    for t in texts:  # every cluster, in any orientation, keeps RES_VACUUM from its images
        frac = np.array([[float(v) for v in line.split()[2:5]] for line in t if line.split()[0] in ("Cd", "Se")])
        radius = np.sqrt((((frac - 0.5) * box) ** 2).sum(axis=1)).max()
        assert box - 2 * radius >= formats.RES_VACUUM - 1e-6
    back = [read_structures(p)[0] for p in paths[:2]]
    assert np.allclose(sorted(back[0].get_all_distances().ravel()), sorted(back[1].get_all_distances().ravel()))
