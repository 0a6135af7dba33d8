"""What a report shows, computed once from a results database (no files, no formatting).

The ranked unique minima per composition, their fingerprints against
experiment (size against SAXS, gap and first bright excitation against the
measured bands, calibrated band estimates where a calibration is given),
the verdict per measured band (which structures' first bright excitation
lies within the method's error of it, which were not computed far enough),
mixing energies against the binary end members, every method whose energies
or spectra the database holds, and where validated energies disagree.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from airss_msc.analysis.bands import (
    COMPUTABLE_HEAVY_ATOMS,
    HC_EV_NM,
    RIS_MAP_FILE,
    Band,
    Calibration,
    GapMap,
    LiteraturePair,
    ev_to_nm,
    load_bands,
    load_calibration,
    load_gap_map,
    load_literature_pairs,
    match_bands,
    nm_to_ev,
)
from airss_msc.analysis.energetics import MixingPoint, detect_mixing_pair, mixing_energies
from airss_msc.analysis.rank import (
    RankedRow,
    _minimised,
    known_energy,
    load_results,
    merge_copies,
    population_energy,
    rank_results,
    ranking_energy,
    validated_disagreement,
    validated_energy,
)
from airss_msc.analysis.reactions import ReactionEnergy, reaction_energy, series_pathways
from airss_msc.analysis.saxs import equivalent_diameter_nm, radius_of_gyration
from airss_msc.analysis.sites import SiteOccupation, site_occupation
from airss_msc.analysis.spectra import BRIGHT_F, TDDFT_ERROR_EV, band_window_nm, covered_to_nm, first_bright_nm
from airss_msc.calc.engines import (
    VALIDATED_RANKING,
    band_ready,
    is_reference,
    measured_error,
    parse_method,
    preferred_excitation_method,
)
from airss_msc.composition import parse_formula
from airss_msc.errors import InputError
from airss_msc.generation.ligands import LIGANDS
from airss_msc.results.record import Excitations, JobStatus, Result, Status

#: Overall cluster size measured by SAXS (Beaucage model) for the CdTe, CdSe and
#: mixed samples of the seed paper, nm.
SAXS_DIAMETER_NM = (0.8, 1.0)


@dataclass
class Candidate:
    """A ranked unique minimum with the fingerprints compared to experiment.

    excitations: the best available excitation calculation (method named in it);
    bright_nm/bright_f: its first bright excitation; band_nm (+- band_unc_nm):
    calibrated gap estimate; matches: measured bands within the uncertainty;
    estimate_nm (estimate_window_nm: shortest, longest): the first bright excitation
    estimated by a packaged map (:class:`GapMap`, ``estimate_by``) from a stored TDA-ris spectrum
    or else from a stored gap, its window the map's error and the TDDFT error against
    experiment in quadrature.
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
    estimate_nm: float | None = None
    estimate_window_nm: tuple[float, float] | None = None
    estimate_by: GapMap | None = None

    @property
    def in_saxs_range(self) -> bool | None:
        """Whether the SAXS-equivalent diameter lies in the measured range, at the 0.01 nm the
        report shows (a diameter shown as 0.80 must not read 'outside 0.8-1.0')."""
        if self.diameter_nm is None:
            return None
        return SAXS_DIAMETER_NM[0] <= round(self.diameter_nm, 2) <= SAXS_DIAMETER_NM[1]

    @property
    def label(self) -> str:
        """How a person names this structure: formula, rank and database row."""
        return f"{self.row.formula} #{self.row.rank} (row {self.row.id})"

    @property
    def shift_only_spectra(self) -> list[str]:
        """Methods of this structure's stored spectra that are no band as computed (TDA-ris: they
        enter only through a map, as :attr:`estimate_nm`), by name."""
        stored = self.row.result.excitations if self.row.result is not None else {}
        return sorted(
            m for m, e in stored.items() if e.status == JobStatus.DONE and len(e.energies_eV) and not band_ready(m)
        )


