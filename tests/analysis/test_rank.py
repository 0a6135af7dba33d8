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


def test_a_refinement_that_reached_every_composition_ranks_them():
    """After DFT single points on the lowest of every composition the reference energy ranks (the
    structures it was computed on; the rest are listed unranked); one composition left without it,
    the stored ranking energy still ranks, so no composition drops out of the ranking."""
    from airss_msc.analysis.rank import ranking_energy, refined_everywhere
    from airss_msc.calc.engines import VALIDATED_RANKING

    pbe = "pyscf:PBE/def2-SVP"
    rng = np.random.default_rng(3)

    def row(row_id, symbols, sevennet, ref=None, **provenance):
        energies = {VALIDATED_RANKING: sevennet} | ({pbe: ref} if ref is not None else {})
        pos = rng.normal(size=(len(symbols), 3)) * 3.0
        return Result(
            symbols=symbols, positions=pos, status="relaxed", method="chgnet:0.3.0", energy=-1.0,
            energies=energies, id=row_id, provenance=provenance,
        )  # fmt: skip

    cdse = ("Cd", "Cd", "Se", "Se")
    cdte = ("Cd", "Cd", "Te", "Te")
    # the reference swaps the ranking energy's order of the two Cd2Se2 rows; row 3 was not refined
    rows = [row(1, cdse, -10.0, -20.0), row(2, cdse, -9.9, -20.5), row(3, cdse, -9.0), row(4, cdte, -8.0, -15.0)]
    assert refined_everywhere(rows) == pbe
    assert ranking_energy(None, [], rows) == pbe
    assert ranking_energy(VALIDATED_RANKING, [], rows) == VALIDATED_RANKING  # asked for: kept
    ranked = {r.result.id: r.rank for r in rank_results(rows, energy=pbe, include_all=True, symmetry_tol=None)}
    assert ranked == {2: 1, 1: 2, 3: None, 4: 1}
    # a ligand-capped composition without the reference keeps the ranking energy for all
    capped = ("Cd", "Cd", "Se", "Se", "N", "H", "H", "H")
    unrefined = [*rows, row(5, capped, -30.0, bare_parent=1)]
    assert refined_everywhere(unrefined) is None
    assert ranking_energy(None, [], unrefined) == VALIDATED_RANKING


def test_the_report_of_a_database_refined_everywhere_ranks_by_the_reference(tmp_path):
    """The analysis a report is drawn from: the reference's lowest is rank 1 (not the ranking
    energy's) and the unrefined row is listed unranked."""
    from airss_msc.analysis.report.model import analyse
    from airss_msc.calc.engines import VALIDATED_RANKING
    from airss_msc.results.store import ResultsDB

    pbe = "pyscf:PBE/def2-SVP"
    rng = np.random.default_rng(8)
    db = tmp_path / "refined.db"
    ids = {}
    with ResultsDB(db, write=True) as store:
        for name, symbols, sevennet, ref in [
            ("a", ("Cd", "Cd", "Se", "Se"), -10.0, -20.0),
            ("b", ("Cd", "Cd", "Se", "Se"), -9.9, -20.4),  # PBE's lowest, second by the ranking energy
            ("c", ("Cd", "Cd", "Se", "Se"), -9.0, None),  # not refined
            ("d", ("Cd", "Cd", "Te", "Te"), -8.0, -15.0),
        ]:
            energies = {VALIDATED_RANKING: sevennet} | ({pbe: ref} if ref is not None else {})
            ids[name] = store.add(
                Result(
                    symbols=symbols,
                    positions=rng.normal(size=(4, 3)) * 3.0,
                    status="relaxed",
                    method="chgnet:0.3.0",
                    energy=-1.0,
                    energies=energies,
                )
            )
    analysis = analyse(str(db))
    assert analysis.energy == pbe
    ranks = {r.result.id: r.rank for r in analysis.rows if r.result is not None}
    assert ranks[ids["b"]] == 1 and ranks[ids["a"]] == 2 and ranks[ids["c"]] is None and ranks[ids["d"]] == 1


def test_spectra_and_cappings_take_the_reference_lowest_once_refined_everywhere():
    from airss_msc.calc.engines import VALIDATED_RANKING
    from airss_msc.search.rows import selection_energy

    pbe = "pyscf:PBE/def2-SVP"
    pos = np.random.default_rng(2).normal(size=(4, 3)) * 3.0
    refined = [
        Result(symbols=("Cd", "Cd", "Se", "Se"), positions=pos, status="relaxed", method="chgnet:0.3.0",
               energy=-1.0, energies={VALIDATED_RANKING: -9.0, pbe: -20.0})
    ]  # fmt: skip
    assert selection_energy(refined, VALIDATED_RANKING, refining=False) == pbe
    # a refinement ranked by its own energy would pick only the rows it has already done
    assert selection_energy(refined, VALIDATED_RANKING, refining=True) == VALIDATED_RANKING
    unrefined = [Result(symbols=("Cd", "Cd", "Se", "Se"), positions=pos, status="relaxed", method="chgnet:0.3.0",
                        energy=-1.0, energies={VALIDATED_RANKING: -9.0})]  # fmt: skip
    assert selection_energy(unrefined, VALIDATED_RANKING, refining=False) == VALIDATED_RANKING
