"""Reading a run directory's outputs for the report and the workbook.

A run directory (written by ``riskcap demo``) holds::

    data/                      the population (contract tables; synthetic: truth, calibration.json)
    models/{logistic,gbm,cost}/ model directories
    evaluation/<kind>/metrics.json
    scores.parquet             risk scores at the evaluation index date
    casefinding/summary.json   riskcap casefind output
    capitation/summary.json    riskcap capitation run output (plus its tables)

Any part may be absent: :func:`read_run` then records why in :attr:`RunOutputs.missing` and
the report says "not run". A part that is present but unreadable raises DataError naming
the file. ``manifest.json`` is deliberately not read: the run writes it after the report,
so a report built from it could not be rebuilt byte for byte (and ``riskcap verify`` would
then fail); fingerprints are taken from the data and model files themselves.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from riskcap.config import parse_yaml, read_text_file
from riskcap.data.dates import default_index_date
from riskcap.data.read import read_optional_table, read_table, table_path
from riskcap.data.scores import score_batches
from riskcap.errors import ConfigError, DataError
from riskcap.features import age_on, eligible_mask, to_date, to_day
from riskcap.names import is_safe_name
from riskcap.report.levers import LEVERS
from riskcap.schema import CONDITIONS
from riskcap.untrusted import read_output_csv, read_output_json

#: Model kinds in the order the report shows them; the first present risk model is primary.
MODEL_KINDS = ("gbm", "logistic", "cost")
RISK_KINDS = ("gbm", "logistic")
#: Five-year age bands of the population pyramid (the last is open-ended).
PYRAMID_BAND_YEARS = 5
PYRAMID_TOP = 90
#: England reference figures (NHS Digital registered patients, 2020; DOMAIN.md section 3).
ENGLAND_SHARE_65_PLUS = 0.175
ENGLAND_SHARE_18_PLUS = 0.797
#: Disease registers in the LTC count (as riskcap.features: all codes but frailty and palliative).
NON_DISEASE = ("frailty", "palliative")


@dataclass
class PopulationSummary:
    """The registered population at the index date, in aggregate."""

    people: int
    pyramid: pd.DataFrame  # band, female, male
    prevalence: pd.DataFrame  # condition, name, min_age, denominator, registered, prevalence, england
    share_65_plus: float
    share_under_18: float
    adults: int
    adults_2plus_ltc: int
    practices: int
    care_home: int
    imd_quintile: pd.Series  # people by IMD quintile (1 = most deprived)


@dataclass
class CapitationOutputs:
    """``riskcap capitation run`` tables (money in pence as written)."""

    summary: dict
    comparison: pd.DataFrame
    budgets: pd.DataFrame
    tariffs: pd.DataFrame
    settlement: pd.DataFrame
    accuracy: pd.DataFrame
    scenarios: dict[str, dict]  # name -> {"summary": ..., "raw": scenario.yaml mapping}
    levers: dict[str, pd.DataFrame] = field(default_factory=dict)  # per-practice lever tables (report/levers.py)

    @property
    def baseline(self) -> str:
        return self.summary["baseline"]

    @property
    def names(self) -> list[str]:
        return [s["scenario"] for s in self.summary["scenarios"]]


@dataclass
class RunOutputs:
    """Everything the report and workbook need from a run directory (None = not run)."""

    run_dir: Path
    index_date: dt.date | None  # None: no output and no data to tell it from
    index_date_source: str
    population: PopulationSummary | None = None
    metrics: dict[str, dict] = field(default_factory=dict)
    model_metadata: dict[str, dict] = field(default_factory=dict)
    scores: ScoresSummary | None = None
    casefinding: dict | None = None
    capitation: CapitationOutputs | None = None
    fingerprints: dict = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def index_date_text(self) -> str:
        return self.index_date.isoformat() if self.index_date else "an unknown date"

    @property
    def primary_model(self) -> str | None:
        """The risk model the report leads with: gbm if evaluated, else logistic."""
        return next((k for k in RISK_KINDS if k in self.metrics), None)


def _require(frame: pd.DataFrame, columns, path: Path) -> pd.DataFrame:
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise DataError(f"{path}: missing column(s) {', '.join(absent)}; is it riskcap output of this version?")
    return frame


def read_run(run_dir: str | Path) -> RunOutputs:
    """Read a run directory's outputs (see the module docstring); DataError if it is not one."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: not a directory; give a run directory written by 'riskcap demo'")
    metrics, metadata = _read_models(run_dir)
    capitation = _read_capitation(run_dir / "capitation")
    casefinding = read_output_json(run_dir / "casefinding" / "summary.json") \
        if (run_dir / "casefinding" / "summary.json").exists() else None
    index_date, source = _index_date(run_dir, metrics, capitation, casefinding)
    out = RunOutputs(run_dir, index_date, source, metrics=metrics, model_metadata=metadata,
                     casefinding=casefinding, capitation=capitation)
    data_dir = run_dir / "data"
    if data_dir.is_dir():
        out.population = population_summary(data_dir, index_date)
    else:
        out.missing["data"] = f"no {data_dir.name}/ folder in the run directory"
    scores_path = run_dir / "scores.parquet"
    if scores_path.exists():
        out.scores = summarise_scores(scores_path)
    else:
        out.missing["scores"] = "no scores.parquet (riskcap score was not run)"
    for kind in MODEL_KINDS:
        if kind not in metrics:
            out.missing[f"evaluation:{kind}"] = f"no evaluation/{kind}/metrics.json"
    if casefinding is None:
        out.missing["casefinding"] = "no casefinding/summary.json (riskcap casefind was not run)"
    if capitation is None:
        out.missing["capitation"] = "no capitation/summary.json (riskcap capitation run was not run)"
    out.fingerprints = fingerprints(run_dir)
    return out


