"""A realistic synthetic England-like registered population (practices, people, conditions, activity).

Public API::

    from riskcap.synthetic import SynthConfig, generate, generate_tables, write_population
    summary = write_population("synth", SynthConfig(people=20_000, seed=1))

Dates of the simulated calendar (shared with features and models): the simulation ends on
2025-03-31; ``TRAIN_INDEX_DATE`` (2023-04-01) and ``EVAL_INDEX_DATE`` (2024-04-01) are the
default index dates, ``YEAR_STARTS`` the default years' first days.
"""
from riskcap.synthetic.calendar import (
    DEFAULT_YEARS,
    END_DATE,
    EVAL_INDEX_DATE,
    START_DATE,
    TRAIN_INDEX_DATE,
    Calendar,
)
from riskcap.synthetic.pipeline import (
    DEFAULT_PEOPLE,
    DEFAULT_SEED,
    Partition,
    SynthConfig,
    WriteSummary,
    generate,
    generate_tables,
    write_population,
)

#: First day of each default simulated year (2020-04-01 .. 2024-04-01).
YEAR_STARTS = tuple(Calendar(DEFAULT_YEARS).year_start_dates)

__all__ = [
    "Calendar", "DEFAULT_PEOPLE", "DEFAULT_SEED", "DEFAULT_YEARS", "END_DATE", "EVAL_INDEX_DATE", "Partition",
    "START_DATE", "SynthConfig", "TRAIN_INDEX_DATE", "WriteSummary", "YEAR_STARTS", "generate", "generate_tables",
    "write_population",
]