#: Elements of the model ligands of capped copies: not part of a cluster's material.
LIGAND_ELEMENTS = frozenset(s for make in LIGANDS.values() for s in make().symbols)


def _elements(formula: str) -> frozenset[str]:
    return frozenset(re.findall(r"[A-Z][a-z]?", formula))


def band_applies(band: Band, formula: str) -> bool:
    """Whether a structure of ``formula`` can be the cluster behind ``band``: its elements, less
    any ligand's, are those of the band's material (a CdSe cluster is not a CdTeSe MSC). A band
    with no material applies to every structure."""
    if not band.material:
        return True
    return _elements(band.material) == _elements(formula) - LIGAND_ELEMENTS


#: How each structure's spectrum bears on one measured band (see :func:`judge`).
CONSISTENT, ELSEWHERE, DARK, UNREACHED, NOT_COMPUTED = "consistent", "elsewhere", "dark", "unreached", "not computed"


def judge(cand: Candidate, band: Band, error_eV: float = TDDFT_ERROR_EV) -> str:
    """One structure against one band: CONSISTENT (its first bright excitation lies within
    ``error_eV`` of the band), ELSEWHERE (its first bright excitation is outside that window),
    DARK (no bright state although the computed states reach past the window), UNREACHED (no
    bright state, and the states stop short of the window: more states are needed) or
    NOT_COMPUTED (no spectrum)."""
    if cand.excitations is None:
        return NOT_COMPUTED
    if cand.bright_nm is not None:
        return CONSISTENT if abs(HC_EV_NM / cand.bright_nm - band.energy_eV) <= error_eV else ELSEWHERE
    reach = covered_to_nm(cand.excitations)
    shortest, _ = band_window_nm(band.energy_eV, error_eV)
    return DARK if reach is not None and reach <= shortest else UNREACHED


def states_to_reach(excitations: Excitations, energy_eV: float) -> int | None:
    """About how many states reach ``energy_eV`` (eV), extrapolating the computed states' mean
    density linearly; a lower bound, since the density of states grows with energy. None with
    fewer than two distinct states."""
    e = sorted(float(x) for x in excitations.energies_eV)
    if len(e) < 2 or e[-1] <= e[0]:
        return None
    if energy_eV <= e[-1]:
        return len(e)
    return math.ceil(1 + (len(e) - 1) * (energy_eV - e[0]) / (e[-1] - e[0]))


@dataclass
class BandVerdict:
    """Which computed structures one measured band is consistent with, and why not the others."""

    band: Band
    judged: dict[str, list[Candidate]]

    def of(self, kind: str) -> list[Candidate]:
        return self.judged.get(kind, [])

    @property
    def applicable(self) -> list[Candidate]:
        """Every structure of the band's material shown in the report."""
        return [c for cands in self.judged.values() for c in cands]

    @property
    def window_nm(self) -> tuple[float, float]:
        """Wavelengths (nm) a first bright excitation may have to be consistent with the band."""
        return band_window_nm(self.band.energy_eV)


@dataclass(frozen=True)
class MethodUse:
    """One method as it ran on the database: role (relaxation, single point, excitations),
    how many rows it covers, and details (engine versions, states)."""

    role: str
    method: str
    rows: int
    detail: str = ""