@dataclass
class ScoresSummary:
    """Aggregates of a risk scores file: people per (practice, tier) and per-tier ranges."""

    people: int
    model: str
    by_practice: pd.DataFrame  # index practice_code, one column per tier (people), tiers from the top
    tiers: pd.DataFrame  # index tier (from the top): people, min_probability, max_probability


def summarise_scores(path: Path) -> ScoresSummary:
    """Aggregate a risk scores file one batch at a time (:func:`riskcap.data.scores.score_batches`:
    memory bounded by the batch, not the population).

    Tiers are ordered from the highest risk down by their people's mean percentile.
    """
    counts, stats, models = [], [], set()
    for frame in score_batches(path, ("practice_code", "probability", "tier", "percentile"), optional=("model",)):
        frame["practice_code"] = frame["practice_code"].astype(str)
        frame["tier"] = frame["tier"].astype(str)
        counts.append(frame.groupby(["practice_code", "tier"]).size())
        stats.append(frame.groupby("tier").agg(people=("probability", "size"),
                                               min_probability=("probability", "min"),
                                               max_probability=("probability", "max"),
                                               percentile_sum=("percentile", "sum")))
        if "model" in frame:
            models.update(frame["model"].astype(str).unique().tolist())
    if not counts:
        raise DataError(f"{path}: no rows; score a population with 'riskcap score'")
    tiers = pd.concat(stats).groupby(level=0).agg(people=("people", "sum"), min_probability=("min_probability", "min"),
                                                  max_probability=("max_probability", "max"),
                                                  percentile_sum=("percentile_sum", "sum"))
    tiers["mean_percentile"] = tiers["percentile_sum"] / tiers["people"]
    tiers = tiers.sort_values("mean_percentile", ascending=False, kind="stable")
    by_practice = pd.concat(counts).groupby(level=[0, 1]).sum().unstack(fill_value=0)
    by_practice = by_practice.reindex(columns=tiers.index, fill_value=0).sort_index()
    return ScoresSummary(int(tiers["people"].sum()), ", ".join(sorted(models)), by_practice,
                         tiers[["people", "min_probability", "max_probability"]])


def _read_models(run_dir: Path) -> tuple[dict, dict]:
    metrics, metadata = {}, {}
    for kind in MODEL_KINDS:
        path = run_dir / "evaluation" / kind / "metrics.json"
        if path.exists():
            metrics[kind] = read_output_json(path)
            need = ("calibration_by_decile",) + (("auroc", "ppv_at", "sensitivity_at", "top_n")
                                                  if kind in RISK_KINDS else ("r2",))
            absent = [k for k in need if k not in metrics[kind]]
            if absent:
                raise DataError(f"{path}: missing key(s) {', '.join(absent)}; write it with 'riskcap evaluate'")
        meta_path = run_dir / "models" / kind / "metadata.json"
        if meta_path.exists():
            metadata[kind] = read_output_json(meta_path)
    return metrics, metadata


