import numpy as np
import pytest

from airss_msc.analysis.rank import rank_results
from airss_msc.results.record import Result

RING = np.array([[0.0, 0.0, 0.0], [2.6, 0.0, 0.0], [2.6, 2.6, 0.0], [0.0, 2.6, 0.0]])
CHAIN = np.array([[0.0, 0.0, 0.0], [2.5, 0.0, 0.0], [5.0, 0.3, 0.0], [7.5, 0.0, 0.0]])


def _copy(row: int, positions, geometry_eV: float, ranking_eV: float, method: str = "chgnet:0.3.0") -> Result:
    return Result(symbols=("Cd", "Se", "Cd", "Se"), positions=np.array(positions), status="relaxed", method=method,
                  energy=geometry_eV, energies={method: geometry_eV, "sevennet:7net-0": ranking_eV}, id=row)


def test_copies_of_one_minimum_merge_although_the_ranking_single_points_scatter():
    # three loosely converged copies of the ring (0.02 A apart): 0.5 meV/atom apart in the geometry
    # engine, 10 meV/atom in the ranking single point, which is not stationary on these geometries
    rng = np.random.default_rng(3)
    copies = [_copy(k, RING + rng.normal(scale=0.02, size=RING.shape), -10.500 + 0.001 * k, -9.00 + 0.04 * k)
              for k in range(3)]
    chain = _copy(9, CHAIN, -10.0, -9.05)
    rows = rank_results(copies + [chain], energy="sevennet:7net-0", symmetry_tol=None)
    assert [(r.result.id, r.copies) for r in rows] == [(9, 1), (0, 3)]
    # shown by its copy lowest in the ranking energy; populations not split over copies
    assert rows[1].energy_eV == -9.00 and rows[0].population + rows[1].population == pytest.approx(1.0)


def test_rows_from_different_geometry_engines_keep_the_ranking_energy_window():
    # a CHGNet and a GFN1 geometry of the same ring: their own energies are not comparable, so the window
    # is the common ranking energy (here 0.1 eV/atom apart: two rows)
    a = _copy(1, RING, -10.5, -9.0)
    b = _copy(2, RING + 0.01, -600.0, -8.6, method="tblite:GFN1-xTB")
    rows = rank_results([a, b], energy="sevennet:7net-0", symmetry_tol=None)
    assert [(r.result.id, r.copies) for r in rows] == [(1, 1), (2, 1)]
    merged = rank_results([a, b], energy="sevennet:7net-0", symmetry_tol=None, energy_tol=0.2)
    assert [(r.result.id, r.copies) for r in merged] == [(1, 2)]