def copies_of(results: list[Result], energy: str | None) -> dict[tuple[str, int | None], tuple[str, int | None]]:
    """(source, row id) of every merged copy -> (source, row id) of the row the ranking shows for it.

    Redone with the ranking's own merge (:func:`~airss_msc.analysis.rank.merge_copies`, its inputs
    and default tolerances), since the ranked rows keep only a count of their copies.
    """
    defaults = inspect.signature(rank_results).parameters
    tol = {k: defaults[k].default for k in ("energy_tol", "rmsd_tol")}
    canonical = str(parse_method(energy)) if energy else None
    groups: dict[tuple[str, str], list[tuple[Result, Result]]] = {}
    for res in results:
        if res.status != Status.RELAXED:
            continue
        value = res.energy_by(canonical) if canonical else res.energy
        if value is None:
            continue
        scored = replace(res, energy=value, method=canonical or res.method)
        groups.setdefault((res.composition, scored.method), []).append((scored, res))
    out = {}
    for pairs in groups.values():
        if len(pairs) < 2:
            continue
        pairs.sort(key=lambda p: known_energy(p[0].energy))
        for members in merge_copies([s for s, _ in pairs], [_minimised(r) for _, r in pairs], **tol):
            shown = pairs[members[0]][1]
            out.update({(pairs[i][1].source, pairs[i][1].id): (shown.source, shown.id) for i in members[1:]})
    return out


def methods_used(results: list[Result]) -> list[MethodUse]:
    """Every method whose energies or spectra the results hold, by role, in pipeline order."""
    out: list[MethodUse] = []
    relaxed: dict[str, list[Result]] = {}
    for r in results:
        if r.method:
            relaxed.setdefault(r.method, []).append(r)
    for method, rows in sorted(relaxed.items(), key=lambda kv: -len(kv[1])):
        kinds = [
            f"{n} {what}"
            for what, key in (("DFT refinements (refine --relax)", "refined_from"), ("capped copies", "bare_parent"))
            if (n := sum(key in r.provenance for r in rows))
        ]
        versions = sorted({r.engine_version for r in rows if r.engine_version})
        out.append(MethodUse("relaxation", method, len(rows), "; ".join(versions + kinds)))
    points: dict[str, int] = {}
    for r in results:
        for m in r.energies:
            if m != r.method:
                points[m] = points.get(m, 0) + 1
    out += [
        MethodUse(
            "single-point energy",
            m,
            n,
            "validated ranking energy" if m == VALIDATED_RANKING else ("reference (DFT)" if is_reference(m) else ""),
        )
        for m, n in sorted(points.items(), key=lambda kv: -kv[1])
    ]
    spectra: dict[str, list[Excitations]] = {}
    for r in results:
        for m, e in r.excitations.items():
            if e.status == JobStatus.DONE and len(e.energies_eV):
                spectra.setdefault(m, []).append(e)
    for m, done in sorted(spectra.items()):
        counts = sorted({len(e.energies_eV) for e in done})
        states = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        grounds = sorted({e.ground_method for e in done if e.ground_method})
        out.append(
            MethodUse(
                "excitations",
                m,
                len(done),
                f"{states} states" + (f" on the {', '.join(grounds)} ground state" if grounds else ""),
            )
        )
    return out


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
    mixing: list[MixingPoint] | None
    mixing_pair: tuple[str, str] | None
    notes: list[str]
    literature: list[LiteraturePair] = field(default_factory=list)
    #: every row of the database as loaded, K of the populations, each method by role
    results: list[Result] = field(default_factory=list)
    temperature: float = 298.15
    method_uses: list[MethodUse] = field(default_factory=list)
    #: the series' pathways (name, stepwise?, reaction energies by the ranking energy)
    reactions: list[tuple[str, bool, list[ReactionEnergy]]] = field(default_factory=list)
    #: where each element of a mixed sublattice sits in each composition's lowest structure
    sites: list[SiteOccupation] = field(default_factory=list)
    #: the method of the mixing energies (a DFT energy on every composition's lowest, else the ranking energy)
    mixing_energy: str | None = None
    #: the map from a stored gap onto the first bright excitation (None: no packaged map)
    gap_map: GapMap | None = None
    #: the map from a stored TDA-ris first bright singlet onto TDA-PBE0's (None: no packaged map)
    ris_map: GapMap | None = None

    def copies(self) -> dict[tuple[str, int | None], tuple[str, int | None]]:
        """Each merged copy's (source, row id) -> the shown row's (see :func:`copies_of`)."""
        return copies_of(self.results, self.energy)

    @property
    def calibrating_pairs(self) -> list[LiteraturePair]:
        """Published pairs firm and small enough to calibrate the computed excitations."""
        return [p for p in self.literature if p.calibrates(COMPUTABLE_HEAVY_ATOMS)]

    @property
    def disagreements(self) -> list[RankedRow]:
        """Ranked minima that a validated energy orders differently (unvalidated ones do not count)."""
        return [r for r in self.rows if validated_disagreement(r)]

    @property
    def target(self) -> Band | None:
        return next((b for b in self.bands if b.target), None)

    def _lowest_along_series(self, keep: Callable[[Candidate], object]) -> list[tuple[MixingPoint, Candidate]]:
        """Each composition's lowest structure for which ``keep(candidate)``, with its mixing point, in
        order of composition (empty without a series)."""
        if not self.mixing:
            return []
        lowest = {c.row.formula: c for c in self.candidates if c.row.rank == 1}
        pts = sorted(self.mixing, key=lambda p: p.x)
        return [(p, lowest[p.formula]) for p in pts if p.formula in lowest and keep(lowest[p.formula])]

    @property
    def band_trend(self) -> list[tuple[MixingPoint, Candidate]]:
        """The series' band trend: each composition's lowest structure that has a first bright
        excitation, with its mixing point, in order of composition (empty without a series)."""
        return self._lowest_along_series(lambda c: c.bright_nm)

    @property
    def estimated_trend(self) -> list[tuple[MixingPoint, Candidate]]:
        """Each composition's lowest structure that has no stored spectrum and whose first bright
        excitation is estimated by a map (:attr:`ris_map` from a TDA-ris spectrum, else :attr:`gap_map`
        from its gap), with its mixing point, in order of composition (never one of :attr:`band_trend`,
        which needs a spectrum that is a band)."""
        return self._lowest_along_series(lambda c: c.estimate_nm and c.excitations is None)

    @property
    def verdicts(self) -> list[BandVerdict]:
        """One verdict per measured band, the target first, then by wavelength; each band is judged
        against the structures of its material only (:func:`band_applies`)."""
        out = []
        for band in sorted(self.bands, key=lambda b: (not b.target, b.wavelength_nm)):
            judged: dict[str, list[Candidate]] = {}
            for c in self.candidates:
                if band_applies(band, c.row.formula):
                    judged.setdefault(judge(c, band), []).append(c)
            out.append(BandVerdict(band, judged))
        return out


