"""Scoring a population: probability, 0-100 score, tier, percentile and three reasons per person.

:func:`score_population` is the one scoring path (``riskcap score``, ``riskcap demo``, and
``riskcap capitation run --model`` through :class:`ScoresWriter`): each ``person_id`` range is
read, checked and scored by :func:`score_partition` on an engine of :mod:`riskcap.stream.engines`
(memory bounded by a partition); the partitions' unranked scores wait on disk until everyone
is scored, then everyone is ranked (percentiles and tiers need the whole population's
probabilities, 8 bytes a person) and written. The output columns are shared interface 5
(``scores.parquet``):
``person_id, practice_code, probability, score, tier, percentile, reason_1..3, model``.
For the cost model ``probability``, ``score`` and ``tier`` are replaced by
``expected_cost_gbp`` (the percentile ranks expected cost).

Reasons for whom (``reasons_for``, a percent of the population from the top): the logistic
model's contributions are nearly free, so everyone gets reasons (100); the gbm's TreeSHAP
contributions cost about 10 us a person on 2 threads even with riskcap's kernel (25 times
LightGBM's ``pred_contrib`` speed; ``benchmarks/test_bench_reasons.py``), as much as the
rest of scoring, so by default only the top 20% get them (the "rising" tier and above:
everyone a case-finding list can show); the rest have empty reasons. Pass one explains each
partition's own top ``20% * CANDIDATE_MARGIN``, and only chosen people it missed cost a
second read of their partition.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from riskcap.data.load import load_partition, scans_for
from riskcap.data.summary import LoadSummary
from riskcap.data.write import OWNER_ONLY, ParquetRowsWriter
from riskcap.errors import LoadRejected
from riskcap.features import build_features
from riskcap.models.explain import top_reasons
from riskcap.models.persist import load_model_files
from riskcap.stream.context import RunContext
from riskcap.stream.memory import release_freed_memory
from riskcap.stream.plan import PARTITION_PEOPLE, plan_partitions
from riskcap.stream.spill import Spill
from riskcap.tiers import assign_tiers, percentiles_among, risk_percentiles

SCORE_COLUMNS = ["person_id", "practice_code", "probability", "score", "tier", "percentile",
                 "reason_1", "reason_2", "reason_3", "model"]
COST_SCORE_COLUMNS = ["person_id", "practice_code", "expected_cost_gbp", "percentile",
                      "reason_1", "reason_2", "reason_3", "model"]
REASON_COLUMNS = ["reason_1", "reason_2", "reason_3"]


def score_frame(model, frame: pd.DataFrame, reasons: bool = True) -> pd.DataFrame:
    """Score one partition's features: predictions and reasons (no population ranks yet)."""
    if reasons:
        pred, contributions = model.predict_with_contributions(frame)
    else:
        pred = model.predict(frame)
    out = {"person_id": frame["person_id"].to_numpy(dtype=np.int64),
           "practice_code": frame["practice_code"].to_numpy()}
    if model.kind == "cost":
        out["expected_cost_gbp"] = pred
    else:
        out["probability"] = pred
        out["score"] = np.rint(100 * pred).astype(np.int64)
    if reasons:
        texts = top_reasons(frame, contributions, model.features)
    else:
        texts = [pd.Categorical.from_codes(np.zeros(len(frame), dtype=np.int8), categories=[""])] * 3
    for k, text in enumerate(texts, start=1):
        out[f"reason_{k}"] = text
    return pd.DataFrame(out)


def rank(scores: pd.DataFrame, kind: str, population: np.ndarray) -> pd.DataFrame:
    """Add percentiles among ``population`` (everyone's sorted values, :func:`value_column`; and
    tiers for risk models) to some people's ``scores`` and order the columns."""
    scores["percentile"] = percentiles_among(population, scores[value_column(kind)].to_numpy())
    scores["model"] = kind
    if kind == "cost":
        return scores[COST_SCORE_COLUMNS]
    scores["tier"] = assign_tiers(scores["percentile"].to_numpy())
    return scores[SCORE_COLUMNS]


def value_column(kind: str) -> str:
    """The column percentiles rank: expected cost for the cost model, else probability."""
    return "expected_cost_gbp" if kind == "cost" else "probability"