def _read_capitation(folder: Path) -> CapitationOutputs | None:
    path = folder / "summary.json"
    if not path.exists():
        return None
    summary = read_output_json(path)
    if not summary.get("scenarios"):
        raise DataError(f"{path}: no scenarios; write it with 'riskcap capitation run'")
    tables = {}
    need = {
        "comparison": ("scenario", "envelope_gbp"),
        "budgets": ("scenario", "practice_code", "budget_pence", "budget_per_head_gbp", "target_pence",
                    "current_pence", "distance_from_target"),
        "tariffs": ("scenario", "need_group", "need_group_name", "people", "list_days", "tariff_pence"),
        "settlement": ("scenario", "practice_code", "basis_pence", "actual_pence", "variance_pence",
                       "payer_share_pence", "provider_share_pence"),
        "accuracy": ("scenario", "level", "unit", "allocated_pence", "actual_pence", "predictive_ratio"),
    }
    optional = {lever.file: lever.needs for lever in LEVERS if lever.file}  # only when a scenario sets the lever
    levers = {}
    for name, columns in {**need, **optional}.items():
        file = folder / f"{name}.csv"
        if name in optional and not file.exists():
            continue
        if not file.exists():
            raise DataError(f"{file}: missing from the capitation output (summary.json is there)")
        frame = (levers if name in optional else tables)[name] = _require(read_output_csv(file, keep_default_na=True), columns, file)
        for col in ("practice_code", "icb_code", "need_group", "unit", "scenario", "pool_code"):
            if col in frame.columns:
                frame[col] = frame[col].astype(str)
    scenarios = {}
    for s in summary["scenarios"]:
        name = s["scenario"]
        if not is_safe_name(name):  # a name is never joined to a path as given (riskcap.names)
            raise DataError(f"{folder / 'summary.json'}: scenario name {name!r} is not a riskcap scenario name")
        raw_path = folder / "scenarios" / name / "scenario.yaml"
        raw = {}
        if raw_path.exists():
            try:
                raw = parse_yaml(read_text_file(raw_path), str(raw_path)) or {}
            except ConfigError as exc:
                raise DataError(str(exc)) from exc
        scenarios[name] = {"summary": s, "raw": raw}
    return CapitationOutputs(summary=summary, scenarios=scenarios, **tables, levers=levers)


def _index_date(run_dir: Path, metrics: dict, capitation: CapitationOutputs | None, casefinding: dict | None
                ) -> tuple[dt.date | None, str]:
    for kind in MODEL_KINDS:
        value = metrics.get(kind, {}).get("evaluation_index_date")
        if value:
            return to_date(to_day(value)), f"evaluation/{kind}/metrics.json"
    if capitation is not None and capitation.summary.get("inputs", {}).get("index_date"):
        return to_date(to_day(capitation.summary["inputs"]["index_date"])), "capitation/summary.json"
    if casefinding is not None and casefinding.get("list_date"):
        return to_date(to_day(casefinding["list_date"])), "casefinding/summary.json"
    if not (run_dir / "data").is_dir():
        return None, "nothing in the run directory records it"
    index = default_index_date("evaluate", run_dir / "data")
    return index.date, f"data/: {index.source}"


# --- The population ----------------------------------------------------------------

