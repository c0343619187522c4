"""Streaming a population one ``person_id`` range at a time, on one machine or a Dask cluster.

- :mod:`~riskcap.stream.plan`: the ranges of a run (the reading of one is :mod:`riskcap.data.load`);
- :mod:`~riskcap.stream.engines`: the local engine and the contract every engine keeps;
  :mod:`~riskcap.stream.dask` the Dask one;
- :mod:`~riskcap.stream.memory`: keep freed memory while partitions stream, give it back
  before the population-wide steps;
- :mod:`~riskcap.stream.threads`: how many threads numba's kernels use.
"""
