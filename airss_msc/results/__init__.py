"""Results and their files: the typed record, the results database and structure formats.

Main entry points:

- :mod:`airss_msc.results.record`: :class:`~airss_msc.results.record.Result`, the one
  record every stage passes on (geometry, status, energies in eV, provenance), and
  :class:`~airss_msc.results.record.Excitations`;
- :mod:`airss_msc.results.store`: :class:`~airss_msc.results.store.ResultsDB`, an ASE
  SQLite database with one row per candidate (``ase db results.db`` lists it),
  written by one process at a time;
- :mod:`airss_msc.results.formats`: extxyz and AIRSS ``.res`` files
  (:func:`~airss_msc.results.formats.read_structures`,
  :func:`~airss_msc.results.formats.write_structures`,
  :func:`~airss_msc.results.formats.convert`) and the export of a database to
  ``.res`` files for ``cryan``.
"""
