"""Analysis of stored results: ranking, energetics, spectra, mass spectra, size, and the report.

Everything here reads :class:`~airss_msc.results.record.Result` records (from a
results database or structure files) and computes nothing expensive. Main entry
points:

- :mod:`airss_msc.analysis.rank`: :func:`~airss_msc.analysis.rank.load_results` and
  :func:`~airss_msc.analysis.rank.rank_results`, the ``rank`` stage (per composition,
  lowest ranking energy first, duplicates merged, method disagreements flagged);
- :mod:`airss_msc.analysis.energetics`: mixing energies, the lower convex hull and
  Boltzmann populations of an alloy family;
- :mod:`airss_msc.analysis.reactions`: reaction energies of balanced equations between
  stored clusters (:func:`~airss_msc.analysis.reactions.reaction_energy`) and the stepwise
  substitution and cation-exchange pathways
  (:func:`~airss_msc.analysis.reactions.substitution_steps`);
- :mod:`airss_msc.analysis.sites`: which sites of a mixed sublattice each element takes
  (core or cage, by coordination; :func:`~airss_msc.analysis.sites.site_occupation`);
- :mod:`airss_msc.analysis.spectra` and :mod:`airss_msc.analysis.bands`: broadened
  absorption spectra from excitations, matched against the measured bands (with a
  gap calibration onto experiment, and the packaged maps of the PBE gap and of the
  TDA-ris-PBE first bright singlet onto the TDA-PBE0 first bright excitation,
  :func:`~airss_msc.analysis.bands.load_gap_map`);
- :mod:`airss_msc.analysis.isotopes`: isotope patterns of bare cluster ions
  (:func:`~airss_msc.analysis.isotopes.isotope_pattern`), and
  :mod:`airss_msc.analysis.peaks`: measured ESI-MS peak lists assigned to cluster
  formulas;
- :mod:`airss_msc.analysis.saxs`: radius of gyration and Guinier fits against SAXS;
- :mod:`airss_msc.analysis.duplicates`: species-aware duplicate detection;
- :mod:`airss_msc.analysis.report`: the ``report`` stage,
  :func:`~airss_msc.analysis.report.write_report` (HTML and Markdown).
"""
