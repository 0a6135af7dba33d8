"""The series studies (issue 20): pathways over a pseudo-binary series, the sites a mixing element
takes, and the report's answer section, reaction table and site table."""

from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from airss_msc.analysis.reactions import series_pathways
from airss_msc.analysis.sites import CORE_COORDINATION, mixing_sites, site_occupation
from airss_msc.composition import format_formula
from airss_msc.results.record import Result

ROOT = Path(__file__).resolve().parents[2]
RANK = "sevennet:7net-0"


def cdtese(y: int) -> str:
    return format_formula({"Cd": 13, "Te": y, "Se": 13 - y})


def zncdse(x: int) -> str:
    return format_formula({"Zn": x, "Cd": 13 - x, "Se": 13})


def test_pathways_from_both_parents_with_monomers_fragments_and_the_redistribution():
    formulas = [cdtese(y) for y in range(14)] + ["CdSe", "CdTe", "Cd2Se2", "Cd2TeSe", "Cd2Te2"]
    paths = {p.name: p for p in series_pathways(formulas, ("Te", "Se"))}
    assert set(paths) == {
        "Cd13Se13: Te for Se by the monomer CdTe",
        "Cd13Se13: Te for Se by the fragment Cd2Te2",
        "Cd13Te13: Se for Te by the monomer CdSe",
        "Cd13Te13: Se for Te by the fragment Cd2Se2",
        "Cd13Te13 + Cd13Se13: the two end members exchanging Te/Se",
    }
    steps = paths["Cd13Te13: Se for Te by the monomer CdSe"].reactions
    assert len(steps) == 13 and str(steps[0]) == "Cd13Te13 + CdSe -> Cd13Te12Se + CdTe"
    assert str(steps[-1]) == "Cd13TeSe12 + CdSe -> Cd13Se13 + CdTe"
    redistribution = paths["Cd13Te13 + Cd13Se13: the two end members exchanging Te/Se"]
    assert not redistribution.stepwise and len(redistribution.reactions) == 6
    assert str(redistribution.reactions[5]) == "Cd13Te13 + Cd13Se13 -> Cd13Te6Se7 + Cd13Te7Se6"


def test_a_pathway_with_a_species_not_stored_is_left_out():
    # no spent fragment Cd2TeSe: the fragment pathways go; one composition missing: every stepwise one goes
    formulas = [cdtese(y) for y in range(14)] + ["CdSe", "CdTe", "Cd2Se2", "Cd2Te2"]
    names = [p.name for p in series_pathways(formulas, ("Te", "Se"))]
    assert not any("fragment" in n for n in names) and sum("monomer" in n for n in names) == 2
    gap = [f for f in formulas if f != cdtese(5)]
    names = [p.name for p in series_pathways(gap, ("Te", "Se"))]
    assert names == ["Cd13Te13 + Cd13Se13: the two end members exchanging Te/Se"]
    assert series_pathways(["CdSe"], ("Te", "Se")) == []


def test_cation_exchange_pathways_of_the_zncdse_series():
    formulas = [zncdse(x) for x in range(14)] + ["CdSe", "ZnSe", "Cd2Se2", "ZnCdSe2"]
    paths = {p.name: p for p in series_pathways(formulas, ("Zn", "Cd"))}
    assert "Zn13Se13: Cd for Zn by the monomer CdSe" in paths
    assert str(paths["Zn13Se13: Cd for Zn by the fragment Cd2Se2"].reactions[0]) == (
        "Zn13Se13 + Cd2Se2 -> Zn12CdSe13 + ZnCdSe2"
    )
    # the small units' own series (CdSe/ZnSe, Cd2Se2/ZnCdSe2) never stand in for the 13-mers
    assert all("13" in p.name.split(":")[0] for p in paths.values())


