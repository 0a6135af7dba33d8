"""What a report shows, computed once from a results database (no files, no formatting).

The ranked unique minima per composition, their fingerprints against
experiment (size against SAXS, gap and first bright excitation against the
measured bands, calibrated band estimates where a calibration is given),
mixing energies against the binary end members, the methods used and where
they disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from airss_msc.analysis.bands import (
    COMPUTABLE_HEAVY_ATOMS, HC_EV_NM, Band, Calibration, LiteraturePair, ev_to_nm, load_bands, load_calibration,
    load_literature_pairs, match_bands, nm_to_ev,
)
from airss_msc.analysis.energetics import detect_mixing_pair, mixing_energies
from airss_msc.analysis.rank import RankedRow, load_results, population_energy, rank_results, ranking_energy
from airss_msc.analysis.saxs import equivalent_diameter_nm, radius_of_gyration
from airss_msc.analysis.spectra import BRIGHT_F, band_window_nm, covered_to_nm, first_bright_nm
from airss_msc.calc.engines import is_reference, measured_error
from airss_msc.errors import InputError
from airss_msc.results.record import STATUSES, Excitations

#: Overall cluster size measured by SAXS (Beaucage model) for the CdTe, CdSe and
#: mixed samples of the seed paper, nm.
SAXS_DIAMETER_NM = (0.8, 1.0)


@dataclass
class Candidate:
    """A ranked unique minimum with the fingerprints compared to experiment.

    excitations: the best available excitation calculation (method named in it);
    bright_nm/bright_f: its first bright excitation; band_nm (+- band_unc_nm):
    calibrated gap estimate; matches: measured bands within the uncertainty.
    """

    row: RankedRow
    rg_A: float | None
    diameter_nm: float | None
    band_nm: float | None = None
    band_unc_nm: float | None = None
    matches: list[Band] = field(default_factory=list)
    excitations: Excitations | None = None
    bright_nm: float | None = None
    bright_f: float | None = None
    near_bright: list[Band] = field(default_factory=list)

    @property
    def in_saxs_range(self) -> bool | None:
        if self.diameter_nm is None:
            return None
        return SAXS_DIAMETER_NM[0] <= self.diameter_nm <= SAXS_DIAMETER_NM[1]


@dataclass
class Analysis:
    """Everything the report shows."""

    db: str
    energy: str | None
    rows: list[RankedRow]
    candidates: list[Candidate]
    status_counts: dict[str, int]
    methods: list[str]
    bands: list[Band]
    calibration: Calibration | None
    mixing: list | None
    mixing_pair: tuple[str, str] | None
    notes: list[str]
    literature: list[LiteraturePair] = field(default_factory=list)

    @property
    def calibrating_pairs(self) -> list[LiteraturePair]:
        """Published pairs firm and small enough to calibrate the computed excitations."""
        return [p for p in self.literature if p.calibrates(COMPUTABLE_HEAVY_ATOMS)]

    @property
    def disagreements(self) -> list[RankedRow]:
        return [r for r in self.rows if r.disagree]


def _lowest_gap(rows: list[RankedRow], formula: str) -> float | None:
    best = [r for r in rows if r.formula == formula and r.rank == 1]
    return best[0].gap_eV if best else None


#: Excitation methods preferred for the band estimate, best first (others follow by name).
EXCITATION_PREFERENCE = ("pyscf:TDA-PBE0/def2-SVP", "pyscf:TDA-B3LYP/def2-SVP", "pyscf:TDA-PBE/def2-SVP")



def _excitations_of(row: RankedRow) -> Excitations | None:
    stored = row.result.excitations if row.result is not None else {}
    done = {m: e for m, e in stored.items() if e.status == "done" and len(e.energies_eV)}
    for method in EXCITATION_PREFERENCE + tuple(sorted(done)):
        if method in done:
            return done[method]
    return None


def analyse(db: str, top: int = 5, calibration_path: str | None = None, bands_path: str | None = None,
            temperature: float = 298.15, energy: str | None = None) -> Analysis:
    """Rank, fingerprint and compare a results database with the measured data."""
    results = load_results([db])
    if not results:
        raise InputError(f"database {db} holds no results")
    energy = ranking_energy(energy, [db], results)
    rows = rank_results(results, energy=energy, include_all=True, temperature=temperature)
    bands = load_bands(bands_path)
    notes: list[str] = []
    calibration = None
    if calibration_path:
        spec = load_calibration(calibration_path, bands)
        calibration = spec.fit(gap_lookup=lambda pair: _lowest_gap(rows, pair.formula) if pair.formula else None)
        methods = {r.method.split(":")[-1] for r in results}
        if spec.method and spec.method not in methods:
            notes.append(f"calibration was made for {spec.method}, results use {', '.join(sorted(methods))}")
    candidates = [_candidate(row, calibration, bands) for row in rows if row.rank is not None and row.rank <= top]
    counts = {s: sum(r.status == s for r in results) for s in STATUSES}
    mixing, pair = _mixing(rows, notes)
    return Analysis(db, energy, rows, candidates, {s: n for s, n in counts.items() if n},
                    sorted({r.method for r in results if r.method}), bands, calibration, mixing, pair, notes,
                    load_literature_pairs())


def _candidate(row: RankedRow, calibration: Calibration | None, bands: list[Band]) -> Candidate:
    atoms = row.result.atoms
    # Electron-weighted size needs real elements (the LJ dummy X has Z = 0).
    has_electrons = bool(atoms.numbers.sum() > 0)
    cand = Candidate(row, radius_of_gyration(atoms) if has_electrons else None,
                     equivalent_diameter_nm(atoms) if has_electrons else None)
    if calibration is not None and row.gap_eV and row.wavelength_nm:
        est, unc = calibration.predict(row.gap_eV)
        cand.band_nm = ev_to_nm(est)
        if unc is not None:
            cand.band_unc_nm = abs(ev_to_nm(est - unc) - ev_to_nm(est + unc)) / 2.0
            cand.matches = match_bands(est, unc, bands)
    exc = _excitations_of(row)
    if exc is not None:
        cand.excitations = exc
        bright = first_bright_nm(exc, BRIGHT_F)
        if bright is not None:
            cand.bright_nm, cand.bright_f = bright
            lo, hi = band_window_nm(HC_EV_NM / cand.bright_nm)
            cand.near_bright = [b for b in bands if lo <= b.wavelength_nm <= hi]
    return cand


def _mixing(rows: list[RankedRow], notes: list[str]):
    """Mixing energies of the lowest minima, if the compositions form a pseudo-binary: by the
    reference (DFT) energy when every composition's lowest carries it, else by the ranking
    energy, whose measured error is noted."""
    best = [r for r in rows if r.rank == 1 and r.result is not None]
    if len({r.formula for r in best}) < 3:
        return None, None
    if len({r.method for r in best}) > 1:
        notes.append("no mixing energies: the lowest structures were ranked by different methods")
        return None, None
    method = population_energy([r.result for r in best])
    lowest = {r.formula: r.result.energy_by(method) for r in best}
    try:
        pair = detect_mixing_pair(list(lowest))
        points = mixing_energies(lowest, pair)
    except ValueError as exc:
        notes.append(f"no mixing energies: {exc}")
        return None, None
    error = measured_error(method)
    notes.append(f"mixing energies by {method}" + (f" ({error})" if error else "")
                 + ("" if is_reference(method) else "; the reference (DFT) energy is not on every composition's lowest"))
    return points, pair


__all__ = ["Analysis", "Candidate", "analyse", "SAXS_DIAMETER_NM", "covered_to_nm", "nm_to_ev"]
