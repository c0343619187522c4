"""Feature building from events: riskcap's builder against the same windowed aggregation in DuckDB SQL.

Both start from the same parquet files of a synthetic population (``riskcap synth``) and
build, for everyone registered and alive at the index date (2024-04-01), the look-back
counts and costs and the outcome. riskcap reads the columns it needs
(``riskcap.features.read_feature_tables``: arrow, dictionary-encoded text, no validation,
like DuckDB) and runs ``build_features_partitioned`` (``build_features`` per 250,000-person
range, as ``riskcap score`` does; all ~110 columns), timed separately; DuckDB
(2 threads) runs one SQL query over the files computing six of them. The answers are compared column by column in the same run:

``emergency_admissions_0_12``, ``gp_0_12`` (sum of quantity), ``cost_total_0_12`` (to the
penny), ``days_since_ae`` (1461 when none in 3 years), ``ltc_heart_failure`` and
``y_emergency_12m``.

    pytest benchmarks/test_bench_features.py --bench-sizes 100000,1000000 -s

The population is generated once per size into a temporary folder (not timed). Times are
best of 3 (best of 2 at a million people and more); the machine may be shared.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskcap.bench import best_of
from riskcap.features import build_features_partitioned, months_before, read_feature_tables, to_date
from riskcap.synthetic import EVAL_INDEX_DATE, SynthConfig, write_population

INDEX_DATE = EVAL_INDEX_DATE
COMPARED = ["emergency_admissions_0_12", "gp_0_12", "cost_total_0_12", "days_since_ae", "ltc_heart_failure",
            "y_emergency_12m"]


@pytest.fixture(scope="module")
def data_dirs(tmp_path_factory):
    cache = {}

    def get(size: int):
        if size not in cache:
            out = tmp_path_factory.mktemp(f"synth_{size}")
            write_population(out, SynthConfig(people=size, seed=31))
            cache[size] = out
        return cache[size]

    return get


def duckdb_features(data_dir, threads: int = 2) -> pd.DataFrame:
    import duckdb

    idx = INDEX_DATE.isoformat()
    w12 = to_date(months_before(INDEX_DATE, 12)).isoformat()
    w36 = to_date(months_before(INDEX_DATE, 36)).isoformat()
    sql = f"""
    WITH people AS (
        SELECT person_id FROM read_parquet('{data_dir}/persons.parquet')
        WHERE birth_date <= DATE '{idx}' AND registered_from <= DATE '{idx}'
          AND (registered_to IS NULL OR registered_to > DATE '{idx}')
          AND (died_on IS NULL OR died_on > DATE '{idx}')
    ),
    events AS (
        SELECT a.person_id,
            SUM(CASE WHEN setting = 'emergency_inpatient' AND start_date >= DATE '{w12}' AND start_date < DATE '{idx}'
                     THEN 1 ELSE 0 END) AS emergency_admissions_0_12,
            SUM(CASE WHEN setting = 'gp' AND start_date >= DATE '{w12}' AND start_date < DATE '{idx}'
                     THEN COALESCE(quantity, 1) ELSE 0 END) AS gp_0_12,
            SUM(CASE WHEN start_date >= DATE '{w12}' AND start_date < DATE '{idx}'
                     THEN ROUND(cost_gbp * 100) ELSE 0 END) AS cost_pence_0_12,
            MAX(CASE WHEN setting = 'ae' AND start_date >= DATE '{w36}' AND start_date < DATE '{idx}'
                     THEN start_date END) AS last_ae,
            MAX(CASE WHEN setting = 'emergency_inpatient' AND start_date >= DATE '{idx}'
                          AND start_date < DATE '{idx}' + INTERVAL 365 DAY THEN 1 ELSE 0 END) AS y_emergency_12m
        FROM read_parquet('{data_dir}/activity.parquet') AS a
        WHERE a.start_date >= DATE '{w36}' AND a.start_date < DATE '{idx}' + INTERVAL 365 DAY
        GROUP BY a.person_id
    ),
    hf AS (
        SELECT DISTINCT person_id, 1 AS ltc_heart_failure FROM read_parquet('{data_dir}/conditions.parquet')
        WHERE condition = 'heart_failure' AND diagnosed_on < DATE '{idx}'
    )
    SELECT p.person_id,
        COALESCE(e.emergency_admissions_0_12, 0) AS emergency_admissions_0_12,
        COALESCE(e.gp_0_12, 0) AS gp_0_12,
        COALESCE(e.cost_pence_0_12, 0) / 100.0 AS cost_total_0_12,
        COALESCE(DATE '{idx}' - e.last_ae, 1461) AS days_since_ae,
        COALESCE(h.ltc_heart_failure, 0) AS ltc_heart_failure,
        COALESCE(e.y_emergency_12m, 0) AS y_emergency_12m
    FROM people p LEFT JOIN events e USING (person_id) LEFT JOIN hf h USING (person_id)
    ORDER BY p.person_id
    """
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def test_features_vs_duckdb(benchmark, population_size, data_dirs):
    data_dir = data_dirs(population_size)
    repeats = 2 if population_size >= 1_000_000 else 3
    duck, duck_s = best_of(lambda: duckdb_features(data_dir), repeats)

    def read_and_drop():
        read_feature_tables(data_dir)  # dropped at once: each timed read starts as a real run does,
        # not beside the previous read's 2 GB (which made the read up to 2x slower on a busy machine)

    _, read_s = best_of(read_and_drop, repeats)
    tables = read_feature_tables(data_dir)
    ours, build_s = best_of(lambda: build_features_partitioned(tables, INDEX_DATE), repeats)
    ours_s = read_s + build_s
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)  # times are taken above, side by side

    assert ours["person_id"].tolist() == duck["person_id"].tolist()
    for col in COMPARED:
        got = ours[col].to_numpy(dtype=np.float64)
        want = duck[col].to_numpy(dtype=np.float64)
        if col == "cost_total_0_12":
            assert (np.round(got * 100) == np.round(want * 100)).all(), col
        else:
            assert np.array_equal(got, want), col
    rows = {"people": len(ours), "activity_rows": int(pd.read_parquet(data_dir / "activity.parquet",
                                                                       columns=["person_id"]).shape[0])}
    benchmark.extra_info.update({**rows, "riskcap_read_s": read_s, "riskcap_build_s": build_s,
                                 "riskcap_read_and_build_s": ours_s, "duckdb_sql_s": duck_s,
                                 "ratio_duckdb_over_riskcap": duck_s / ours_s, "columns_riskcap": ours.shape[1],
                                 "columns_duckdb": duck.shape[1]})
    print(f"\nfeatures n={population_size:,} ({rows['activity_rows']:,} activity rows): riskcap read {read_s:.2f} s + "
          f"build {build_s:.2f} s = {ours_s:.2f} s ({ours.shape[1]} columns), DuckDB SQL from the files {duck_s:.2f} s "
          f"({duck.shape[1] - 1} columns); "
          f"DuckDB / riskcap = {duck_s / ours_s:.2f}; the {len(COMPARED)} shared columns agree for {len(ours):,} people")