def estimates_by_map(
    est: list[tuple[MixingPoint, Candidate]],
) -> list[tuple[GapMap, list[tuple[MixingPoint, Candidate]]]]:
    """``est`` grouped by the map that made each estimate, in order of first appearance."""
    groups: dict[int, tuple[GapMap, list[tuple[MixingPoint, Candidate]]]] = {}
    for p, c in est:
        if c.estimate_by is not None:
            groups.setdefault(id(c.estimate_by), (c.estimate_by, []))[1].append((p, c))
    return list(groups.values())


def _lowest_gap(rows: list[RankedRow], formula: str) -> float | None:
    best = [r for r in rows if r.formula == formula and r.rank == 1]
    return best[0].gap_eV if best else None


def _excitations_of(row: RankedRow) -> Excitations | None:
    stored = row.result.excitations if row.result is not None else {}
    done = {m: e for m, e in stored.items() if e.status == JobStatus.DONE and len(e.energies_eV)}
    # the engines rank excitation methods for the band estimate (Capabilities.excitation_rank)
    method = preferred_excitation_method(done)
    return None if method is None else done[method]


def analyse(
    db: str,
    top: int = 5,
    calibration_path: str | None = None,
    bands_path: str | None = None,
    temperature: float = 298.15,
    energy: str | None = None,
) -> Analysis:
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
    gap_map, ris_map = _packaged_map(None, "gaps", notes), _packaged_map(RIS_MAP_FILE, "TDA-ris spectra", notes)
    candidates = [
        _candidate(row, calibration, bands, gap_map, ris_map)
        for row in rows
        if row.rank is not None and row.rank <= top
    ]
    counts = {s: sum(r.status == s for r in results) for s in Status}
    mixing, pair, mixing_energy = _mixing(rows, notes)
    uses = methods_used(results)
    reactions = _reactions(results, energy, pair, notes)
    sites = _sites(rows, pair, mixing)
    return Analysis(
        db,
        energy,
        rows,
        candidates,
        {s: n for s, n in counts.items() if n},
        sorted({u.method for u in uses}),
        bands,
        calibration,
        mixing,
        pair,
        notes,
        load_literature_pairs(),
        results,
        temperature,
        uses,
        reactions,
        sites,
        mixing_energy,
        gap_map,
        ris_map,
    )