def test_sites_count_bonds_to_the_other_sublattice():
    atoms = read(ROOT / "structures" / "Zn13Se13.xyz")
    sites = mixing_sites(atoms, ("Zn", "Cd"))
    assert len(sites) == 13 and all(s.element == "Zn" for s in sites)
    assert all(1 <= s.coordination <= 4 for s in sites)
    core = int(np.argmax([s.coordination for s in sites]))
    cations = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "Zn"]
    atoms[cations[core]].symbol = "Cd"
    occ = site_occupation(atoms, "Cd", ("Zn", "Cd"), "Zn12CdSe13", 7)
    assert len(occ.mine) == 1 and occ.row_id == 7
    assert occ.on_core == int(sites[core].coordination >= CORE_COORDINATION)
    assert occ.expected_core == pytest.approx(occ.core_sites / 13)
    assert occ.mean_radius() == pytest.approx(sites[core].radius)
    with pytest.raises(ValueError, match="not on one sublattice"):
        mixing_sites(atoms, ("Zn", "Se"))


def _row(atoms, energy: float, row_id: int) -> Result:
    return Result(
        symbols=tuple(atoms.get_chemical_symbols()),
        positions=atoms.positions.copy(),
        status="relaxed",
        method="chgnet:0.3.0",
        energy=energy,
        energies={RANK: energy},
        id=row_id,
        source="t.db",
        provenance={"template": "Zn13Se13.xyz", "move": "frame Zn13Se13.xyz"},
    )


def _report(rows: list[Result], tmp_path: Path) -> tuple[Path, str]:
    """The report of ``rows`` stored in a fresh database: (its HTML path, its Markdown text)."""
    from airss_msc.analysis.report import write_report
    from airss_msc.results.store import ResultsDB

    db = tmp_path / "s.db"
    with ResultsDB(db, write=True) as store:
        for r in rows:
            store.add(r)
    out = write_report(str(db), tmp_path / "report")
    return out, (out.parent / "report.md").read_text()


def _zncd_series_rows() -> list[Result]:
    """Zn_xCd_(13-x)Se_13, x = 0..13 (row ids x + 1), on the (ZnSe)13 frame with Cd on its first 13 - x
    cation sites: Zn-for-Cd lowers the energy by 0.5 eV, the middle compositions mix 0.2 eV below the line."""
    frame = read(ROOT / "structures" / "Zn13Se13.xyz")
    cations = [i for i, s in enumerate(frame.get_chemical_symbols()) if s == "Zn"]
    rows = []
    for x in range(14):
        atoms = frame.copy()
        for i in cations[: 13 - x]:
            atoms[i].symbol = "Cd"
        rows.append(_row(atoms, -60.0 - 0.5 * x - (0.2 if 0 < x < 13 else 0.0), x + 1))
    return rows


def test_the_report_answers_the_series_first(tmp_path):
    """A small Zn/Cd series in a database: the series section opens the report (lowest, hull, the
    pathways' signs, sites, no band trend), the reaction table and the site table follow."""
    from ase import Atoms

    rows = _zncd_series_rows()
    k = len(rows)
    for formula, energy, d in (("CdSe", -3.0, 2.4), ("ZnSe", -3.6, 2.2)):
        k += 1
        rows.append(_row(Atoms(formula, positions=[(0, 0, 0), (d, 0, 0)]), energy, k))
    out, md = _report(rows, tmp_path)
    order = [md.index(h) for h in ("The series", "Verdict", "Reaction energies", "Sites Cd takes")]
    assert order == sorted(order)
    assert "Band trend: not computed" in md
    # and says how to get the estimates, the cheaper band by each packaged map
    trend = next(s for s in md.splitlines() if "Band trend: not computed" in s)
    assert "--method pyscf:PBE/def2-SVP --top 1" in trend and "--top 1 --method pyscf:TDA-ris-PBE/def2-SVP" in trend
    # on the structures the report ranks first: these rows carry no stored ranking energy, so it is named
    assert "--energy sevennet:7net-0" in trend
    # the answer opens the section: the series' own bands (MSC-399 is not a ZnCdSe band), the pathway the
    # energies favour, and that the ranking energy is no DFT
    answer = md.split("## The series", 1)[1].split("\n- ", 2)[1]
    assert answer.startswith("Answer: the series' bands (") and "ZnSe MSC-299" in answer and "MSC-399" not in answer
    assert "the energies favour 'Zn13Se13: Cd for Zn by the monomer CdSe' (-1.30 eV end to end)" in answer
    assert "not DFT" in answer and "No composition's lowest structure has a DFT energy here." in md
    # a step Zn(x) -> Zn(x-1): +0.5 eV in the cluster, -0.6 eV for the monomers (E(ZnSe) - E(CdSe)); the
    # first step also leaves the -0.2 eV mixing bonus in place, the last one gives it up
    assert "Zn13Se13: Cd for Zn by the monomer CdSe: 12 of 13 steps downhill, the whole pathway -1.30 eV" in md
    assert "Zn13Se13 + CdSe -> Zn12CdSe13 + ZnSe | -0.300 | -0.300 | downhill" in md.replace("  ", " ")
    assert "-0.000" not in md
    assert "on the lower hull" in md and (out.parent / "mixing_energy.png").is_file()
    # the (ZnSe)13 frame's cations are all 3-coordinated: no lean to the core can be read, and none is claimed
    assert "no core/cage preference of Cd can be read" in md and "it leans to" not in md
    # the lowest mixing energy (-0.2 eV over 26 atoms) beside the ranking energy's error measured at 26-27 atoms,
    # not the small clusters' (whatever the packaged validation now says)
    from airss_msc.calc.engines import method_accuracy

    measured = method_accuracy(RANK).at(26)
    assert f"at 26-27 atoms is {measured.mae_meV_per_atom:.1f} meV/atom" in md
    assert "the error of mixing energies is not measured" in md  # a scale, not a bound
    inside = measured.mae_meV_per_atom >= 200.0 / 26
    assert ("its sign is not established by this energy" in md) == inside


