"""The simulated calendar: financial years ending on a fixed date, as int32 day numbers.

Days are counted from 1970-01-01 (as :func:`riskcap.data.read.days` does), so dates are cheap
integers inside the generator and become arrow ``date32`` columns on the way out.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

EPOCH = dt.date(1970, 1, 1)

#: Last simulated day is the day before this (the simulation ends on 2025-03-31).
END_DATE = dt.date(2025, 4, 1)
#: Default number of simulated financial years: 2020-04-01 .. 2025-03-31.
DEFAULT_YEARS = 5
#: Default start of the simulation.
START_DATE = dt.date(END_DATE.year - DEFAULT_YEARS, 4, 1)
#: Index date for training: 3 years of look-back, outcome year 2023/24.
TRAIN_INDEX_DATE = dt.date(2023, 4, 1)
#: Index date for (temporal) evaluation: outcome year 2024/25, the last simulated year.
EVAL_INDEX_DATE = dt.date(2024, 4, 1)


def day_number(date: dt.date) -> int:
    """Days since 1970-01-01."""
    return (date - EPOCH).days


def to_date(day: int) -> dt.date:
    """The date of a day number."""
    return EPOCH + dt.timedelta(days=int(day))


@dataclass(frozen=True)
class Calendar:
    """``years`` financial years (1 April to 31 March) ending the day before :data:`END_DATE`.

    The end stays fixed whatever ``years`` is, so TRAIN_INDEX_DATE and EVAL_INDEX_DATE
    keep their meaning; ``years`` only changes how much history there is.
    """

    years: int = DEFAULT_YEARS

    def __post_init__(self):
        if not 1 <= int(self.years) <= 30:
            raise ValueError(f"years must be between 1 and 30, got {self.years}")

    @property
    def year_start_dates(self) -> list[dt.date]:
        """First day (1 April) of each simulated year, oldest first."""
        first = END_DATE.year - self.years
        return [dt.date(first + k, 4, 1) for k in range(self.years)]

    @property
    def year_starts(self) -> np.ndarray:
        """Day numbers of the year starts plus the (exclusive) end: shape (years + 1,)."""
        dates = self.year_start_dates + [END_DATE]
        return np.array([day_number(d) for d in dates], dtype=np.int32)

    @property
    def start_day(self) -> int:
        return int(self.year_starts[0])

    @property
    def end_day(self) -> int:
        """Exclusive end: the first day after the simulation."""
        return int(self.year_starts[-1])

    @property
    def month_starts(self) -> np.ndarray:
        """Day numbers of the first of each month, shape (years, 13): 12 months plus the next year's start."""
        out = np.empty((self.years, 13), dtype=np.int32)
        for t, start in enumerate(self.year_start_dates):
            for m in range(13):
                month = (start.month - 1 + m) % 12 + 1
                year = start.year + (start.month - 1 + m) // 12
                out[t, m] = day_number(dt.date(year, month, 1))
        return out
