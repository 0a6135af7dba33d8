"""Making structures: random starts, symmetric starts, substitution, search moves and ligands.

Pure geometry on :class:`ase.Atoms` (no energies; Angstrom throughout). Main entry
points:

- :mod:`airss_msc.generation.generate`: :func:`~airss_msc.generation.generate.generate_cluster`
  and :func:`~airss_msc.generation.generate.generate_many` with
  :class:`~airss_msc.generation.generate.GeneratorSettings`, the ``generate`` stage (the
  AIRSS ``buildcell`` for clusters: reproducible from a seed);
- :mod:`airss_msc.generation.separations` (per species-pair minimum separations, like
  ``MINSEP``), :mod:`airss_msc.generation.confinement` (sphere, ellipsoid, shell) and
  :mod:`airss_msc.generation.symmetry` (point-group symmetric starts), which the
  generator combines;
- :mod:`airss_msc.generation.substitute`:
  :func:`~airss_msc.generation.substitute.substituted_structures`, the symmetry-distinct
  substitutions into a parent cluster (``--template ... --substitute Se:Te=2``);
- :mod:`airss_msc.generation.moves`: the search moves (shake, twist, swap, homotop,
  cut-and-splice, ...);
- :mod:`airss_msc.generation.geometry`: bonds, contacts, fragments, anion-anion bonds and
  :func:`~airss_msc.generation.geometry.point_group`;
- :mod:`airss_msc.generation.ligands`: model amine ligands capping surface cations.
"""