def _excited(atoms, energy: float, row_id: int, bright_eV: float | None) -> Result:
    from airss_msc.results.record import Excitations

    row = _row(atoms, energy, row_id)
    if bright_eV is not None:  # a dark state below the bright one, as TDA gives for these clusters
        row.excitations["pyscf:TDA-PBE0/def2-SVP"] = Excitations(
            "pyscf:TDA-PBE0/def2-SVP", np.array([bright_eV - 0.4, bright_eV]), np.array([0.001, 0.08])
        )
    return row


@pytest.mark.slow  # two reports with figures: about 40 s each here, beside other jobs
@pytest.mark.parametrize("mixed_nm", [400.0, 600.0])
def test_the_series_band_trend_names_each_computed_band_and_the_targets_verdict(tmp_path, mixed_nm):
    """Excitations on three compositions of a Te/Se series: the series section lists each first
    bright excitation in composition order with the bands it matches, counts the computed ones,
    says whether any is consistent with the target (CdTeSe MSC-399), and draws the trend."""
    from airss_msc.analysis.bands import HC_EV_NM

    frame = read(ROOT / "structures" / "Cd13Se13.xyz")
    anions = [i for i, s in enumerate(frame.get_chemical_symbols()) if s == "Se"]
    bright = {0: HC_EV_NM / 415.0, 6: HC_EV_NM / mixed_nm, 13: HC_EV_NM / 371.0}
    rows = []
    for y in range(14):
        atoms = frame.copy()
        for i in anions[:y]:
            atoms[i].symbol = "Te"
        rows.append(_excited(atoms, -60.0 + 0.4 * y - (0.2 if 0 < y < 13 else 0.0), y + 1, bright.get(y)))
    out, md = _report(rows, tmp_path)
    line = next(s for s in md.splitlines() if "Band trend" in s)
    assert line.index("Cd13Se13 415 nm") < line.index(f"Cd13Te6Se7 {mixed_nm:.0f} nm") < line.index("Cd13Te13 371")
    assert "Cd13Se13 415 nm (f 0.08; consistent with CdSe MSC-415" in line  # and MSC-390, 0.16 eV away
    assert "Cd13Te13 371 nm (f 0.08; consistent with CdTe MSC-371)" in line
    assert "3 of 14 compositions computed" in line
    answer = next(s for s in md.splitlines() if s.startswith("- Answer: "))
    if mixed_nm == 400.0:
        assert "Consistent with the target CdTeSe MSC-399 (399 nm): Cd13Te6Se7." in line
        assert answer.startswith("- Answer: CdTeSe MSC-399 (399 nm) is consistent with Cd13Te6Se7 (within 0.3 eV)")
    else:  # 600 nm is 1.04 eV from 399 nm, outside the 0.3 eV window; the end members are not CdTeSe
        assert "None of the computed compositions is consistent with the target" in line
        assert "the nearest is Cd13Te6Se7 at 600 nm" in line
        assert "the nearest, Cd13Te6Se7, absorbs at 600 nm, -1.04 eV from it" in answer
    assert (out.parent / "band_trend.png").is_file()


