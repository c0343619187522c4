"""Where a data folder's data end, and the index date each stage takes by default.

The data's end is the first day the data do not cover: the extract date the folder declares
in ``extract.json`` (``{"extract_date": "YYYY-MM-DD"}``, the day the data were extracted), or
else the day after the last recorded activity (the latest ``start_date`` or ``end_date`` in
the activity table, from the parquet statistics when they settle it). Each stage's default
index date is a whole number of calendar years before it (:data:`YEARS_BEFORE_END`):

- ``score``, ``casefind``: the data's end (everyone registered now);
- ``evaluate``, ``capitation``: one year before, the latest index date whose outcome year
  is complete, so the back-test and the evaluation can run;
- ``train``: two years before, so that evaluating at the default date is temporal validation.

Defaults never come from the synthetic generator's calendar: real data from 2026 are scored
in 2026. Every command prints the date it chose and why, and records both (:class:`IndexDate`).
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from riskcap.data.read import cannot_read, parquet_files, parquet_schema, parse_series, read_raw, table_path
from riskcap.data.write import write_json
from riskcap.errors import DataError

#: The file a data folder may declare its extract date in, and the key.
EXTRACT_FILE = "extract.json"
EXTRACT_KEY = "extract_date"
#: Activity columns whose latest date ends the data.
_DATE_COLUMNS = ("start_date", "end_date")
#: Whole calendar years between each stage's default index date and the data's end.
YEARS_BEFORE_END = {"score": 0, "casefind": 0, "evaluate": 1, "capitation": 1, "train": 2}
_WHY = {0: "the data's end ({why})",
        1: "one year before the data's end, {end} ({why}): the latest whose outcome year is complete",
        2: "two years before the data's end, {end} ({why}), so evaluating a year later is temporal validation"}


@dataclass(frozen=True)
class IndexDate:
    """An index date and where it came from (recorded beside it in summaries and manifests)."""

    date: dt.date
    source: str

    def as_dict(self) -> dict:
        return {"date": self.date.isoformat(), "source": self.source}

    def __str__(self) -> str:
        return f"{self.date.isoformat()}: {self.source}"


def data_end(data_dir: str | Path) -> IndexDate:
    """The first day the data in ``data_dir`` do not cover, and how it was found."""
    data_dir = Path(data_dir)
    declared = data_dir / EXTRACT_FILE
    if declared.exists():
        return IndexDate(_extract_date(declared), f"{EXTRACT_KEY} in {EXTRACT_FILE}")
    path = table_path(data_dir, "activity")
    last = _last_date(path)
    if last is None:
        raise DataError(f"{path}: no start_date or end_date to tell where the data end; give an index date, or "
                        f"declare the extract date in {data_dir / EXTRACT_FILE} as "
                        f'{{"{EXTRACT_KEY}": "YYYY-MM-DD"}}')
    return IndexDate(last + dt.timedelta(days=1), f"the day after the last recorded activity, {last.isoformat()}")


def default_index_date(stage: str, data_dir: str | Path) -> IndexDate:
    """The index date ``stage`` (a key of :data:`YEARS_BEFORE_END`) takes when none is given."""
    years = YEARS_BEFORE_END[stage]
    end = data_end(data_dir)
    return IndexDate(years_before(end.date, years), _WHY[years].format(end=end.date.isoformat(), why=end.source))


def index_date_for(stage: str, data_dir: str | Path, given: dt.date | None = None) -> IndexDate:
    """``given`` (recorded as given), else the stage's default from the data."""
    if given is not None:
        return IndexDate(given, "given")
    return default_index_date(stage, data_dir)


def years_before(date: dt.date, years: int) -> dt.date:
    """The same calendar day ``years`` years earlier (29 February becomes the 28th)."""
    return (pd.Timestamp(date) - pd.DateOffset(years=years)).date()


def declare_extract_date(data_dir: str | Path, date: dt.date) -> Path:
    """Write ``date`` as the extract date of ``data_dir`` (:data:`EXTRACT_FILE`), where
    :func:`data_end` reads it: a writer that knows when its data were extracted says so."""
    return write_json({EXTRACT_KEY: date.isoformat()}, Path(data_dir) / EXTRACT_FILE)


def _extract_date(path: Path) -> dt.date:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))[EXTRACT_KEY]
        return dt.date.fromisoformat(value)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise DataError(f'{path}: expected {{"{EXTRACT_KEY}": "YYYY-MM-DD"}} ({type(exc).__name__}: {exc})') from exc


def _last_date(path: Path) -> dt.date | None:
    """The latest activity date: from the parquet statistics when every row group has them,
    else read (bad values are the validator's to report, so they are skipped here)."""
    if path.suffix != ".csv":
        try:
            last = _last_date_from_statistics(path)
        except (OSError, pa.ArrowException) as exc:
            raise cannot_read(path, exc) from exc
        if last is not False:
            return last
    columns = None if path.suffix == ".csv" else [c for c in _DATE_COLUMNS if c in parquet_schema(path).names]
    table = read_raw(path, columns=columns)
    latest = [parse_series(table.column(c).to_pandas(), "date")[0].max() for c in _DATE_COLUMNS
              if c in table.column_names]
    latest = [d for d in latest if not pd.isna(d)]
    return max(latest).date() if latest else None


def _last_date_from_statistics(path: Path) -> dt.date | None | bool:
    """The latest date in the date columns' statistics, None when there are no dates, or
    False when some row group's statistics do not settle it (not a date type, or absent)."""
    files = parquet_files(path)
    last = None
    for file in files:
        meta = pq.ParquetFile(file).metadata
        schema = meta.schema.to_arrow_schema()
        for name in _DATE_COLUMNS:
            if name not in schema.names:
                continue
            if not pa.types.is_date32(schema.field(name).type):
                return False
            k = schema.get_field_index(name)
            for g in range(meta.num_row_groups):
                column = meta.row_group(g).column(k)
                stats = column.statistics
                if stats is None:
                    return False
                if not stats.has_min_max:
                    if stats.null_count == column.num_values:
                        continue  # every value null
                    return False
                last = stats.max if last is None else max(last, stats.max)
    return last
