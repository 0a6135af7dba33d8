from dataclasses import replace

import numpy as np
import pytest

from airss_msc.analysis.rank import rank_results
from airss_msc.results.record import Result

RING = np.array([[0.0, 0.0, 0.0], [2.6, 0.0, 0.0], [2.6, 2.6, 0.0], [0.0, 2.6, 0.0]])
CHAIN = np.array([[0.0, 0.0, 0.0], [2.5, 0.0, 0.0], [5.0, 0.3, 0.0], [7.5, 0.0, 0.0]])


def _copy(row: int, positions, geometry_eV: float, ranking_eV: float, method: str = "chgnet:0.3.0", **kw) -> Result:
    return Result(
        symbols=("Cd", "Se", "Cd", "Se"),
        positions=np.array(positions),
        status="relaxed",
        method=method,
        energy=geometry_eV,
        energies={method: geometry_eV, "sevennet:7net-0": ranking_eV},
        id=row,
        source="r.db",
        **kw,
    )


def _ring_copies(n: int = 3) -> list[Result]:
    # loosely converged copies of the ring (0.02 A apart): 0.5 meV/atom apart in the geometry engine,
    # 10 meV/atom in the ranking single point, which is not stationary on these geometries; the copy
    # lowest in the geometry engine (row 2) is not the lowest single point (row 0)
    rng = np.random.default_rng(3)
    return [
        _copy(k, RING + rng.normal(scale=0.02, size=RING.shape), -10.500 - 0.001 * k, -9.00 + 0.04 * k)
        for k in range(n)
    ]


def test_copies_of_one_minimum_merge_although_the_ranking_single_points_scatter():
    rows = rank_results(_ring_copies() + [_copy(9, CHAIN, -10.0, -9.05)], energy="sevennet:7net-0", symmetry_tol=None)
    assert [(r.result.id, r.copies) for r in rows] == [(9, 1), (2, 3)]
    # shown by its best-converged copy (the lowest of scattered single points would bias it low);
    # one population for the isomer, not split over its copies
    assert rows[1].energy_eV == pytest.approx(-8.92)
    assert rows[0].population + rows[1].population == pytest.approx(1.0)


def test_rows_from_different_geometry_engines_merge_on_the_ranking_energy():
    # a CHGNet and a GFN1 geometry of the same ring: their own energies are not comparable, so the window
    # between them is the common ranking energy (here 0.1 eV/atom apart: two rows)
    a = _copy(1, RING, -10.5, -9.0)
    b = _copy(5, RING + 0.01, -600.0, -8.6, method="tblite:GFN1-xTB")
    rows = rank_results([a, b], energy="sevennet:7net-0", symmetry_tol=None)
    assert [(r.result.id, r.copies) for r in rows] == [(1, 1), (5, 1)]
    merged = rank_results([a, b], energy="sevennet:7net-0", symmetry_tol=None, energy_tol=0.2)
    assert [(r.result.id, r.copies) for r in merged] == [(1, 2)]
    # copies from one engine still merge on its energy when a row of another engine is present
    rows = rank_results(_ring_copies() + [b], energy="sevennet:7net-0", symmetry_tol=None)
    assert [(r.result.id, r.copies) for r in rows] == [(2, 3), (5, 1)]


def test_a_database_row_ignores_geometry_keys_left_in_its_provenance():
    # a row relaxed from an exported file once kept the old export's geometry_method/geometry_energy:
    # they describe another relaxation, not this row's
    rows = [
        _copy(
            k,
            RING + 0.001 * k,
            -10.5 - 1e-4 * k,
            -9.0 - 1e-4 * k,
            provenance={"geometry_method": "chgnet:0.3.0", "geometry_energy": -10.5 + 0.2 * k},
        )
        for k in range(2)
    ]
    assert [r.copies for r in rank_results(rows, energy="sevennet:7net-0", symmetry_tol=None)] == [2]


def test_a_structure_file_carries_its_geometry_energy():
    rows = [
        Result(
            symbols=("Cd", "Se", "Cd", "Se"),
            positions=RING + 0.01 * k,
            status="relaxed",
            method="sevennet:7net-0",
            energy=-9.0 + 0.04 * k,
            energies={"sevennet:7net-0": -9.0 + 0.04 * k},
            id=k + 1,
            source="best.res",
            provenance={"geometry_method": "chgnet:0.3.0", "geometry_energy": -10.5 - 0.001 * k},
        )
        for k in range(2)
    ]
    (row,) = rank_results(rows, symmetry_tol=None)
    assert row.copies == 2 and row.result.id == 2
    # without the geometry energy (an older export) the ranking energy is the window: two rows
    for r in rows:
        del r.provenance["geometry_energy"]
    assert [r.copies for r in rank_results(rows, symmetry_tol=None)] == [1, 1]