#: Default percent of the population (from the top) given reasons, per model kind.
DEFAULT_REASONS_FOR = {"logistic": 100.0, "gbm": 20.0, "cost": 0.0}
_PERCENT_EPS = 1e-9


def reasons_share(kind: str, reasons_for: float | None) -> float:
    """The percent of people to explain: ``reasons_for`` or the kind's default, checked."""
    share = DEFAULT_REASONS_FOR.get(kind, 100.0) if reasons_for is None else float(reasons_for)
    if not 0 <= share <= 100:
        raise ValueError(f"reasons_for must be a percent between 0 and 100, got {reasons_for!r}")
    return share


def _top(percentiles: np.ndarray, share: float) -> np.ndarray:
    """Who is in the top ``share`` percent."""
    return percentiles > 100 - share + _PERCENT_EPS


def _reason_texts(scores: pd.DataFrame) -> dict[str, np.ndarray]:
    return {col: np.array(scores[col].astype(object), dtype=object) for col in REASON_COLUMNS}


def _put_reasons(texts: dict[str, np.ndarray], positions: np.ndarray, explained: pd.DataFrame) -> None:
    for col, values in texts.items():
        values[positions] = explained[col].astype(object).to_numpy()


def _set_reasons(scores: pd.DataFrame, texts: dict[str, np.ndarray]) -> None:
    for col, values in texts.items():
        scores[col] = pd.Categorical(values, categories=sorted(set(values)))


#: People per row group of scores.parquet.
SCORES_ROW_GROUP = 1 << 20
_TEXT_COLUMNS = ("practice_code", "tier", "reason_1", "reason_2", "reason_3", "model")


def _scores_arrow(scores: pd.DataFrame) -> pa.Table:
    table = pa.Table.from_pandas(scores, preserve_index=False)
    for col in _TEXT_COLUMNS:
        if col in table.column_names:
            table = table.set_column(table.schema.get_field_index(col), col, table[col].cast(pa.string()))
    return table.replace_schema_metadata(None)


# --- Streaming from disk ----------------------------------------------------------------

@dataclass
class PartitionScores:
    """One partition's load summary and scores (None when its data were not usable)."""

    summary: LoadSummary
    scores: pd.DataFrame | None = None


#: In a streamed run, pass one explains each partition's top ``share * margin`` percent: the
#: population's top ``share`` percent is then nearly always among them, and only people it
#: misses cost a second read of their partition.
CANDIDATE_MARGIN = 1.25


def score_partition(part, *, run: RunContext) -> PartitionScores:
    """Load, check and score one person_id range: predictions, not yet ranked (the partition
    function of :func:`score_population`; ``run`` from :meth:`ScoresWriter.scoring`).

    Reasons: everyone's when ``run.share`` is 100; otherwise those of the partition's own top
    ``share * CANDIDATE_MARGIN`` percent, flagged in an ``explained`` column.
    """
    tables, summary = load_partition(run.data_dir, part, run.as_of, run.on_invalid, run.scans)
    if tables is None:
        return PartitionScores(summary)
    frame = build_features(tables, run.index_date)
    del tables  # the checked tables are the bulk of a partition: let them go before the model runs
    return PartitionScores(summary, score_candidates(load_model_files(run.model_files), frame, run.share))


def score_candidates(model, frame: pd.DataFrame, share: float) -> pd.DataFrame:
    """One partition's unranked scores, for :meth:`ScoresWriter.add`, from its features:
    :func:`score_frame`, with reasons for the partition's own top ``share * CANDIDATE_MARGIN`` percent."""
    scores = score_frame(model, frame, reasons=share >= 100)
    scores["explained"] = share >= 100
    if 0 < share < 100 and len(scores):
        value = scores[value_column(model.kind)].to_numpy()
        candidates = _top(risk_percentiles(value), min(100.0, share * CANDIDATE_MARGIN))
        texts = _reason_texts(scores)
        local = np.flatnonzero(candidates)
        _put_reasons(texts, local, score_frame(model, frame.iloc[local], reasons=True))
        _set_reasons(scores, texts)
        scores["explained"] = candidates
    scores["practice_code"] = scores["practice_code"].astype("category")  # a few hundred codes, millions of rows
    return scores