def test_a_series_with_pbe_gaps_and_no_spectrum_reports_the_gap_map_estimates(tmp_path):
    """The end members carry a PBE/def2-SVP single point (what `refine` stores): the band trend gives
    their estimates from the packaged gap map with its window, the answer says which windows hold a
    band of their material, and the figure is drawn without any TDA spectrum."""
    from airss_msc.analysis.bands import HC_EV_NM, load_gap_map

    gap_map = load_gap_map()
    # gaps that put Zn13Se13 exactly on ZnSe MSC-299 and Cd13Se13 at 600 nm (outside MSC-415's window)
    gaps = {13: HC_EV_NM / 299.0 - gap_map.shift_eV, 0: HC_EV_NM / 600.0 - gap_map.shift_eV}
    rows = []
    for x, row in enumerate(_zncd_series_rows()):
        if x in gaps:
            row.with_single_point("pyscf:PBE/def2-SVP", -1000.0 - x, gaps[x])
        rows.append(row)
    out, md = _report(rows, tmp_path)
    line = next(s for s in md.splitlines() if s.startswith("- Band trend"))
    assert line.startswith(
        "- Band trend: no composition's lowest structure has a band spectrum. Estimated from the PBE"
    )
    assert "Cd13Se13 600 nm (" in line and "Zn13Se13 299 nm (" in line and "2 of 14 compositions estimated" in line
    answer = next(s for s in md.splitlines() if s.startswith("- Answer: "))
    assert "Zn13Se13 299 nm, window includes ZnSe MSC-299" in answer and "Cd13Se13 600 nm, window" not in answer
    assert "not a match until a TDA-PBE0 spectrum is computed" in answer
    # fitted on small clusters, applied at 26 atoms: both lines say it is an extrapolation (the method in full
    # once, in the band trend), and the window is the map's error and TDA-PBE0's against experiment together
    assert "an extrapolation at 26 atoms" in answer and "in quadrature" not in answer
    assert "at 26 atoms an extrapolation" in line and "not validated there" in line and "in quadrature" in line
    assert (out.parent / "band_trend.png").is_file()


@pytest.mark.slow  # a series report with its figures
def test_a_ris_spectrum_is_shifted_onto_tda_pbe0_and_wins_over_the_gap_estimate(tmp_path, monkeypatch):
    """A composition whose lowest has a TDA-ris-PBE spectrum (and a PBE gap) is estimated from the ris
    first bright singlet through the ris map, never from its gap and never as a computed band; one with a
    gap only keeps the gap estimate; both are described, each by its own map."""
    from airss_msc.analysis.bands import GAP_MAP_FILE, HC_EV_NM, RIS_MAP_FILE, GapMap, GapMapPair, load_gap_map
    from airss_msc.analysis.report import model
    from airss_msc.results.record import Excitations

    ris_method = "pyscf:TDA-ris-PBE/def2-SVP"
    # a map with shift exactly +0.5 eV and no leave-one-out error: the window is TDA-PBE0's 0.3 eV alone
    pairs = tuple(GapMapPair(f, f, 4, e, e + 0.5) for f, e in (("Cd2Se2", 1.4), ("Cd3Se3", 2.2), ("Cd2Te2", 2.0)))
    ris_map = GapMap(ris_method, "TDA-PBE0 first bright", pairs, quantity="first bright")
    real = load_gap_map

    def fake(path=None, packaged=GAP_MAP_FILE):
        return ris_map if packaged == RIS_MAP_FILE else real(path, packaged)

    monkeypatch.setattr(model, "load_gap_map", fake)
    gap_map = load_gap_map()
    rows = []
    for x, row in enumerate(_zncd_series_rows()):
        if x in (0, 13):  # both end members have a PBE gap that alone would put them at 600 nm
            row.with_single_point("pyscf:PBE/def2-SVP", -1000.0 - x, HC_EV_NM / 600.0 - gap_map.shift_eV)
        if x == 13:  # Zn13Se13's ris first bright at 299 nm - 0.5 eV: shifted, exactly on ZnSe MSC-299
            bright = HC_EV_NM / 299.0 - 0.5
            row.excitations[ris_method] = Excitations(
                ris_method, np.array([bright - 0.3, bright]), np.array([0.0005, 0.05])
            )
        rows.append(row)
    _, md = _report(rows, tmp_path)
    line = next(s for s in md.splitlines() if s.startswith("- Band trend"))
    assert line.startswith("- Band trend: no composition's lowest structure has a band spectrum.")  # ris is none
    assert "Estimated from the TDA-ris-PBE/def2-SVP first bright singlet" in line and "Zn13Se13 299 nm (" in line
    assert "Estimated from the PBE/def2-SVP HOMO-LUMO gap" in line and "Cd13Se13 600 nm (" in line
    assert "Zn13Se13 600 nm" not in line and "2 of 14 compositions estimated" in line
    answer = next(s for s in md.splitlines() if s.startswith("- Answer: "))
    assert "Zn13Se13 299 nm, window includes ZnSe MSC-299" in answer
    # the ris-only structure is named as such, and as the source of its composition's estimate
    assert "in 1 composition(s) the lowest one's gives the band trend's estimate" in md


