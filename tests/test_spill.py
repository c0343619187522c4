"""The one spill of streamed runs (riskcap.stream.spill): tables back as they went in, nothing left behind."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings, strategies as st

from riskcap.stream.spill import Spill


@settings(max_examples=30, deadline=None)
@given(st.lists(st.lists(st.integers(-2**40, 2**40), max_size=50), min_size=1, max_size=6))
def test_tables_come_back_by_position_and_a_column_over_all_of_them(sizes_and_values):
    tables = [pa.table({"a": np.asarray(v, dtype=np.int64), "b": np.asarray(v, dtype=np.int64) % 7})
              for v in sizes_and_values]
    with Spill() as spill:
        for t in tables:
            spill.append(t)
        assert len(spill) == len(tables) and spill.rows == sum(len(t) for t in tables)
        for i in reversed(range(len(tables))):
            assert spill.read(i).equals(tables[i])
            assert spill.read(i, ["b"]).equals(tables[i].select(["b"]))
        column = spill.column("a", np.int64)
        assert column.dtype == np.int64
        assert np.array_equal(column, np.concatenate([t["a"].to_numpy() for t in tables]))


def test_frames_round_trip_with_missing_values_and_text():
    frame = pd.DataFrame({"person_id": np.arange(5, dtype=np.int64), "p": [0.1, np.nan, 0.3, 0.4, 0.5],
                          "reason_1": ["x", "", "y", "", "z"]})
    with Spill() as spill:
        spill.append(frame.iloc[:2])
        spill.append(frame.iloc[2:].reset_index(drop=True))
        pd.testing.assert_frame_equal(spill.read(1).to_pandas(), frame.iloc[2:].reset_index(drop=True))
        assert np.array_equal(spill.column("p", np.float64), frame["p"].to_numpy(), equal_nan=True)


def test_the_file_has_no_name_and_a_missing_folder_is_an_error(tmp_path):
    with Spill(tmp_path) as spill:
        spill.append(pa.table({"a": [1, 2, 3]}))
        assert list(tmp_path.iterdir()) == []
    with pytest.raises(FileNotFoundError):
        Spill(tmp_path / "absent")