def check_partition(part, *, run: RunContext) -> PartitionScores:
    """Only load and check one partition (the rest of a run that can no longer produce scores)."""
    return PartitionScores(load_partition(run.data_dir, part, run.as_of, run.on_invalid, run.scans)[1])


def explain_partition(task, *, run: RunContext) -> pd.DataFrame:
    """Reasons for the people ``task = (part, person_ids)`` of one partition (the second pass)."""
    part, ids = task
    tables, _ = load_partition(run.data_dir, part, run.as_of, run.on_invalid, run.scans)
    frame = build_features(tables, run.index_date)
    del tables
    local = np.flatnonzero(np.isin(frame["person_id"].to_numpy(), ids))
    out = score_frame(load_model_files(run.model_files), frame.iloc[local], reasons=True)
    return out[["person_id", *REASON_COLUMNS]].astype({c: object for c in REASON_COLUMNS})


@dataclass
class ScoredPopulation:
    """What :func:`score_population` wrote: who, how many per tier, and the load summary."""

    kind: str
    summary: LoadSummary
    people: int = 0
    #: per tier (risk models): people, summed probability and lowest score
    tiers: dict[str, list] = field(default_factory=dict)
    #: expected cost summed over everyone (the cost model)
    expected_cost_gbp: float = 0.0

    def tally(self, scores: pd.DataFrame) -> None:
        """Count one ranked partition's scores."""
        self.people += len(scores)
        if self.kind == "cost":
            self.expected_cost_gbp += float(scores["expected_cost_gbp"].sum())
            return
        for tier, group in scores.groupby("tier", sort=False):
            people, probability, lowest = self.tiers.get(tier, (0, 0.0, 100))
            self.tiers[tier] = [people + len(group), probability + float(group["probability"].sum()),
                                min(lowest, int(group["score"].min()))]


def score_population(model_files: dict[str, bytes], data_dir: str | Path, index_date, out_path: str | Path, *,
                     parts=None, engine=None, people: int = PARTITION_PEOPLE, reasons_for: float | None = None,
                     on_invalid: str = "reject", as_of=None, progress=None) -> ScoredPopulation:
    """Score everyone registered and alive at ``index_date`` from ``data_dir`` into ``out_path``.

    In memory bounded by a partition plus 8 bytes a person (see :class:`ScoresWriter`). ``parts``:
    :func:`~riskcap.stream.plan.plan_partitions` (planned here when None); ``engine``: a
    :mod:`riskcap.stream.engines` engine (local by default); ``progress(stage, done, total)`` is
    called after each partition. A partition with a data problem (reject mode) stops the
    scoring, the rest are still checked, then :class:`~riskcap.errors.LoadRejected`
    lists every problem and nothing is written. In quarantine mode the returned
    summary's ``rejected_rows`` are for :func:`~riskcap.data.load.write_rejects`.
    """
    from riskcap.stream.engines import LocalEngine

    parts = plan_partitions(data_dir, people) if parts is None else list(parts)
    engine = LocalEngine() if engine is None else engine
    # absolute: a Dask worker on another machine, or in another folder, reads the same files
    run = RunContext(data_dir=str(Path(data_dir).resolve()), index_date=index_date, on_invalid=on_invalid,
                     as_of=as_of, scans=scans_for(data_dir, parts))
    with ScoresWriter(out_path, model_files, reasons_for) as writer:
        run = writer.scoring(run)
        summaries = []
        for result in engine.map(score_partition, parts, run=run):
            summaries.append(result.summary)
            _tick(progress, "scoring", len(summaries), len(parts))
            if result.scores is None:
                break
            writer.add(result.scores)
            del result
        if len(writer) < len(summaries):  # a problem: check the rest without scoring, then say everything
            for result in engine.map(check_partition, parts[len(summaries):], run=run):
                summaries.append(result.summary)
                _tick(progress, "scoring", len(summaries), len(parts))
        summary = LoadSummary.combine(summaries)
        if summary.status == "rejected":
            raise LoadRejected(summary)
        return writer.finish(summary, engine, parts, run, progress)