def population_summary(data_dir: Path, index_date) -> PopulationSummary:
    """Age-sex pyramid, LTC prevalence and a few shares of the people registered and alive
    at ``index_date`` (the feature builder's rule), read from ``persons`` and ``conditions``.

    Prevalence uses each register's QOF denominator (people at or above its minimum age,
    :data:`riskcap.schema.CONDITIONS`); a condition counts when diagnosed before the index date.
    """
    from riskcap.synthetic.params import PREVALENCE_TARGET

    idx = to_day(index_date)
    persons = read_table(data_dir, "persons", columns=["person_id", "practice_code", "sex", "birth_date",
                                                       "registered_from", "registered_to", "died_on",
                                                       "imd_decile", "care_home"])
    people = persons.loc[eligible_mask(persons, idx, read_optional_table(data_dir, "registrations"))]
    ids = np.sort(people["person_id"].to_numpy(dtype=np.int64))
    order = np.argsort(people["person_id"].to_numpy(dtype=np.int64), kind="stable")
    age = age_on(people["birth_date"], idx)[order]
    sex = people["sex"].astype(str).to_numpy()[order]
    n = len(ids)

    lower = np.arange(0, PYRAMID_TOP + 1, PYRAMID_BAND_YEARS)
    band = np.clip(np.searchsorted(lower, age, side="right") - 1, 0, len(lower) - 1)
    labels = [f"{a}-{a + PYRAMID_BAND_YEARS - 1}" for a in lower[:-1]] + [f"{PYRAMID_TOP}+"]
    pyramid = pd.DataFrame({
        "band": labels,
        "female": np.bincount(band[sex == "F"], minlength=len(lower)),
        "male": np.bincount(band[sex == "M"], minlength=len(lower)),
    })

    conditions = read_table(data_dir, "conditions", columns=["person_id", "condition", "diagnosed_on"])
    diagnosed = conditions["diagnosed_on"].to_numpy(dtype="datetime64[D]").astype(np.int64)
    cid = conditions["person_id"].to_numpy(dtype=np.int64)
    pos = np.clip(np.searchsorted(ids, cid), 0, max(n - 1, 0))
    use = (ids[pos] == cid if n else np.zeros(len(cid), bool)) & (diagnosed < idx) & conditions["condition"].notna().to_numpy()
    codes = list(CONDITIONS)
    code_of = {c: j for j, c in enumerate(codes)}
    col = conditions["condition"].astype(str).map(code_of).to_numpy()
    unknown = use & pd.isna(col)
    if unknown.any():
        examples = sorted(set(conditions["condition"].astype(str)[unknown].head(100)))[:5]
        raise DataError(f"{table_path(data_dir, 'conditions')}: column 'condition': {int(unknown.sum())} row(s) "
                        f"have a code outside the contract; examples: {', '.join(map(repr, examples))}")
    present = np.zeros((n, len(codes)), dtype=bool)
    present[pos[use], col[use].astype(np.int64)] = True

    rows = []
    for j, code in enumerate(codes):
        name, min_age = CONDITIONS[code]
        denom = age >= min_age
        registered = int((present[:, j] & denom).sum())
        rows.append({"condition": code, "name": name, "min_age": min_age, "denominator": int(denom.sum()),
                     "registered": registered, "prevalence": registered / denom.sum() if denom.any() else np.nan,
                     "england": PREVALENCE_TARGET.get(code, (np.nan, 0))[0]})
    disease = [j for j, c in enumerate(codes) if c not in NON_DISEASE]
    ltc_count = present[:, disease].sum(axis=1)
    adults = age >= 18
    imd = people["imd_decile"].to_numpy()[order]
    quintile = pd.Series((np.asarray(imd, dtype=np.int64) + 1) // 2).value_counts().reindex(range(1, 6), fill_value=0)
    return PopulationSummary(
        people=n, pyramid=pyramid, prevalence=pd.DataFrame(rows),
        share_65_plus=float((age >= 65).mean()) if n else np.nan,
        share_under_18=float((age < 18).mean()) if n else np.nan,
        adults=int(adults.sum()), adults_2plus_ltc=int((adults & (ltc_count >= 2)).sum()),
        practices=int(people["practice_code"].nunique()),
        care_home=int(people["care_home"].astype(bool).sum()),
        imd_quintile=quintile,
    )


# --- Fingerprints ------------------------------------------------------------------

def fingerprints(run_dir: Path) -> dict:
    """SHA-256 of the data files and model files, and the models' training provenance.

    Returns ``{"data": {file: {bytes, sha256}}, "data_digest": str, "models": {kind: {"files":
    {...}, "training_index_date", "data_fingerprint"}}}`` for the parts present;
    ``data_digest`` is :func:`riskcap.models.train.data_fingerprint`'s digest, the one model
    metadata records, so the report can say whether the models were trained on this data.
    """
    from riskcap.manifest import fingerprint

    out: dict = {}
    data_dir = run_dir / "data"
    if data_dir.is_dir():
        from riskcap.models.train import data_fingerprint

        out["data"] = fingerprint(data_dir)
        try:
            out["data_digest"] = data_fingerprint(data_dir)["sha256"]
        except DataError:  # a contract table is missing: the per-file hashes still stand
            out["data_digest"] = None
    models = {}
    for kind in MODEL_KINDS:
        folder = run_dir / "models" / kind
        if folder.is_dir():
            meta = read_output_json(folder / "metadata.json") if (folder / "metadata.json").exists() else {}
            models[kind] = {"files": fingerprint(folder),
                            "training_index_date": meta.get("training_index_date"),
                            "data_fingerprint": (meta.get("data") or {}).get("fingerprint")}
    if models:
        out["models"] = models
    return out


__all__ = ["ScoresSummary", "CapitationOutputs", "PopulationSummary", "RunOutputs", "population_summary", "read_run"]
