"""Computing energies: the engine registry and the relaxation, single-point and excitation jobs.

Each job takes one structure and one canonical method name (``chgnet``,
``sevennet``, ``GFN2-xTB``, ``pyscf:PBE/def2-SVP``, ...; ``airss-msc methods``
lists them) and never raises for a failed calculation: failures become statuses.
Main entry points:

- :mod:`airss_msc.calc.relax`: :func:`~airss_msc.calc.relax.relax_structure` with
  :class:`~airss_msc.calc.relax.RelaxSettings` (staged protocols, SCF recovery
  ladder, sanity guards), returning a :class:`~airss_msc.results.record.Result`;
- :mod:`airss_msc.calc.relax_batch`: :func:`~airss_msc.calc.relax_batch.relax_batch`, many
  clusters relaxed together with one model call per optimizer step (FIRE; CHGNet,
  SevenNet, Lennard-Jones), with the statuses and records of ``relax_structure``;
- :mod:`airss_msc.calc.single_point`: :func:`~airss_msc.calc.single_point.single_point`,
  energy and HOMO-LUMO gap (eV) without relaxing;
- :mod:`airss_msc.calc.excite`: :func:`~airss_msc.calc.excite.excite`, TDA-TDDFT
  vertical excitations (PySCF);
- :mod:`airss_msc.calc.engines`: the registry behind them (CHGNet, SevenNet,
  tblite and xtb-python xTB, GFN-FF, PySCF, Lennard-Jones for tests):
  :func:`~airss_msc.calc.engines.parse_method`,
  :func:`~airss_msc.calc.engines.make_calculator`, capabilities, measured errors;
- :mod:`airss_msc.calc.sanity` (physical-sanity verdicts),
  :mod:`airss_msc.calc.threads` (how many threads each process computes with) and
  :mod:`airss_msc.calc.progress` (progress lines from long DFT jobs: SCF cycles,
  Davidson iterations, through a log callable).

Engines are imported on first use, so importing this package loads no torch or
PySCF.
"""
