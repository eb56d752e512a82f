"""Benchmarks: programs that print figures (`make bench`), never timed tests.

`python -m chute.bench` builds deterministic data sets, runs chute, restic
and borg on them phase by phase and writes a table of wall and CPU time,
peak memory and repository size, with chute/restic and chute/borg ratios.

Words used across the package:
- *profile*: the sizes of the data sets (`full` or `quick`);
- *data area*: where the data sets are cached between runs;
- *scratch area*: a fresh file system per repetition for repositories,
  the live copy of the source and the restored trees;
- *phase*: one step measured for every tool (init, backups, restore, ...).
"""
