"""Benchmarks of the online migration engine against what a team would use instead.

`python -m bench.run --scale medium` (or `make bench`) seeds a legacy database, then measures
each contender on a fresh copy of it, with the same live load running: see bench/README.md.
Not part of the test suite: it takes minutes and its figures depend on the machine.
"""