class ScoresWriter:
    """Writes a population's scores file from its partitions' unranked scores (:func:`score_partition`
    or any partition function that scores with :func:`score_candidates`), in partition order.

    Partitions' scores wait on disk (a :class:`~riskcap.stream.spill.Spill` beside ``out_path``)
    until everyone has been scored; :meth:`finish` then reads everyone's
    value back into one sorted array (the only population-sized memory: 8 bytes a person) for
    the percentiles, reads the reasons the first pass missed (a second read of those people's
    partitions) and ranks and writes the partitions one by one. ``out_path`` appears only when
    the ``with`` block ends cleanly. :meth:`scoring` gives the run context its partition functions take.
    """

    def __init__(self, out_path: str | Path, model_files: dict[str, bytes], reasons_for: float | None = None):
        self.out_path = Path(out_path)
        self.kind = load_model_files(model_files).kind
        self.share = reasons_share(self.kind, reasons_for)
        self.model_files = model_files
        self.value = value_column(self.kind)
        self._stack = contextlib.ExitStack()

    def scoring(self, run: RunContext) -> RunContext:
        """``run`` with this writer's model and reasons share (what :func:`score_partition`,
        :func:`explain_partition` and other scoring partition functions read)."""
        return run.replace(model_files=self.model_files, share=self.share)

    def __enter__(self) -> "ScoresWriter":
        self._writer = self._stack.enter_context(ParquetRowsWriter(self.out_path, SCORES_ROW_GROUP, mode=OWNER_ONLY))
        self._spill = self._stack.enter_context(Spill(self.out_path.parent))
        return self

    def __exit__(self, *exc) -> None:
        self._stack.__exit__(*exc)

    def __len__(self) -> int:
        return len(self._spill)

    def add(self, scores: pd.DataFrame) -> None:
        """Keep the next partition's unranked scores (on disk)."""
        self._spill.append(scores)

    def _read(self, i: int, columns: list[str] | None = None) -> pd.DataFrame:
        return self._spill.read(i, columns).to_pandas()

    def _sorted_values(self) -> np.ndarray:
        """Everyone's ranked value, sorted."""
        values = self._spill.column(self.value, np.float64)
        if np.isnan(values).any():
            raise ValueError(f"the model gave {int(np.isnan(values).sum())} missing {self.value} value(s)")
        values.sort()
        return values

    def finish(self, summary: LoadSummary, engine, parts, run: RunContext, progress=None) -> ScoredPopulation:
        """Rank everyone and write the file (``parts`` and ``run``, the partitions' run context,
        are for the second read of people pass one did not explain)."""
        release_freed_memory()  # what the partitions freed, before the population-sized array
        population = self._sorted_values()
        found = self._second_pass(population, engine, parts, self.scoring(run), progress)
        scored = ScoredPopulation(self.kind, summary)
        for i in range(len(self)):
            scores = rank(self._read(i), self.kind, population)
            if 0 < self.share < 100:  # reasons for the top share only, the missed ones from the second pass
                chosen, texts = _top(scores["percentile"].to_numpy(), self.share), _reason_texts(scores)
                if i in found:
                    ids = scores["person_id"].to_numpy()
                    _put_reasons(texts, np.searchsorted(ids, found[i]["person_id"].to_numpy()), found[i])
                for col, values in texts.items():
                    values[~chosen] = ""
                    scores[col] = values
            if len(scores) or (not scored.people and i == len(self) - 1):  # an empty file still has columns
                scored.tally(scores)
                self._writer.write(_scores_arrow(scores))
        return scored

    def _second_pass(self, population: np.ndarray, engine, parts, run: RunContext, progress) -> dict[int, pd.DataFrame]:
        """Reasons of the (few) chosen people pass one did not explain, by partition index."""
        if not 0 < self.share < 100:
            return {}
        tasks, where = [], []
        for i, part in enumerate(parts[:len(self)]):
            scores = self._read(i, ["person_id", self.value, "explained"])
            chosen = _top(percentiles_among(population, scores[self.value].to_numpy()), self.share)
            missing = chosen & ~scores["explained"].to_numpy(dtype=bool)
            if missing.any():
                tasks.append((part, scores["person_id"].to_numpy()[missing]))
                where.append(i)
        found = {}
        for done, (i, reasons) in enumerate(zip(where, engine.map(explain_partition, tasks, run=run)),
                                            start=1):
            found[i] = reasons
            _tick(progress, "reasons", done, len(tasks))
        return found


def _tick(progress, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)
