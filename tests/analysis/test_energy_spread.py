"""Which energy ranks, which gives populations and mixing energies, and the error stated beside them."""

import numpy as np
import pytest

from airss_msc.analysis.energetics import KB_EV
from airss_msc.analysis.rank import population_energy, rank_results, ranking_energy, ranking_note
from airss_msc.analysis.report.model import _mixing
from airss_msc.calc.engines import VALIDATED_RANKING, is_reference, measured_error
from airss_msc.results.record import Result

PBE = "pyscf:PBE/def2-SVP"


def _isomer(k: int, chgnet: float, seven: float | None, pbe: float | None, formula: str = "Cd3Se3") -> Result:
    rng = np.random.default_rng(k)
    symbols = ("Cd", "Se") * 3
    res = Result(
        symbols=symbols,
        positions=rng.normal(size=(6, 3)) * 2.0,
        status="relaxed",
        method="chgnet:0.3.0",
        energy=chgnet,
        provenance={"formula": formula},
        id=k,
    )
    res.energies["chgnet:0.3.0"] = chgnet
    if seven is not None:
        res.energies[VALIDATED_RANKING] = seven
    if pbe is not None:
        res.energies[PBE] = pbe
    return res


def test_the_reference_and_the_validated_ranking_are_named_by_their_engines():
    assert is_reference(PBE) and not is_reference("pyscf:TDA-PBE0/def2-SVP") and not is_reference(VALIDATED_RANKING)
    assert "Spearman" in measured_error(VALIDATED_RANKING)
    assert measured_error(PBE) is None and measured_error("not-a-method") is None


def test_populations_use_pbe_only_when_every_minimum_has_it():
    # SevenNet-0 spreads the two isomers 0.20 eV apart, PBE 0.05 eV
    both = [_isomer(1, -10.0, -8.00, -100.00), _isomer(2, -10.1, -7.80, -99.95)]
    rows = [r for r in rank_results(both, energy=VALIDATED_RANKING, symmetry_tol=None) if r.rank]
    assert [r.population_method for r in rows] == [PBE, PBE]
    expected = 1.0 / (1.0 + np.exp(-0.05 / (KB_EV * 298.15)))
    assert rows[0].population == pytest.approx(expected, rel=1e-6)
    # one minimum without PBE: the ranking energy gives the populations, and the note says so
    partial = [_isomer(1, -10.0, -8.00, -100.00), _isomer(2, -10.1, -7.80, None)]
    rows = [r for r in rank_results(partial, energy=VALIDATED_RANKING, symmetry_tol=None) if r.rank]
    assert {r.population_method for r in rows} == {VALIDATED_RANKING}
    assert rows[0].population == pytest.approx(1.0 / (1.0 + np.exp(-0.20 / (KB_EV * 298.15))), rel=1e-6)
    note = ranking_note(rows, VALIDATED_RANKING)
    assert note.startswith(f"ranked by {VALIDATED_RANKING}") and "72.5 meV/atom" in note
    assert "populations by the ranking energy" in note
    assert population_energy([r.result for r in rows]) == VALIDATED_RANKING


def test_a_database_without_a_stored_choice_ranks_by_the_validated_energy_when_rows_carry_it(tmp_path):
    rows = [_isomer(1, -10.0, -8.0, None), _isomer(2, -10.1, -7.8, None)]
    assert ranking_energy(None, [], rows) == VALIDATED_RANKING
    assert ranking_energy(None, [], [_isomer(1, -10.0, None, None)]) is None  # not computed: own energies
    assert ranking_energy("own", [], rows) is None
    assert ranking_energy("GFN2-xTB", [], rows) == "GFN2-xTB"


def test_mixing_energies_use_the_reference_where_every_lowest_has_it():
    def series(pbe_mid):
        out = []
        for k, (formula, seven, pbe) in enumerate(
            [
                ("Cd3Se3", -8.0, -100.0),
                ("Cd3TeSe2", -8.3, pbe_mid),
                ("Cd3Te2Se", -8.6, -100.8),
                ("Cd3Te3", -9.0, -101.2),
            ]
        ):
            out.append(_isomer(k, -10.0, seven, pbe, formula))  # the composition comes from the provenance
        return out

    notes: list[str] = []
    rows = rank_results(series(-100.5), energy=VALIDATED_RANKING, symmetry_tol=None)
    points, pair, method = _mixing(rows, notes)
    assert pair == ("Te", "Se") and method == PBE and notes[-1].startswith(f"mixing energies by {PBE}")
    by_x = {round(p.x, 3): p.e_mix for p in points}
    assert by_x[round(1 / 3, 3)] == pytest.approx(-100.5 - (-100.0 * 2 / 3 - 101.2 / 3))
    notes = []
    rows = rank_results(series(None), energy=VALIDATED_RANKING, symmetry_tol=None)
    points, _, method = _mixing(rows, notes)
    assert method == VALIDATED_RANKING
    assert notes[-1].startswith(f"mixing energies by {VALIDATED_RANKING}") and "72.5 meV/atom" in notes[-1]
    assert {round(p.x, 3): p.e_mix for p in points}[round(1 / 3, 3)] == pytest.approx(-8.3 - (-8.0 * 2 / 3 - 9.0 / 3))
