"""riskcap.data.dates: the data's end, and each stage's default index date from it."""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from riskcap.data.dates import (YEARS_BEFORE_END, IndexDate, data_end, default_index_date, index_date_for,
                                years_before)
from riskcap.errors import DataError

pytestmark = pytest.mark.unit


def _activity(folder, start, end, suffix=".parquet", row_group_size=None):
    table = pa.table({"person_id": pa.array(range(len(start)), pa.int64()),
                      "start_date": pa.array(start, pa.date32()), "end_date": pa.array(end, pa.date32())})
    folder.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        table.to_pandas().to_csv(folder / "activity.csv", index=False)
    else:
        pq.write_table(table, folder / "activity.parquet", row_group_size=row_group_size)
    return folder


D = dt.date


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_the_data_end_the_day_after_the_last_start_or_end(tmp_path, suffix):
    folder = _activity(tmp_path, [D(2025, 1, 1), D(2026, 2, 27), None], [D(2026, 3, 2), None, None], suffix)
    end = data_end(folder)
    assert end == IndexDate(D(2026, 3, 3), "the day after the last recorded activity, 2026-03-02")


def test_statistics_of_every_row_group_count(tmp_path):
    folder = _activity(tmp_path, [D(2020, 1, 1), D(2021, 1, 1), D(2022, 6, 30)], [None, None, None],
                       row_group_size=1)
    assert pq.ParquetFile(folder / "activity.parquet").metadata.num_row_groups == 3
    assert data_end(folder).date == D(2022, 7, 1)


def test_a_declared_extract_date_wins(tmp_path):
    folder = _activity(tmp_path, [D(2025, 1, 1)], [None])
    (folder / "extract.json").write_text(json.dumps({"extract_date": "2025-02-10"}))
    assert data_end(folder) == IndexDate(D(2025, 2, 10), "extract_date in extract.json")
    (folder / "extract.json").write_text(json.dumps({"extract": "2025-02-10"}))
    with pytest.raises(DataError, match='extract.json: expected {"extract_date": "YYYY-MM-DD"}'):
        data_end(folder)


def test_no_dates_at_all_says_what_to_do(tmp_path):
    folder = _activity(tmp_path, [None], [None])
    with pytest.raises(DataError, match="no start_date or end_date to tell where the data end"):
        data_end(folder)


def test_each_stage_counts_whole_years_back(tmp_path):
    folder = _activity(tmp_path, [D(2026, 2, 28)], [None])  # the data end on 2026-03-01
    dates = {stage: default_index_date(stage, folder).date for stage in YEARS_BEFORE_END}
    assert dates == {"score": D(2026, 3, 1), "casefind": D(2026, 3, 1), "evaluate": D(2025, 3, 1),
                     "capitation": D(2025, 3, 1), "train": D(2024, 3, 1)}
    assert default_index_date("train", folder).source.startswith("two years before the data's end, 2026-03-01")
    assert index_date_for("train", folder, D(2020, 4, 1)) == IndexDate(D(2020, 4, 1), "given")


def test_a_leap_day_goes_back_to_the_28th():
    assert years_before(D(2024, 2, 29), 1) == D(2023, 2, 28)
    assert years_before(D(2024, 2, 29), 4) == D(2020, 2, 29)
    assert years_before(pd.Timestamp("2025-04-01").date(), 2) == D(2023, 4, 1)


def test_the_synthetic_calendar_gives_the_usual_dates():
    """On the committed sample (2020-04-01 to 2025-03-31): train 2023-04-01, evaluate 2024-04-01."""
    sample = Path(__file__).resolve().parents[1] / "synthetic_data"
    assert default_index_date("train", sample).date == D(2023, 4, 1)
    assert default_index_date("capitation", sample).date == D(2024, 4, 1)
    assert default_index_date("score", sample).date == D(2025, 4, 1)
