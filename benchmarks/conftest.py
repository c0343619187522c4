"""Benchmark sizes: CI runs the smallest only; ``--bench-sizes`` picks larger ones.

Any benchmark taking the ``population_size`` fixture is parametrised over the chosen sizes::

    pytest benchmarks --bench-sizes 100000,1000000 --benchmark-json out.json
"""
from __future__ import annotations

SMOKE_SIZE = 20_000


def pytest_addoption(parser):
    parser.addoption(
        "--bench-sizes",
        default=str(SMOKE_SIZE),
        help="comma-separated population sizes for benchmarks (default: a smoke-test size)",
    )


def pytest_generate_tests(metafunc):
    if "population_size" in metafunc.fixturenames:
        sizes = [int(s.replace("_", "")) for s in metafunc.config.getoption("--bench-sizes").split(",")]
        metafunc.parametrize("population_size", sizes, ids=[f"n={s:_}" for s in sizes])