def _packaged_map(name: str | None, of: str, notes: list[str]) -> GapMap | None:
    """A packaged map (None: the gap map), its method spelled canonically (the key the stored values
    are under); a broken file costs the estimates, with a note, not the report."""
    try:
        m = load_gap_map() if name is None else load_gap_map(packaged=name)
    except InputError as exc:
        notes.append(f"no band estimates from {of}: {exc}")
        return None
    return None if m is None else replace(m, gap_method=str(parse_method(m.gap_method)))


def _candidate(
    row: RankedRow,
    calibration: Calibration | None,
    bands: list[Band],
    gap_map: GapMap | None = None,
    ris_map: GapMap | None = None,
) -> Candidate:
    assert row.result is not None, "a ranked row without its result"  # rank_results keeps every row's
    atoms = row.result.atoms
    # Electron-weighted size needs real elements (the LJ dummy X has Z = 0).
    has_electrons = bool(atoms.numbers.sum() > 0)
    cand = Candidate(
        row,
        radius_of_gyration(atoms) if has_electrons else None,
        equivalent_diameter_nm(atoms) if has_electrons else None,
    )
    if calibration is not None and row.gap_eV and row.wavelength_nm:
        est, unc = calibration.predict(row.gap_eV)
        cand.band_nm = ev_to_nm(est)
        if unc is not None:
            cand.band_unc_nm = abs(ev_to_nm(est - unc) - ev_to_nm(est + unc)) / 2.0
            cand.matches = match_bands(est, unc, bands)
    if row.status == Status.RELAXED:
        # a TDA-ris spectrum, shifted onto TDA-PBE0, before the gap: its map's error is the smaller
        # (BENCHMARKS.md, 'A cheaper band estimate')
        for m, value in ((ris_map, _ris_bright_eV(row, ris_map)), (gap_map, _gap_of(row, gap_map))):
            estimate = m.estimate_nm(value, TDDFT_ERROR_EV) if m is not None and value is not None else None
            if estimate is not None:
                cand.estimate_nm, cand.estimate_window_nm = estimate[0], (estimate[1], estimate[2])
                cand.estimate_by = m
                break
    exc = _excitations_of(row)
    if exc is not None:
        cand.excitations = exc
        bright = first_bright_nm(exc, BRIGHT_F)
        if bright is not None:
            cand.bright_nm, cand.bright_f = bright
            lo, hi = band_window_nm(HC_EV_NM / cand.bright_nm)
            cand.near_bright = [b for b in bands if lo <= b.wavelength_nm <= hi]
    return cand


def _gap_of(row: RankedRow, m: GapMap | None) -> float | None:
    return row.result.gap_by(m.gap_method) if m is not None and row.result is not None else None


def _ris_bright_eV(row: RankedRow, m: GapMap | None) -> float | None:
    """The first bright singlet (eV) of the row's stored spectrum by ``m``'s method (None: none)."""
    if m is None or row.result is None:
        return None
    exc = row.result.excitations.get(m.gap_method)
    if exc is None or exc.status != JobStatus.DONE or not len(exc.energies_eV):
        return None
    bright = exc.first_bright(BRIGHT_F)
    return None if bright is None else bright[0]


