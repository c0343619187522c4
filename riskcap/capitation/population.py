"""People grouped and costed once, kept as per-practice x need-group aggregates.

:class:`Population` is what every scenario and every sweep combination works on: person
features are read once (need group, in-scope base-year and outcome-year cost, days on the
list in the outcome year), then summed per practice x group cell. Only the individual cost
cap needs people again, and only the few above a threshold (:meth:`Population.excess`).

A population can be built partition by partition: :func:`population_part` aggregates one
partition's features into a small picklable :class:`PopulationPart`, and
:meth:`Population.combine` (or :class:`PopulationBuilder`, as parts arrive) merges them into
exactly what :meth:`Population.from_features` gives on the whole frame, which is itself the
combination of one part.

Costs are converted to whole pence **per setting** (``rint(cost_gbp * 100)``) before they
are summed, so every total is an exact integer whatever the summation order.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from riskcap.capitation.money import MAX_PENCE, MAX_PRODUCT, check_pence
from riskcap.capitation.accuracy import spread_sums
from riskcap.capitation.scheme import RISK_TIER_CODES, NeedGroupScheme, assign_need_groups
from riskcap.capitation.tails import select_tail, values_between
from riskcap.stream.spill import Spill
from riskcap.stream.threads import kernel_threads
from riskcap.errors import DataError
from riskcap.features import LABEL
from riskcap.schema import SETTING_CODES

#: Column with a person's predicted next-year cost (GBP) in a scores file, for fair shares.
PREDICTED_COST = "predicted_cost_gbp"
LIST_DAYS = "list_days_next_12"
DAYS_IN_YEAR = 365


def base_cost_column(setting: str) -> str:
    """Feature column of base-year (12 months before the index date) cost in ``setting``."""
    return f"cost_{setting}_0_12"


def outcome_cost_column(setting: str) -> str:
    """Feature column of outcome-year (12 months from the index date) cost in ``setting``."""
    return f"cost_next_12m_{setting}"


_BLOCK = 16384  # people per block: the block's pence stay in cache between passes
_MAX_GBP = MAX_PENCE / 100  # a cost at or above this (in one setting) cannot be held in pence


@numba.njit(inline="always", cache=True)
def _block_pence(cols, start, stop, out):  # pragma: no cover - compiled
    """out[i] = sum over columns of rint(100 x GBP) for i in [start, stop); returns #bad values.

    Loops run over slices from 0 so numba knows indices are non-negative and vectorises.
    """
    bad = 0
    o = out[start:stop]
    o[:] = 0
    for s in range(len(cols)):
        col = cols[s][start:stop]
        for i in range(o.shape[0]):
            x = col[i]
            if x >= 0.0 and x < _MAX_GBP:
                o[i] += np.int64(np.rint(x * 100.0))
            else:  # negative, NaN or too large to hold in pence
                bad += 1
    return bad


@numba.njit(parallel=True, cache=True)
def _aggregate_base(practice, group, n_groups, n_cells, days, cost_cols, need, n_chunks,
                    cost_out, cell_out):  # pragma: no cover - compiled
    """One pass over people in blocks: base-year pence per person, and per cell the people,
    list days, base-year pence and need pence x days (int64). Returns (sums (4, cells), #bad)."""
    n = practice.shape[0]
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    per_chunk = (n_blocks + n_chunks - 1) // n_chunks
    acc = np.zeros((n_chunks, 4, n_cells), dtype=np.int64)
    bad = np.zeros(n_chunks, dtype=np.int64)
    has_need = need.shape[0] == n
    for c in numba.prange(n_chunks):
        people, list_days, cost, need_days = acc[c, 0], acc[c, 1], acc[c, 2], acc[c, 3]
        for blk in range(c * per_chunk, min(n_blocks, (c + 1) * per_chunk)):
            start = blk * _BLOCK
            stop = min(n, start + _BLOCK)
            bad[c] += _block_pence(cost_cols, start, stop, cost_out)
            pr, gr, dy = practice[start:stop], group[start:stop], days[start:stop]
            co, ce = cost_out[start:stop], cell_out[start:stop]
            for i in range(co.shape[0]):
                cell = np.int64(pr[i]) * n_groups + gr[i]
                ce[i] = cell
                people[cell] += 1
                list_days[cell] += dy[i]
                cost[cell] += co[i]
            if has_need:
                nd = need[start:stop]
                for i in range(co.shape[0]):
                    need_days[ce[i]] += np.int64(np.rint(nd[i] * 100.0)) * np.int64(dy[i])
    return acc.sum(axis=0), bad.sum()


@numba.njit(parallel=True, cache=True)
def _aggregate_costs(cells, n_cells, cost_cols, n_chunks, cost_out):  # pragma: no cover - compiled
    """Pence per person over ``cost_cols`` and their sums per cell. Returns (sums, #bad)."""
    n = cells.shape[0]
    n_blocks = (n + _BLOCK - 1) // _BLOCK
    per_chunk = (n_blocks + n_chunks - 1) // n_chunks
    acc = np.zeros((n_chunks, n_cells), dtype=np.int64)
    bad = np.zeros(n_chunks, dtype=np.int64)
    for c in numba.prange(n_chunks):
        sums = acc[c]
        for blk in range(c * per_chunk, min(n_blocks, (c + 1) * per_chunk)):
            start = blk * _BLOCK
            stop = min(n, start + _BLOCK)
            bad[c] += _block_pence(cost_cols, start, stop, cost_out)
            ce, co = cells[start:stop], cost_out[start:stop]
            for i in range(co.shape[0]):
                sums[ce[i]] += co[i]
    return acc.sum(axis=0), bad.sum()


#: Rows of :attr:`PopulationPart.sums`.
N_SUMS = 6


@dataclass
class PopulationPart:
    """One partition's share of a :class:`Population`: small and picklable (see :func:`population_part`).

    ``sums`` is (:data:`N_SUMS`, practices, groups) int64 over this part's sorted ``practice_codes``
    (with their ``icb_codes``): people, list days, base pence, need pence x list days, outcome
    pence, list days of people without a predicted cost (by the day only).
    Per-person arrays are in row order with cells local to this part. The counts let
    :meth:`Population.combine` raise the errors one whole frame would, with whole counts.
    """

    settings: tuple[str, ...]
    n_groups: int
    practice_codes: np.ndarray
    icb_codes: np.ndarray
    sums: np.ndarray
    person_cell: np.ndarray = field(repr=False)
    person_base: np.ndarray = field(repr=False)
    person_outcome: np.ndarray = field(repr=False)
    bad_base: int = 0
    bad_outcome: int = 0
    has_need: bool = False
    need_missing: int = 0
    need_negative: int = 0
    tariff: TariffBasis | None = None
    unregistered_pence: int = 0
    read_pence: int = 0
    spread: np.ndarray | None = None  # (2, groups, SPREAD_SUMS): outcome and tariff year (accuracy.spread)
    pcn_codes: np.ndarray | None = None  # each practice's PCN ("" when the practices table has none)
    emergency: np.ndarray | None = None  # (practices, groups) people with an emergency admission in the outcome year
    deprivation: np.ndarray | None = None  # (2, practices, groups, IMD deciles): by_deprivation's list days, need

    @property
    def n_people(self) -> int:
        return int(self.person_cell.size)


#: How the tariffs were priced (:attr:`Population.method`).
FORWARD = "forward: costs per registered day in the year after T less a year, of the people registered then"
BASE_YEAR = "base year per head: costs in the year before T of the people registered at T (features only)"


@dataclass
class TariffBasis:
    """What the tariffs are priced from, per need group: people, registered days and their
    in-scope cost (pence) in the tariff year; per person (for the cap): their cost and group."""

    method: str
    people: np.ndarray
    days: np.ndarray
    cost: np.ndarray
    person_cost: np.ndarray | None = field(default=None, repr=False)
    person_group: np.ndarray | None = field(default=None, repr=False)


def tariff_basis(exposure, scheme: NeedGroupScheme, settings, groups: np.ndarray) -> TariffBasis:
    """The forward tariff basis of one partition: the people registered a year before T, by
    their need ``groups`` then, with their registered days and in-scope pence in the following
    year (``exposure``)."""
    n_groups = len(scheme.groups)
    person_cost = exposure.tariff_pence[:, setting_indices(settings)].sum(axis=1)
    groups = groups.astype(np.int16, copy=False)
    return TariffBasis(method=FORWARD, people=np.bincount(groups, minlength=n_groups).astype(np.int64),
                       days=_sum_by(groups, exposure.tariff_days, n_groups),
                       cost=_sum_by(groups, person_cost, n_groups),
                       person_cost=person_cost, person_group=groups)


def _sum_by(index: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Exact int64 sums of ``values`` by ``index`` (float64 sums of whole pence are exact below 2**53)."""
    return np.rint(np.bincount(index, weights=values, minlength=n)).astype(np.int64)


def setting_indices(settings) -> np.ndarray:
    """Positions of ``settings`` in :data:`riskcap.schema.SETTING_CODES`."""
    return np.array([SETTING_CODES.index(s) for s in settings], dtype=np.int64)


def population_part(features: pd.DataFrame, scheme: NeedGroupScheme, settings, practices: pd.DataFrame | None = None,
                    groups: np.ndarray | None = None, exposure=None, tariff: TariffBasis | None = None,
                    deprivation: bool = False) -> PopulationPart:
    """Group (unless ``groups`` is given) and aggregate one partition's features.

    Arguments are as for :meth:`Population.from_features`. With an ``exposure``
    (:func:`riskcap.capitation.exposure.exposure_of`) and its ``tariff``
    (:func:`tariff_basis`), list days and outcome-year costs are by the day, per registration
    period's practice, with the unregistered line (the features then hold everyone on a list
    in the outcome year); without them, from the features' columns at each person's practice,
    and the tariffs are priced per head from the base year (:data:`BASE_YEAR`). Raises
    DataError for missing columns or bad list days; bad costs and predictions are counted
    and raised by :meth:`Population.combine`. ``deprivation``: also sum list days and need by
    IMD decile (:func:`by_deprivation`, for the health-inequalities adjustment).
    """
    settings = tuple(settings)
    base_names = [base_cost_column(s) for s in settings]
    outcome_names = [outcome_cost_column(s) for s in settings]
    missing = [c for c in [LIST_DAYS, "practice_code", *base_names, *outcome_names] if c not in features.columns]
    if missing:
        raise DataError(f"features have no column(s) {', '.join(missing)} needed for capitation")
    if groups is None:
        groups = assign_need_groups(features, scheme)
    practice_index, practice_codes = practice_index_of(features["practice_code"])
    if exposure is not None:  # practices holding a stay in the outcome year count too (openers, merged lists)
        practice_codes, practice_index = _with_codes(practice_codes, practice_index, exposure.stay_practice)
    days = features[LIST_DAYS].to_numpy()
    if days.dtype.kind == "f" and np.isnan(days).any():
        raise DataError(f"features column '{LIST_DAYS}' has missing values")
    if days.size and (days.min() < 0 or days.max() > DAYS_IN_YEAR):
        raise DataError(f"features column '{LIST_DAYS}' must be whole days in 0..{DAYS_IN_YEAR}")
    if days.dtype.kind not in "iu":
        days = days.astype(np.int64)
    has_need = PREDICTED_COST in features.columns
    need = _float_column(features, PREDICTED_COST) if has_need else np.empty(0, dtype=np.float64)
    given = ~np.isnan(need)
    need_missing = int(need.size - given.sum())
    need_negative = int((need < 0).sum())
    if given.any():  # an impossible prediction is an error even where others are missing
        check_pence(np.rint(np.abs(need[given]) * 100) * days[given], f"'{PREDICTED_COST}' x list days", MAX_PRODUCT)
    by_day_need = need  # by the day, people without a prediction are priced at their group tariff
    if need_missing:
        need = np.empty(0, dtype=np.float64)  # from a features frame alone, fair shares will refuse
    n, n_groups = len(features), len(scheme.groups)
    n_cells = len(practice_codes) * n_groups
    person_base = np.empty(n, dtype=np.int64)
    person_cell = np.empty(n, dtype=np.int32)
    person_outcome = np.empty(n, dtype=np.int64)
    with kernel_threads(n):
        base_sums, bad_base = _aggregate_base(practice_index, groups.astype(np.int16, copy=False), n_groups, n_cells,
                                              days, _float_list(features, base_names), need,
                                              numba.get_num_threads(), person_base, person_cell)
        if exposure is None:
            outcome_sums, bad_outcome = _aggregate_costs(person_cell, n_cells, _float_list(features, outcome_names),
                                                         numba.get_num_threads(), person_outcome)
    if exposure is None:
        sums = np.concatenate([base_sums, outcome_sums[None, :], np.zeros((1, n_cells), dtype=np.int64)]
                              ).reshape(N_SUMS, len(practice_codes), n_groups)
        read, unregistered = int(outcome_sums.sum()), 0
        people = sums[0].sum(axis=0)
        tariff = TariffBasis(method=BASE_YEAR, people=people, days=people * DAYS_IN_YEAR, cost=sums[2].sum(axis=0))
        spread = None  # the noise is for runs priced forward from the tables (a features frame is the fast API)
    else:
        sums = np.concatenate([base_sums, np.zeros((2, n_cells), dtype=np.int64)]).reshape(N_SUMS, len(practice_codes),
                                                                                           n_groups)
        sums[1], sums[3], sums[4], sums[5], person_outcome = _by_day(exposure, settings, practice_codes, groups,
                                                                     by_day_need, n_groups)
        bad_outcome = 0
        scope = setting_indices(settings)
        read = int(exposure.read_pence[scope].sum())
        unregistered = int(exposure.unregistered_pence[scope].sum())
        spread = np.stack([spread_sums(groups, person_outcome, _sum_by(exposure.stay_row, exposure.stay_days, n),
                                       n_groups),
                           spread_sums(tariff.person_group, tariff.person_cost, exposure.tariff_days, n_groups)])
    check_pence(person_base, f"base-year costs in {', '.join(base_names)}")
    check_pence(person_outcome, f"outcome-year costs in {', '.join(outcome_names)}")
    dep = by_deprivation(features, practice_codes, practice_index, groups, days, need, n_groups, exposure) \
        if deprivation else None
    return PopulationPart(settings=settings, n_groups=n_groups, practice_codes=practice_codes,
                          icb_codes=_icb_codes(practice_codes, practices), sums=sums,
                          person_cell=person_cell, person_base=person_base, person_outcome=person_outcome,
                          bad_base=int(bad_base), bad_outcome=int(bad_outcome), has_need=has_need,
                          need_missing=need_missing, need_negative=need_negative, tariff=tariff,
                          unregistered_pence=unregistered, read_pence=read, spread=spread,
                          pcn_codes=_pcn_codes(practice_codes, practices),
                          emergency=_emergency_cells(features, person_cell, (len(practice_codes), n_groups)),
                          deprivation=dep)


#: IMD deciles (1 = most deprived 10 %), the finest deprivation band a person carries.
IMD_DECILES = 10


def by_deprivation(features: pd.DataFrame, practice_codes: np.ndarray, practice_index: np.ndarray, groups: np.ndarray,
                   days: np.ndarray, need: np.ndarray, n_groups: int, exposure=None) -> np.ndarray:
    """(2, practices, groups, IMD deciles) int64: list days in the outcome year and predicted need
    pence x list days (zeros without complete predictions), by each person's IMD decile; by the
    day per registration period's practice when there is an ``exposure``, as :func:`_by_day`."""
    if "imd_decile" not in features.columns:
        raise DataError("features have no column 'imd_decile', needed for the health-inequalities adjustment")
    decile = features["imd_decile"].to_numpy(dtype=np.int64, na_value=0)
    bad = (decile < 1) | (decile > IMD_DECILES)
    if bad.any():
        raise DataError(f"features column 'imd_decile': {int(bad.sum())} value(s) outside 1..{IMD_DECILES} "
                        f"(e.g. person_id {', '.join(map(str, features['person_id'].to_numpy()[bad][:5]))})")
    n_practices = len(practice_codes)
    n = n_practices * n_groups * IMD_DECILES
    if exposure is None:
        rows, cell, stay_days = np.arange(len(features)), practice_index.astype(np.int64) * n_groups + groups, days
    else:
        rows = exposure.stay_row
        cell = np.searchsorted(practice_codes, exposure.stay_practice) * n_groups + groups.astype(np.int64)[rows]
        stay_days = exposure.stay_days
    key = cell * IMD_DECILES + decile[rows] - 1
    out = np.zeros((2, n), dtype=np.int64)
    out[0] = _sum_by(key, stay_days, n)
    if need.size:
        out[1] = _sum_by(key, np.rint(need[rows] * 100.0) * stay_days, n)
    return out.reshape(2, n_practices, n_groups, IMD_DECILES)


def _with_codes(codes: np.ndarray, index: np.ndarray, more: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted union of practice ``codes`` and ``more``, and ``index`` (into ``codes``) renumbered to it."""
    union = np.asarray(sorted(set(codes.tolist()) | set(np.asarray(more, dtype=object).tolist())), dtype=object)
    if len(union) == len(codes):
        return codes, index
    return union, np.searchsorted(union, codes).astype(np.int32)[index]


def _by_day(exposure, settings, practice_codes: np.ndarray, groups: np.ndarray, need: np.ndarray, n_groups: int):
    """(list days, need pence x days, outcome pence, list days without a predicted cost) per
    (practice, group) cell from the stays of the outcome year, and each person's outcome pence
    (charged to practices, all stays). ``need`` is NaN for people without a prediction."""
    n_cells = len(practice_codes) * n_groups
    group = groups.astype(np.int64)[exposure.stay_row]
    cell = np.searchsorted(practice_codes, exposure.stay_practice).astype(np.int64) * n_groups + group
    pence = exposure.stay_pence[:, setting_indices(settings)].sum(axis=1)
    shape = (len(practice_codes), n_groups)
    days = np.bincount(cell, weights=exposure.stay_days, minlength=n_cells).astype(np.int64).reshape(shape)
    need_days = np.zeros(shape, dtype=np.int64)
    unpredicted = np.zeros(shape, dtype=np.int64)
    if need.size:
        stay_need = need[exposure.stay_row]
        given = ~np.isnan(stay_need)
        need_days = _sum_by(cell, np.rint(np.where(given, stay_need, 0.0) * 100.0) * exposure.stay_days,
                            n_cells).reshape(shape)
        unpredicted = _sum_by(cell[~given], exposure.stay_days[~given], n_cells).reshape(shape)
    outcome = _sum_by(cell, pence, n_cells).reshape(shape)
    person = _sum_by(exposure.stay_row, pence, len(groups))
    return days, need_days, outcome, unpredicted, person


class PopulationBuilder:
    """Adds :class:`PopulationPart` s in order and builds the :class:`Population` of them all.

    The per-person arrays (20 bytes a person, and 10 per person of the tariff year) wait in a
    :class:`~riskcap.stream.spill.Spill` in ``spill_dir`` until :meth:`build` reads them back
    once: while partitions stream, memory holds one part's people, not everyone's (1.26 GB at
    England's 63M).
    """

    _DTYPES = {"person_cell": np.int32, "person_base": np.int64, "person_outcome": np.int64}
    _TARIFF_DTYPES = {"person_cost": np.int64, "person_group": np.int16}  # of the tariff year's people priced

    def __init__(self, scheme: NeedGroupScheme, spill_dir: str | Path | None = None):
        self.scheme = scheme
        self.spill_dir = spill_dir
        self._parts: list[PopulationPart] = []  # with their per-person arrays dropped
        self._bounds: list[tuple[int, int]] = []
        self._people = Spill(spill_dir)
        self._tariff = Spill(spill_dir)

    def add(self, part: PopulationPart) -> None:
        """Append one part (parts must come in person order: the order of the per-person arrays)."""
        if part.n_groups != len(self.scheme.groups):
            raise ValueError(f"part has {part.n_groups} need groups; scheme '{self.scheme.name}' has "
                             f"{len(self.scheme.groups)}")
        if self._parts and part.settings != self._parts[0].settings:
            raise ValueError(f"parts costed over different settings: {self._parts[0].settings} and {part.settings}")
        forward = part.tariff.method == FORWARD
        if self._parts and part.tariff.method != self._parts[0].tariff.method:
            raise ValueError("parts priced by different tariff methods")
        start = self._people.rows
        self._people.append(_arrays(part, self._DTYPES))
        self._bounds.append((start, self._people.rows))
        tariff = part.tariff
        if forward:
            self._tariff.append(_arrays(tariff, self._TARIFF_DTYPES))
            tariff = replace(tariff, person_cost=None, person_group=None)
        self._parts.append(replace(part, person_cell=None, person_base=None, person_outcome=None, tariff=tariff))

    def build(self) -> "Population":
        """The combined Population (practice codes sorted, cells renumbered); the builder is spent."""
        if not self._parts:
            raise ValueError("no population parts to combine")
        parts, n_groups = self._parts, len(self.scheme.groups)
        icb = {code: i for p in parts for code, i in zip(p.practice_codes.tolist(), p.icb_codes.tolist())}
        pcn = {code: c for p in parts if p.pcn_codes is not None
               for code, c in zip(p.practice_codes.tolist(), p.pcn_codes.tolist())}
        codes = np.asarray(sorted(icb), dtype=object)
        for measure, what, limit in ((2, "base-year costs", MAX_PENCE), (3, f"'{PREDICTED_COST}' x list days",
                                     MAX_PRODUCT), (4, "outcome-year costs", MAX_PENCE)):
            check_pence([p.sums[measure].sum(dtype=np.float64) for p in parts], what, limit)  # before adding
        emergency = None if any(p.emergency is None for p in parts) else np.zeros((len(codes), n_groups), np.int64)
        with_dep = all(p.deprivation is not None for p in parts)
        deprivation = np.zeros((2, len(codes), n_groups, IMD_DECILES), dtype=np.int64) if with_dep else None
        sums = np.zeros((N_SUMS, len(codes), n_groups), dtype=np.int64)
        cell, base, outcome = _read_back(self._people, self._DTYPES)
        for part, (lo, hi) in zip(parts, self._bounds):
            rows = np.searchsorted(codes, part.practice_codes).astype(np.int64)
            sums[:, rows, :] += part.sums
            if emergency is not None:
                emergency[rows, :] += part.emergency
            if with_dep:
                deprivation[:, rows] += part.deprivation
            if not np.array_equal(rows, np.arange(len(codes))):
                lut = (rows[:, None] * n_groups + np.arange(n_groups)).ravel().astype(np.int32)
                for start in range(lo, hi, _REMAP_CHUNK):
                    stop = min(hi, start + _REMAP_CHUNK)
                    cell[start:stop] = lut[cell[start:stop]]
        self._parts = []
        settings = parts[0].settings
        method = parts[0].tariff.method
        tariff = TariffBasis(method=method, people=sum(p.tariff.people for p in parts),
                             days=sum(p.tariff.days for p in parts), cost=sum(p.tariff.cost for p in parts))
        if method == FORWARD:
            tariff.person_cost, tariff.person_group = _read_back(self._tariff, self._TARIFF_DTYPES)
        missing = sum(p.need_missing for p in parts)
        unpredicted = None
        if all(p.has_need for p in parts) and (not missing or method == FORWARD):
            negative = sum(p.need_negative for p in parts)
            if negative:
                raise DataError(f"features: {negative} negative value(s) in '{PREDICTED_COST}'")
            need_days = sums[3]
            if missing:
                unpredicted = sums[5]
        else:
            need_days = None
        bad = sum(p.bad_base for p in parts)
        if bad:
            raise DataError(f"features: {bad} base-year cost value(s) in "
                            f"{', '.join(base_cost_column(s) for s in settings)} are missing, negative or "
                            f"too large (GBP {_MAX_GBP:,.0f} or more)")
        return Population(
            scheme=self.scheme, settings=settings, practice_codes=codes,
            icb_codes=np.asarray([icb[c] for c in codes], dtype=object),
            people=sums[0], list_days=sums[1], base=sums[2], need_days=need_days,
            unpredicted_days=unpredicted, unpredicted_people=missing if unpredicted is not None else 0,
            person_cell=cell, person_base=base, _outcome=sums[4], _person_outcome=outcome,
            _outcome_bad=sum(p.bad_outcome for p in parts), tariff=tariff,
            unregistered_pence=sum(p.unregistered_pence for p in parts), read_pence=sum(p.read_pence for p in parts),
            spread=None if any(p.spread is None for p in parts) else sum(p.spread for p in parts),
            pcn_codes=np.asarray([pcn.get(c, "") for c in codes], dtype=object), emergency=emergency,
            deprivation=None if deprivation is None else
            np.stack([deprivation[0], deprivation[1] if need_days is not None else np.zeros_like(deprivation[1])]),
        )


_REMAP_CHUNK = 1 << 20


def _arrays(source, dtypes: dict) -> pa.Table:
    """The per-person arrays ``dtypes`` names, attributes of ``source``, as one table."""
    return pa.table({name: np.ascontiguousarray(getattr(source, name), dtype=d) for name, d in dtypes.items()})


def _read_back(spill: Spill, dtypes: dict) -> list[np.ndarray]:
    """Everyone's arrays ``dtypes`` names, then the spill is closed."""
    with spill:
        return [spill.column(name, d) for name, d in dtypes.items()]


@dataclass
class Population:
    """A grouped, costed population as practice x need-group aggregates (all int64 pence).

    Attributes
    ----------
    scheme, settings
        The need-group scheme and the in-scope settings the costs were summed over.
    practice_codes, icb_codes
        Practices with at least one person, sorted by practice_code (the row order of
        every per-practice array and the tie-break order of pence allocation).
    people, list_days, base, need_days
        (practices, groups) arrays: people at the index date (with an exposure: and those
        joining a list in the outcome year) at their practice then; days on each practice's
        list in the outcome year; base-year in-scope cost (pence) of the people; sum of
        predicted cost (pence) x list days (None without predictions).
    unpredicted_days, unpredicted_people
        By the day, when some people have a predicted cost and some not (people joining a
        list after T are not in scores made at T): list days per cell of the people without
        one, whom fair shares price at their group tariff, and how many they are; else None, 0.
    person_cell, person_base
        Per person: cell (practice x n_groups + group, int32) and base-year pence (int64).
    outcome, person_outcome
        Outcome-year in-scope cost (pence) charged to each cell's practice and per person; a
        missing or negative outcome-year cost is raised on first use (settlement needs it).
    tariff
        The :class:`TariffBasis` the tariffs are priced from (``tariff.method`` names how).
    unregistered_pence, read_pence
        Outcome-year in-scope cost on days the person was on no list (the ICB's unregistered
        line), and all outcome-year in-scope cost read: ``read = outcome.sum() + unregistered``.
    """

    scheme: NeedGroupScheme
    settings: tuple[str, ...]
    practice_codes: np.ndarray
    icb_codes: np.ndarray
    people: np.ndarray
    list_days: np.ndarray
    base: np.ndarray
    need_days: np.ndarray | None
    person_cell: np.ndarray = field(repr=False)
    person_base: np.ndarray = field(repr=False)
    _outcome: np.ndarray = field(default=None, repr=False)
    _person_outcome: np.ndarray = field(default=None, repr=False)
    _outcome_bad: int = field(default=0, repr=False)
    tariff: TariffBasis | None = None
    unregistered_pence: int = 0
    read_pence: int = 0
    spread: np.ndarray | None = field(default=None, repr=False)  # noise statistics (accuracy.spread)
    #: (2, practices, groups, IMD deciles): list days and need pence x days by IMD decile
    #: (:func:`by_deprivation`; None unless asked for, as only the inequalities adjustment needs it)
    deprivation: np.ndarray | None = field(default=None, repr=False)
    #: register entries per practice x age-sex band in the base and current years
    #: (:func:`riskcap.capitation.coding.register_cells`; None unless a run asked for them)
    registers: pd.DataFrame | None = field(default=None, repr=False)
    _coding_growth: pd.DataFrame | None = field(default=None, repr=False)
    unpredicted_days: np.ndarray | None = field(default=None, repr=False)
    unpredicted_people: int = 0
    _tails: dict = field(default_factory=dict, repr=False)
    _excess: dict = field(default_factory=dict, repr=False)
    _caps: dict = field(default_factory=dict, repr=False)
    pcn_codes: np.ndarray | None = None  # per practice, "" where unknown (risk pooling by PCN)
    #: (practices, groups) people with an emergency admission in the outcome year, at their practice at
    #: the index date (None without a complete y_emergency_12m column): the outcome withhold's measure
    emergency: np.ndarray | None = None

    @property
    def n_people(self) -> int:
        return int(self.people.sum())

    @property
    def coding_growth(self) -> pd.DataFrame:
        """Each practice's standardised register growth against its ICB's (:mod:`riskcap.capitation.coding`)."""
        if self._coding_growth is None:
            if self.registers is None:
                raise DataError("the coding-intensity safeguard needs register counts in the base and current "
                                "years: run from a data folder (riskcap capitation run/sweep --data), not a features "
                                "frame")
            from riskcap.capitation.coding import coding_growth  # noqa: PLC0415

            self._coding_growth = coding_growth(self.registers)
        return self._coding_growth

    @property
    def shape(self) -> tuple[int, int]:
        return self.people.shape

    @property
    def outcome(self) -> np.ndarray:
        self._check_outcome()
        return self._outcome

    @property
    def person_outcome(self) -> np.ndarray:
        self._check_outcome()
        return self._person_outcome

    def _check_outcome(self) -> None:
        if self._outcome_bad:
            raise DataError(f"features: {self._outcome_bad} outcome-year cost value(s) in "
                            f"{', '.join(outcome_cost_column(s) for s in self.settings)} are missing, negative "
                            f"or too large (GBP {_MAX_GBP:,.0f} or more)")

    @classmethod
    def from_features(cls, features: pd.DataFrame, scheme: NeedGroupScheme, settings, practices: pd.DataFrame | None = None,
                      groups: np.ndarray | None = None, deprivation: bool = False) -> "Population":
        """Group people (unless ``groups`` is given) and aggregate them per practice x group.

        The same as :meth:`combine` of one :func:`population_part` of the whole frame.

        Parameters
        ----------
        features
            Person features at the index date (interface of riskcap.features), with the
            scheme's feature columns, ``practice_code``, ``list_days_next_12`` and
            ``cost_<setting>_0_12`` / ``cost_next_12m_<setting>`` for each in-scope setting;
            ``predicted_cost_gbp`` when fair shares should use predicted cost.
        practices
            Frame with practice_code and icb_code (the contract's practices table); ICB is
            "UNKNOWN" for practices missing from it, or all of them when it is None.
        groups
            Need-group index per row, when already computed with :func:`assign_need_groups`.
        deprivation
            Also sum list days and need by IMD decile (:func:`by_deprivation`), for the
            health-inequalities adjustment.
        """
        return cls.combine([population_part(features, scheme, settings, practices, groups, deprivation=deprivation)],
                           scheme)

    @classmethod
    def combine(cls, parts, scheme: NeedGroupScheme, spill_dir: str | Path | None = None) -> "Population":
        """The Population of consecutive partitions' parts, exactly as :meth:`from_features` on their
        concatenated frames (a practice may appear in several parts); ``spill_dir`` as for
        :class:`PopulationBuilder`."""
        builder = PopulationBuilder(scheme, spill_dir)
        for part in parts:
            builder.add(part)
        return builder.build()

    def release_people(self) -> None:
        """Let go of the per-person arrays (20 bytes a person) once every scenario is evaluated;
        aggregates and the caps and excesses already computed stay, new ones then raise."""
        self.person_cell = self.person_base = self._person_outcome = None
        if self.tariff is not None:
            self.tariff.person_cost = self.tariff.person_group = None

    @property
    def forward(self) -> bool:
        """Whether the tariffs are priced forward per registered day (:data:`FORWARD`)."""
        return self.tariff is not None and self.tariff.method == FORWARD

    def _tariff_people(self) -> tuple[np.ndarray, np.ndarray]:
        """Per person of the tariff year: cost (pence) and cell (group, or practice x group)."""
        if self.forward:
            return self._people(self.tariff.person_cost), self.tariff.person_group
        return self._people(self.person_base), self.person_cell

    def _people(self, values: np.ndarray | None) -> np.ndarray:
        if values is None:
            raise RuntimeError("this population's per-person costs were released (release_people)")
        return values

    # --- the individual cost cap -----------------------------------------------------
    def cap_value(self, percentile: float) -> int:
        """Nearest-rank percentile of individual in-scope cost in the tariff year (pence).

        Over the people the tariffs are priced from (forward: those registered a year before T,
        each person's cost in the following year on the days they were registered, not
        annualised; base year: the people at T and their base-year cost). The value at rank
        ``ceil(percentile / 100 * n)`` of the sorted costs (no interpolation), so the cap is
        always one person's actual cost.
        """
        if percentile not in self._caps:
            values, cells = self._tariff_people()
            n = values.size
            k = int(min(max(1, -(-Fraction(str(percentile)) * n // 100)), n))  # ceil
            tail = self._tails.get("tariff")
            if tail is not None and k > n - tail[2].size:  # the answer is in the people already gathered
                rank = k - (n - tail[2].size) - 1
                self._caps[percentile] = int(np.partition(tail[2], rank)[rank])
                return self._caps[percentile]
            value, tail = select_tail(values, k, cells)
            if tail is not None and ("tariff" not in self._tails or tail[0] < self._tails["tariff"][0]):
                self._tails["tariff"] = tail  # the people above the cap: excess("tariff", cap) reuses them
            self._caps[percentile] = value
        return self._caps[percentile]

    def excess(self, which: str, threshold: int) -> np.ndarray:
        """(practices, groups) sums of each person's cost above ``threshold`` pence.

        ``which`` is "base" (base-year cost), "outcome" (outcome-year cost) or "tariff"
        (tariff-year cost of the people the tariffs are priced from: a (groups,) array). People
        above the lowest threshold asked for so far are kept, so later calls only touch them.
        """
        key = (which, int(threshold))
        if key in self._excess:
            return self._excess[key]
        if which == "tariff":
            values, all_cells = self._tariff_people()
        else:
            values = self._people(self.person_base if which == "base" else self.person_outcome)
            all_cells = self.person_cell
        tail = self._tails.get(which)
        if tail is None or threshold < tail[0]:
            amounts, cells, _ = values_between(values, int(threshold) + 1, np.iinfo(np.int64).max, all_cells)
            tail = (int(threshold), cells, amounts)
            self._tails[which] = tail
        _, cells, amounts = tail
        over = amounts - threshold
        keep = over > 0
        n_groups = self.shape[1]
        size = n_groups if which == "tariff" and self.forward else self.people.size
        # float64 sums of whole pence are exact below 2**53 pence (GBP 90 trillion)
        sums = np.bincount(cells[keep], weights=over[keep], minlength=size)
        out = np.rint(sums).astype(np.int64)
        out = out.reshape(-1, n_groups).sum(axis=0) if which == "tariff" else out.reshape(self.shape)
        self._excess[key] = out
        return out


def practice_index_of(codes: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Practice index per person (int32) and the sorted distinct practice codes.

    Features are sorted by person_id and person_ids run in practice_code order, so the codes
    usually come in sorted runs: then arrow's run-end encoding finds them in one pass.
    Otherwise (or for non-arrow strings) this falls back to ``pandas.factorize(sort=True)``.
    """
    if codes.isna().any():
        raise DataError(f"features: {int(codes.isna().sum())} person(s) have no practice_code")
    chunks = None
    if isinstance(codes.dtype, pd.StringDtype) and codes.dtype.storage == "pyarrow":
        arrow = pa.array(codes.array)
        chunks = arrow.chunks if isinstance(arrow, pa.ChunkedArray) else [arrow]
    if chunks is not None and len(codes):
        ends, values, offset = [], [], 0
        for chunk in chunks:
            if len(chunk) == 0:
                continue
            ree = pc.run_end_encode(chunk)
            ends.append(np.asarray(ree.run_ends, dtype=np.int64) + offset)
            values.extend(ree.values.to_pylist())
            offset += len(chunk)
        ends_all = np.concatenate(ends)
        keep = np.ones(len(values), dtype=bool)  # merge runs split across chunk boundaries
        keep[:-1] = [a != b for a, b in zip(values[:-1], values[1:])]
        values = [v for v, k in zip(values, keep) if k]
        ends_all = ends_all[keep]
        if all(a < b for a, b in zip(values[:-1], values[1:])):
            lengths = np.diff(ends_all, prepend=0)
            return (np.repeat(np.arange(len(values), dtype=np.int32), lengths),
                    np.asarray(values, dtype=object))
    index, uniques = pd.factorize(codes, sort=True)
    return index.astype(np.int32), np.asarray(uniques, dtype=object)


def _float_list(features: pd.DataFrame, names: list[str]):
    """Float64 GBP columns as a numba typed list (no copies for float64 columns)."""
    out = numba.typed.List.empty_list(numba.types.Array(numba.float64, 1, "C", readonly=True))
    for name in names:
        out.append(_float_column(features, name))
    return out


def _float_column(features: pd.DataFrame, name: str) -> np.ndarray:
    s = features[name]
    if isinstance(s.dtype, np.dtype) and s.dtype == np.float64:
        return np.ascontiguousarray(s.to_numpy())
    return s.to_numpy(dtype=np.float64, na_value=np.nan)


def _icb_codes(practice_codes: np.ndarray, practices: pd.DataFrame | None) -> np.ndarray:
    if practices is None or "icb_code" not in getattr(practices, "columns", ()):
        return np.full(len(practice_codes), "UNKNOWN", dtype=object)
    lookup = dict(zip(practices["practice_code"].astype(str), practices["icb_code"].astype(str)))
    return np.array([lookup.get(str(p), "UNKNOWN") for p in practice_codes], dtype=object)


def _emergency_cells(features: pd.DataFrame, person_cell: np.ndarray, shape: tuple[int, int]) -> np.ndarray | None:
    """People with an emergency admission in the outcome year (``y_emergency_12m``) per cell, or None
    when the column is missing or incomplete."""
    if LABEL not in features.columns:
        return None
    flag = _float_column(features, LABEL)
    if np.isnan(flag).any():
        return None
    return np.bincount(person_cell, weights=flag > 0, minlength=shape[0] * shape[1]).astype(np.int64).reshape(shape)


def _pcn_codes(practice_codes: np.ndarray, practices: pd.DataFrame | None) -> np.ndarray:
    """Each practice's ``pcn_code`` from the practices table ("" where it has none)."""
    if practices is None or "pcn_code" not in getattr(practices, "columns", ()):
        return np.full(len(practice_codes), "", dtype=object)
    known = practices[practices["pcn_code"].notna()]
    lookup = dict(zip(known["practice_code"].astype(str), known["pcn_code"].astype(str).str.strip()))
    return np.array([lookup.get(str(p), "") for p in practice_codes], dtype=object)


#: Accepted names of the predicted next-year cost column in a scores file.
PREDICTED_COST_ALIASES: tuple[str, ...] = (PREDICTED_COST, "expected_cost_gbp")


def attach_scores(features: pd.DataFrame, scores: pd.DataFrame, source: str = "scores",
                  cost_file: bool | None = None) -> pd.DataFrame:
    """Add score columns to a features frame, matched on person_id.

    A risk scores file (interface 5: ``tier``, ``score``, ``percentile``) gives ``risk_tier``
    (code, see :data:`~riskcap.capitation.scheme.RISK_TIER_CODES`), ``risk_score`` and
    ``risk_percentile``; a cost scores file (``predicted_cost_gbp`` or ``expected_cost_gbp``,
    ``model == "cost"``) gives ``predicted_cost_gbp``. People without a score get risk_tier 0
    and NaN elsewhere. ``cost_file`` says whether the whole file is a cost model's (for a
    slice of a file); None: every row of ``scores`` has ``model == "cost"``. Raises
    DataError for duplicate person_ids or unknown tier labels.
    """
    if "person_id" not in scores.columns:
        raise DataError(f"{source}: column 'person_id' is required")
    dupes = scores["person_id"].duplicated()
    if dupes.any():
        raise DataError(f"{source}: {int(dupes.sum())} duplicate person_id(s), e.g. "
                        f"{', '.join(map(str, scores.loc[dupes, 'person_id'].head(5)))}")
    if cost_file is None:
        cost_file = "model" in scores.columns and (scores["model"].astype(str) == "cost").all()
    keyed = scores.set_index("person_id")
    ids = features["person_id"]
    new: dict[str, np.ndarray] = {}
    if "tier" in scores.columns:
        labels = scores["tier"].astype(str)
        unknown = sorted(set(labels) - set(RISK_TIER_CODES))
        if unknown:
            raise DataError(f"{source}: column 'tier' has unknown value(s) {unknown[:5]}; allowed: "
                            f"{', '.join(RISK_TIER_CODES)}")
        codes = pd.Series(labels.map(RISK_TIER_CODES).to_numpy(), index=scores["person_id"].to_numpy())
        new["risk_tier"] = ids.map(codes).fillna(0).to_numpy().astype(np.int8)
    pairs = [] if cost_file else [("score", "risk_score"), ("percentile", "risk_percentile")]
    cost_col = next((c for c in PREDICTED_COST_ALIASES if c in scores.columns), None)
    if cost_col:
        pairs.append((cost_col, PREDICTED_COST))
    for src, dst in pairs:
        if src in keyed.columns:
            new[dst] = ids.map(keyed[src].astype(np.float64)).to_numpy(dtype=np.float64, na_value=np.nan)
    if not new:
        raise DataError(f"{source}: no score columns found: expected 'tier' (risk scores) or "
                        f"{' / '.join(PREDICTED_COST_ALIASES)} (cost scores)")
    # one concat, not column by column (a features frame has hundreds of blocks); the caller's frame is untouched
    return pd.concat([features.drop(columns=[c for c in new if c in features.columns]),
                      pd.DataFrame(new, index=features.index)], axis=1)