@pytest.mark.slow  # a series report with its figures
def test_the_band_trend_figure_draws_each_map_in_its_style_and_clips_no_estimate(tmp_path, monkeypatch):
    """Two maps in one band-trend figure: a gap estimate at 600 nm (Cd13Se13) and a TDA-ris estimate
    whose window reaches zero energy (Zn13Se13, drawn to the top of the plot). The y range must hold
    every bar (a top taken from one map's points alone cut the other's off) and each map keeps its
    marker whichever maps are drawn."""
    from airss_msc.analysis.bands import GAP_MAP_FILE, HC_EV_NM, RIS_MAP_FILE, GapMap, GapMapPair, load_gap_map
    from airss_msc.analysis.report import figures, model
    from airss_msc.results.record import Excitations

    ris_method = "pyscf:TDA-ris-PBE/def2-SVP"
    # shift +2 eV, largest leave-one-formula-out error 6 eV: every window is open-ended
    pairs = tuple(
        GapMapPair(f, f, 4, e, r) for f, e, r in (("Cd2Se2", 1.0, 1.0), ("Cd3Se3", 2.0, 2.0), ("Cd2Te2", 3.0, 9.0))
    )
    ris_map = GapMap(ris_method, "TDA-PBE0 first bright", pairs, quantity="first bright")
    real = load_gap_map
    monkeypatch.setattr(
        model,
        "load_gap_map",
        lambda path=None, packaged=GAP_MAP_FILE: ris_map if packaged == RIS_MAP_FILE else real(path, packaged),
    )
    drawn = {}
    save = figures._save

    def keep(fig, path):
        drawn[Path(path).name] = fig
        return save(fig, path)

    monkeypatch.setattr(figures, "_save", keep)
    gap_map = load_gap_map()
    rows = _zncd_series_rows()
    rows[0].with_single_point("pyscf:PBE/def2-SVP", -1000.0, HC_EV_NM / 600.0 - gap_map.shift_eV)
    rows[13].excitations[ris_method] = Excitations(ris_method, np.array([2.5]), np.array([0.05]))
    _report(rows, tmp_path)
    (ax,) = drawn["band_trend.png"].axes
    styles = {t.split(" (")[0]: h for h, t in zip(*ax.get_legend_handles_labels(), strict=True)}
    assert styles["estimate from the TDA-ris-PBE/def2-SVP first bright singlet"][0].get_marker() == "s"
    assert styles["estimate from the PBE/def2-SVP HOMO-LUMO gap"][0].get_marker() == "o"
    bottom, top = ax.get_ylim()
    points = [y for h in styles.values() for y in h[0].get_ydata()]
    assert 600.0 in np.round(points) and all(bottom <= y <= top for y in points)
    for bars in ax.collections:  # the error bars
        for seg in bars.get_segments():
            assert bottom <= seg[:, 1].min() - 1e-9 and seg[:, 1].max() <= top + 1e-9
