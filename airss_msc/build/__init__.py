"""Making structures: random starts, symmetric starts, substitution, search moves and ligands.

Pure geometry on :class:`ase.Atoms` (no energies; Angstrom throughout). Main entry
points:

- :mod:`airss_msc.build.generate`: :func:`~airss_msc.build.generate.generate_cluster`
  and :func:`~airss_msc.build.generate.generate_many` with
  :class:`~airss_msc.build.generate.GeneratorSettings`, the ``generate`` stage (the
  AIRSS ``buildcell`` for clusters: reproducible from a seed);
- :mod:`airss_msc.build.separations` (per species-pair minimum separations, like
  ``MINSEP``), :mod:`airss_msc.build.confinement` (sphere, ellipsoid, shell) and
  :mod:`airss_msc.build.symmetry` (point-group symmetric starts), which the
  generator combines;
- :mod:`airss_msc.build.substitute`:
  :func:`~airss_msc.build.substitute.substituted_structures`, the symmetry-distinct
  substitutions into a parent cluster (``--template ... --substitute Se:Te=2``);
- :mod:`airss_msc.build.moves`: the search moves (shake, twist, swap, homotop,
  cut-and-splice, ...);
- :mod:`airss_msc.build.geometry`: bonds, contacts, fragments, anion-anion bonds and
  :func:`~airss_msc.build.geometry.point_group`;
- :mod:`airss_msc.build.ligands`: model amine ligands capping surface cations.
"""
