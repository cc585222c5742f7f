"""Benchmarks (outside ``make test``): ``make bench``; see ``docs/performance.md``."""
