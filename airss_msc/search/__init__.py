"""Running many jobs: the structure search, the stored-row workflows, studies and the task farm.

Main entry points:

- :mod:`airss_msc.search.candidates`: :func:`~airss_msc.search.candidates.run_search`,
  the ``search`` stage (generate and relax candidates, moves steered by the
  ranking energy over a :class:`~airss_msc.search.pool.Pool` of the lowest unique
  minima; resumable), configured by :func:`~airss_msc.search.config.load_config`
  (:mod:`airss_msc.search.config`, a TOML file) and
  :mod:`airss_msc.search.strategy`;
- :mod:`airss_msc.search.files`: :func:`~airss_msc.search.files.relax_file`, the
  ``relax`` stage over a structure file;
- :mod:`airss_msc.search.rows`: :func:`~airss_msc.search.rows.run_rows`, the
  ``refine``, ``rescore``, ``spectrum`` and ``cap`` workflows over stored rows;
- :mod:`airss_msc.search.study`: :func:`~airss_msc.search.study.run_study`, one
  config chaining the search, the row workflows and the report;
- :mod:`airss_msc.search.farm` and :mod:`airss_msc.search.parallel`: the task farm
  every workflow runs on, in process or over MPI ranks, or on a Dask cluster
  (:mod:`airss_msc.search.distributed`);
  :mod:`airss_msc.search.progress` reports its progress (a live bar or log lines).
"""
