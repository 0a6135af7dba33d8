"""benchmarks/fitted_correction.py: the contact-count descriptor, the per-formula centred fits and the
leave-one-formula-out split (a held-out formula's data never reaches its fit)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from ase import Atoms

from benchmarks import fitted_correction as fc

A, B = fc.SEVENNET, fc.GFN1


def rhombus() -> Atoms:
    """Cd2Se2 square of side 2.6 A: four Cd-Se bonds, both diagonals 3.68 A (no Cd-Cd or Se-Se contact)."""
    h = 2.6 / np.sqrt(2)
    return Atoms("CdSeCdSe", positions=[(h, 0, 0), (0, h, 0), (-h, 0, 0), (0, -h, 0)])


def test_contact_counts_of_a_cd2se2_square():
    by_class = fc.contact_counts(rhombus(), "class")
    assert by_class["cation-anion"] == pytest.approx(4.0, abs=0.01)
    assert by_class["cation-cation"] == pytest.approx(0.0, abs=0.01)
    assert by_class["anion-anion"] == pytest.approx(0.0, abs=0.01)
    by_pair = fc.contact_counts(rhombus(), "pair")
    assert by_pair["Cd-Se"] == pytest.approx(4.0, abs=0.01)
    assert sum(v for k, v in by_pair.items() if k != "Cd-Se") == pytest.approx(0.0, abs=0.01)


def test_a_contact_at_the_cutoff_counts_one_half_and_the_count_is_smooth():
    rs = 2 * 1.20  # Se covalent radii sum
    cut = fc.CONTACT_FACTOR["anion-anion"] * rs
    counts = [
        fc.contact_counts(Atoms("Se2", positions=[(0, 0, 0), (0, 0, d)]))["anion-anion"]
        for d in (cut - 0.3, cut, cut + 0.3)
    ]
    assert counts[0] > 0.98 and counts[1] == pytest.approx(0.5) and counts[2] < 0.02
    assert fc.pair_label("Te", "Se") == "Se-Te" and fc.pair_label("Zn", "Cd") == "Cd-Zn"
    assert fc.pair_label("Se", "Cd") == "Cd-Se"


def synthetic(seed: int = 0) -> list[fc.Point]:
    """Four formulas of 4-6 isomers whose 'PBE' energy is exactly 1.2 E_A + 0.3 E_B + a formula constant."""
    rng = np.random.default_rng(seed)
    points = []
    for k, (formula, n) in enumerate([("F1", 4), ("F2", 6), ("F3", 5), ("F4", 8)]):
        for i in range(4 + k % 3):
            ea, eb = rng.normal(scale=0.5, size=2) - 3.0 * n
            classes = {c: float(rng.uniform(0, n)) for c in fc.CLASSES}
            pairs = {p: float(rng.uniform(0, n)) for p in fc.PAIRS}
            points.append(
                fc.Point(
                    f"{formula}-{i}",
                    formula,
                    n,
                    fc.MAIN_GEOMETRY,
                    1.2 * ea + 0.3 * eb + 7.0 * k,
                    {A: float(ea), B: float(eb)},
                    classes,
                    pairs,
                )
            )
    return points


def test_the_blend_recovers_exact_coefficients_and_ranks_a_held_out_formula_perfectly():
    points = synthetic()
    blend = fc.Model("blend", (A, B))
    fit = fc.fit(points, blend)
    assert fit.coef_engines == pytest.approx([1.2, 0.3], abs=1e-9)
    per, _ = fc.lofo(points, blend, ["F1", "F2", "F3", "F4"])
    assert all(v is not None and v["spearman"] == pytest.approx(1.0) and v["first"] for v in per.values())
    assert all(v["mae"] == pytest.approx(0.0, abs=1e-6) for v in per.values() if v)
    shipped = fc.fit(points, fc.Model("A", (A,), fit=False))
    assert shipped.coef_engines == pytest.approx([1.0]) and shipped.predict(points[0]) == pytest.approx(
        points[0].energies[A]
    )


def test_a_held_out_formula_never_reaches_its_fit():
    """Scrambling the held-out formula's PBE energies (its off-main geometries included) leaves the fit
    that predicts it unchanged, for a ridge fit whose strength is chosen inside the training formulas."""
    points = synthetic()
    for i, p in enumerate(points):
        if p.formula == "F2" and i % 2:
            points[i] = dataclasses.replace(p, geometry="tblite:GFN1-xTB")
    model = fc.Model("A +bonds3", (A,), "class")
    _, before = fc.lofo(points, model, ["F2"])
    scrambled = [
        dataclasses.replace(p, pbe=p.pbe + (100.0 * i if p.formula == "F2" else 0.0)) for i, p in enumerate(points)
    ]
    _, after = fc.lofo(scrambled, model, ["F2"])
    assert before[0].ridge == after[0].ridge
    assert np.allclose(before[0].coef_engines, after[0].coef_engines)
    assert np.allclose(before[0].coef_counts, after[0].coef_counts)


def test_a_contact_type_that_never_varies_gets_no_coefficient():
    points = synthetic()
    points = [dataclasses.replace(p, pairs={**p.pairs, "Se-Te": 1e-9 * i}) for i, p in enumerate(points)]
    fit = fc.fit(points, fc.Model("A +pairs", (A,), "pair"), ridge=1.0)
    assert fit.coef_counts[fc.PAIRS.index("Se-Te")] == 0.0


def test_rank_stats_match_the_definition():
    s = fc.rank_stats([0.0, 1.0, 2.0], [0.0, 2.2, 1.1], natoms=2)
    assert s["spearman"] == pytest.approx(0.5) and s["first"]
    # relative energies per atom in meV: PBE 0, 500, 1000; model 0, 1100, 550
    assert s["mae"] == pytest.approx((0 + 600 + 450) / 3)


def test_the_largest_class_held_out_is_predicted_by_a_fit_that_never_saw_it():
    """A 26-atom formula whose 'PBE' energies contradict the small clusters' law leaves the fit trained
    below BIG_FROM at that law (exact coefficients) and is scored as ranked by it (reversed order)."""
    points = synthetic()
    for i in range(4):
        ea, eb = -80.0 + 0.3 * i, -80.0 - 0.1 * i
        points.append(fc.Point(f"F26-{i}", "F26", 26, fc.MAIN_GEOMETRY, -(1.2 * ea + 0.3 * eb), {A: ea, B: eb}, {}, {}))
    blend = fc.Model("blend", (A, B))
    ft, per = fc.size_holdout(points, blend, lambda n: n < fc.BIG_FROM, ["F26"])
    assert ft.coef_engines == pytest.approx([1.2, 0.3], abs=1e-9)
    assert per["F26"] is not None and per["F26"]["spearman"] == pytest.approx(-1.0) and not per["F26"]["first"]
    everything = fc.fit(points, blend)
    assert not np.allclose(everything.coef_engines, [1.2, 0.3])


@pytest.mark.slow
def test_the_readout_features_reproduce_sevennet_energy_differences():
    """w . features + sum of species shifts is SevenNet-0's energy: within one formula the shifts cancel, so the
    features times SevenNet-0's own weights must give its isomer energy differences (both readout layers)."""
    from airss_msc.calc.single_point import single_point

    square = rhombus()
    bent = square.copy()
    bent.positions[0, 2] += 0.6  # fold the rhombus: same formula, a different energy
    feats = fc.readout_features([square, bent])
    weights = fc.readout_weights()
    de = single_point(bent, fc.SEVENNET).energy - single_point(square, fc.SEVENNET).energy
    assert abs(de) > 0.05
    for key in fc.READOUTS:
        assert feats[1][key] @ weights[key] - feats[0][key] @ weights[key] == pytest.approx(de, abs=2e-4)
