"""airss-msc: ab initio random structure search for alloy magic-size clusters.

Stages (each a module and an ``airss-msc`` subcommand): ``generate`` random
clusters, ``relax`` them with xTB, ``search`` (both, resumable), ``rank`` and
``report``. Structures travel between stages as :class:`ase.Atoms` and as
plain extxyz / ASE-database files.
"""

__version__ = "0.1.0"
