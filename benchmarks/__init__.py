"""Speed and quality benchmarks of airss-msc and the reference set they are judged on.

Run a benchmark from the repository root as a module, e.g. ``python -m benchmarks.quick``;
modules import each other as ``benchmarks.<name>`` and find files through
:mod:`benchmarks.paths`. This file imports nothing: several scripts set the thread variables of
OpenMP/BLAS before NumPy is first imported.
"""