def _mixing(
    rows: list[RankedRow], notes: list[str]
) -> tuple[list[MixingPoint] | None, tuple[str, str] | None, str | None]:
    """(points, pair, method): mixing energies of the lowest minima, if the compositions form a
    pseudo-binary, by the reference (DFT) energy when every composition's lowest carries it, else
    by the ranking energy, whose measured error is noted."""
    best = [(r, r.result) for r in rows if r.rank == 1 and r.result is not None]
    if len({r.formula for r, _ in best}) < 3:
        return None, None, None
    if len({r.method for r, _ in best}) > 1:
        notes.append("no mixing energies: the lowest structures were ranked by different methods")
        return None, None, None
    method = population_energy([res for _, res in best])
    lowest = {r.formula: known_energy(res.energy_by(method)) for r, res in best}
    try:
        pair = detect_mixing_pair(list(lowest))
        lowest = _largest_series(lowest, pair)
        points = mixing_energies(lowest, pair)
    except ValueError as exc:
        notes.append(f"no mixing energies: {exc}")
        return None, None, None
    error = measured_error(method, max(p.n_atoms for p in points) if points else None)
    notes.append(
        f"mixing energies by {method}"
        + (f" ({error})" if error else "")
        + ("" if is_reference(method) else "; the reference (DFT) energy is not on every composition's lowest")
    )
    return points, pair, method


def _largest_series(lowest: dict, pair: tuple[str, str]) -> dict:
    """The compositions of the largest series mixing ``pair`` (same fixed sublattice and number of
    mixing sites): a study that also stores the small exchanged units of its reactions (CdSe,
    Cd2TeSe) has their series beside the 13-mers, and one hull is drawn over one series."""
    series: dict[tuple, dict] = {}
    for formula, energy in lowest.items():
        counts = parse_formula(formula)
        key = (
            tuple(sorted((el, n) for el, n in counts.items() if el not in pair)),
            sum(counts.get(el, 0) for el in pair),
        )
        series.setdefault(key, {})[formula] = energy
    return max(series.values(), key=len) if series else lowest


def _reactions(
    results: list[Result], energy: str | None, pair: tuple[str, str] | None, notes: list[str]
) -> list[tuple[str, bool, list[ReactionEnergy]]]:
    """The series' pathways (:func:`~airss_msc.analysis.reactions.series_pathways`) over the stored
    species, each at its lowest stored ``energy`` (the ranking energy)."""
    if pair is None or energy is None:
        return []
    formulas = sorted({r.composition for r in results if r.ok})
    out = []
    for pathway in series_pathways(formulas, pair):
        try:
            found = [reaction_energy(r, results, energy) for r in pathway.reactions]
        except InputError as exc:
            notes.append(f"reaction pathway {pathway.name} left out: {exc}")
            continue
        out.append((pathway.name, pathway.stepwise, found))
    return out


def _sites(rows: list[RankedRow], pair: tuple[str, str] | None, mixing: list | None) -> list[SiteOccupation]:
    """Where the second element of the mixing pair sits in each composition's lowest structure
    (of the mixing series only; both elements' sites are in each occupation)."""
    if pair is None or not mixing:
        return []
    series = {p.formula for p in mixing}
    out = []
    for r in rows:
        if r.rank == 1 and r.result is not None and r.formula in series:
            element = pair[1] if pair[1] in parse_formula(r.formula) else pair[0]
            out.append(site_occupation(r.result.atoms, element, pair, r.formula, r.result.id))
    return out


__all__ = [
    "SAXS_DIAMETER_NM",
    "Analysis",
    "BandVerdict",
    "Candidate",
    "MethodUse",
    "analyse",
    "band_applies",
    "covered_to_nm",
    "judge",
    "methods_used",
    "nm_to_ev",
    "states_to_reach",
    "validated_disagreement",
    "validated_energy",
]