def test_only_a_validated_energy_that_orders_differently_marks_a_disagreement():
    # ranked by SevenNet-0: ring below chain. GFN2-xTB reverses them (shown, not counted);
    # a PBE single point reversing them is a disagreement
    ring, chain = _copy(1, RING, -10.0, -9.2), _copy(2, CHAIN, -10.1, -9.0)
    for row in (ring, chain):
        row.energies["tblite:GFN2-xTB"] = -30.0 if row is chain else -29.0
    rows = rank_results([ring, chain], energy="sevennet:7net-0", symmetry_tol=None)
    assert [r.result.id for r in rows] == [1, 2]
    assert rows[0].other_ranks["tblite:GFN2-xTB"] == 2 and not any(r.disagree for r in rows)
    for row in (ring, chain):
        row.energies["pyscf:PBE/def2-SVP"] = -500.0 if row is chain else -499.0
    rows = rank_results([ring, chain], energy="sevennet:7net-0", symmetry_tol=None)
    assert all(r.disagree for r in rows)


PBE = "pyscf:PBE/def2-SVP"


def _rows_of(spec, seed=3):
    """Relaxed rows (id, symbols, ranking energy, PBE energy or None, provenance)."""
    from airss_msc.calc.engines import VALIDATED_RANKING

    rng = np.random.default_rng(seed)
    out = []
    for row_id, symbols, sevennet, ref, *provenance in spec:
        energies = {VALIDATED_RANKING: sevennet} | ({PBE: ref} if ref is not None else {})
        out.append(
            Result(
                symbols=symbols,
                positions=rng.normal(size=(len(symbols), 3)) * 3.0,
                status="relaxed",
                method="chgnet:0.3.0",
                energy=-1.0,
                energies=energies,
                id=row_id,
                provenance=provenance[0] if provenance else {},
            )
        )
    return out


CDSE = ("Cd", "Cd", "Se", "Se")
CDTE = ("Cd", "Cd", "Te", "Te")


def _depth_at(natoms):
    from airss_msc.calc.engines import VALIDATED_RANKING, method_accuracy

    size_class = method_accuracy(VALIDATED_RANKING).at(natoms)
    assert size_class is not None and size_class.depth()
    return size_class.depth()


def test_a_refinement_to_the_measured_depth_in_every_composition_ranks_them():
    """After DFT single points on the measured depth of every composition the reference energy ranks
    (the structures it was computed on); shallower in one composition, or a composition left
    without it, the stored ranking energy still ranks, so the reference's lowest is one it had
    the chance to see and no composition drops out."""
    from airss_msc.analysis.rank import ranking_energy, reference_on_every_composition
    from airss_msc.calc.engines import VALIDATED_RANKING

    depth = _depth_at(4)
    assert depth > 1  # else a top-1 refinement could not be told from one to the depth
    # the depth lowest Cd2Se2 refined, the reference swapping the first two; one more row not refined;
    # the lone Cd2Te2 (fewer rows than the depth) refined
    spec = [(k + 1, CDSE, -10.0 + 0.1 * k, -20.0 - 0.5 * (k == 1)) for k in range(depth)]
    spec += [(depth + 1, CDSE, -5.0, None), (depth + 2, CDTE, -8.0, -15.0)]
    rows = _rows_of(spec)
    assert reference_on_every_composition(rows, VALIDATED_RANKING) == PBE
    assert ranking_energy(None, [], rows) == PBE
    assert ranking_energy(VALIDATED_RANKING, [], rows) == VALIDATED_RANKING  # asked for: kept
    ranked = {r.result.id: r.rank for r in rank_results(rows, energy=PBE, include_all=True, symmetry_tol=None)}
    assert ranked[2] == 1 and ranked[1] == 2 and ranked[depth + 1] is None and ranked[depth + 2] == 1
    # refined shallower than the depth in one composition: not yet
    shallow = [r for r in rows if r.id != depth] + _rows_of([(depth, CDSE, -9.0, None)], seed=4)
    assert reference_on_every_composition(shallow, VALIDATED_RANKING) is None
    assert ranking_energy(None, [], shallow) == VALIDATED_RANKING
    # a ligand-capped composition without the reference keeps the ranking energy for all
    capped = ("Cd", "Cd", "Se", "Se", "N", "H", "H", "H")
    assert reference_on_every_composition(rows + _rows_of([(99, capped, -30.0, None)]), VALIDATED_RANKING) is None


def test_the_report_of_a_database_refined_to_the_depth_ranks_by_the_reference(tmp_path):
    """The analysis a report is drawn from: the reference's lowest is rank 1 (not the ranking
    energy's) and the unrefined row is listed unranked."""
    from airss_msc.analysis.report.model import analyse
    from airss_msc.results.store import ResultsDB

    depth = _depth_at(4)
    db = tmp_path / "refined.db"
    spec = [(0, CDSE, -10.0 + 0.1 * k, -20.0 - 0.5 * (k == 1)) for k in range(depth)]
    spec += [(0, CDSE, -5.0, None), (0, CDTE, -8.0, -15.0)]
    with ResultsDB(db, write=True) as store:
        ids = [store.add(replace(r, id=None)) for r in _rows_of(spec, seed=8)]
    analysis = analyse(str(db))
    assert analysis.energy == PBE
    ranks = {r.result.id: r.rank for r in analysis.rows if r.result is not None}
    assert ranks[ids[1]] == 1 and ranks[ids[0]] == 2 and ranks[ids[depth]] is None and ranks[ids[-1]] == 1
