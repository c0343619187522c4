"""Capitation scenarios: YAML files in ``configs/scenarios/``, validated on load.

Every rate is a percentage with a ``_pct`` suffix (``cost_uplift_pct: 2.9`` is 2.9 %),
held internally as integer parts per million of a whole so money arithmetic stays exact.
Errors name the file, the dotted key and the allowed values. The full key reference is in
``docs/capitation.md``; :data:`DEFAULTS` shows every key with its default.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from riskcap.capitation.money import PPM, gbp_to_pence
from riskcap.config import load_yaml, resolve_config
from riskcap.errors import ConfigError
from riskcap.names import ALLOWED as SAFE_NAME
from riskcap.names import is_safe_name
from riskcap.schema import SETTING_CODES

#: Settings in scope unless a scenario says otherwise: all NHS settings (no social care).
HEALTH_SETTINGS: tuple[str, ...] = tuple(s for s in SETTING_CODES if s != "social_care")
MODES = ("tariff", "fair_shares", "blend")
NEEDS = ("auto", "predicted_cost", "group_tariff")
EXCESS = ("pool", "drop")

#: Every key a scenario may set, with its default (a scenario file only needs ``name``).
DEFAULTS: dict = {
    "name": None,
    "description": "",
    "need_groups": "yoc_illustrative",
    "settings": list(HEALTH_SETTINGS),
    "tariff": {
        "cap_percentile": None,
        "excess": "pool",
        "demographic_growth_pct": 0,
        "cost_uplift_pct": 0,
        "efficiency_pct": 0,
    },
    "budget": {
        "mode": "tariff",
        "envelope_gbp": None,
        "need": "auto",
        "tariff_weight_pct": 50,
        "pace_of_change": None,
        "components": None,
        "inequalities": None,
        "coding_intensity": None,
    },
    "top_slices": {
        "contingency_pct": 0,
        "outcome_withhold_pct": 0,
        "withhold_earned_pct": 100,
        "withhold_earned_by": None,  # issue 19 lever 7: see WITHHOLD_OUTCOME_DEFAULTS
    },
    "corridor": None,
    "stop_loss": None,  # issue 19 lever 1: see STOP_LOSS_DEFAULTS
    "risk_pool": None,  # issue 19 lever 2: see RISK_POOL_DEFAULTS
}
PACE_DEFAULTS = {"step_pct": 100, "min_growth_pct": None, "max_growth_pct": None, "years": 1,
                 "envelope_growth_pct": 0}
_CORRIDOR_KEYS = {"overspend", "underspend", "loss_share_pct", "gain_share_pct",
                  "provider_loss_cap_pct", "provider_gain_cap_pct", "payer_exposure_cap_pct"}
_TIER_KEYS = {"from_pct", "to_pct", "payer_share_pct"}
#: ``stop_loss`` keys (a section that is absent, null or has ``attachment_gbp: null`` is off).
STOP_LOSS_DEFAULTS = {"attachment_gbp": None, "pool_share_pct": 100, "practice_cap_gbp": None}
POOL_LEVELS = ("practice", "pcn", "icb")
#: ``risk_pool`` keys (absent or null: each practice settles alone, corridor bands as written).
RISK_POOL_DEFAULTS = {"level": "practice", "widen_by_size": None}
WIDEN_DEFAULTS = {"reference_list_size": None, "max_factor": 4, "protects": "practice"}
#: Who a size-aware corridor protects from a small unit's noise: the practice (its own first band
#: narrows, so the payer shares sooner) or the payer (every band widens, as CMS's minimum savings rate).
WIDEN_PROTECTS = ("practice", "payer")
OUTCOME_MEASURES = ("emergency_admissions",)
#: ``top_slices.withhold_earned_by`` keys: the withhold earned per practice from a measured outcome.
WITHHOLD_OUTCOME_DEFAULTS = {"measure": "emergency_admissions", "full_at_ratio": 0.95, "none_at_ratio": 1.10}


@dataclass(frozen=True)
class CorridorTier:
    """The payer's share of the part of a variance between ``from`` and ``to`` (% of budget)."""

    from_ppm: int
    to_ppm: int | None  # None: no upper bound
    payer_share_ppm: int


@dataclass(frozen=True)
class Corridor:
    """Risk-share terms: tiers for overspends and underspends, caps and collars."""

    overspend: tuple[CorridorTier, ...]
    underspend: tuple[CorridorTier, ...]
    provider_loss_cap_ppm: int | None = None
    provider_gain_cap_ppm: int | None = None
    payer_exposure_cap_ppm: int | None = None

    @classmethod
    def provider_bears_all(cls) -> "Corridor":
        tier = (CorridorTier(0, None, 0),)
        return cls(tier, tier)


@dataclass(frozen=True)
class PaceOfChange:
    """Move ``step`` of the way from current to target, growth kept within [min, max]."""

    step_ppm: int
    min_growth_ppm: int | None
    max_growth_ppm: int | None
    years: int = 1  # length of the path reported (budgets are year 1)
    envelope_growth_ppm: int = 0  # the envelope's growth on last year's, and each later year's on the one before


@dataclass(frozen=True)
class StopLoss:
    """Stop-loss / high-cost pool: above ``attachment`` pence a person-year, the pool pays
    ``pool_share`` of the cost; a practice bears at most ``practice_cap`` pence of the rest."""

    attachment_pence: int  # outcome-year (contract) prices
    pool_share_ppm: int
    practice_cap_pence: int | None = None


@dataclass(frozen=True)
class RiskPool:
    """Which unit a corridor settles (practice, PCN or ICB) and the optional 1/sqrt(list size)
    widening of corridor bands below ``reference_list_size`` people (at most ``max_factor``)."""

    level: str = "practice"
    reference_list_size: int | None = None
    max_factor_ppm: int = 4 * PPM
    protects: str = "practice"  # one of WIDEN_PROTECTS

    @property
    def is_default(self) -> bool:
        return self.level == "practice" and self.reference_list_size is None


@dataclass(frozen=True)
class WithholdByOutcome:
    """Each practice earns its withhold back by observed / expected outcome: all at or below
    ``full_at`` (a ratio), none at or above ``none_at``, in a straight line between."""

    measure: str
    full_at: Fraction
    none_at: Fraction


@dataclass(frozen=True)
class Scenario:
    """A validated capitation scenario (see :data:`DEFAULTS` for the YAML keys)."""

    name: str
    description: str
    need_groups: str
    settings: tuple[str, ...]
    cap_percentile: float | None
    excess: str
    demographic_growth_ppm: int
    cost_uplift_ppm: int
    efficiency_ppm: int
    mode: str
    envelope_pence: int | None
    need: str
    tariff_weight_ppm: int
    pace_of_change: PaceOfChange | None
    contingency_ppm: int
    outcome_withhold_ppm: int
    withhold_earned_ppm: int
    corridor: Corridor
    source: str
    raw: dict
    base_dir: str | None = None  # folder of the scenario file: relative need_groups paths start here
    stop_loss: StopLoss | None = None
    risk_pool: RiskPool = RiskPool()
    withhold_by_outcome: WithholdByOutcome | None = None
    components: tuple[Component, ...] = ()  # budget.components: the envelope split into component budgets
    inequalities: Inequalities | None = None  # budget.inequalities: the deprivation adjustment
    coding_intensity: CodingIntensity | None = None  # budget.coding_intensity: the register-growth safeguard

    @property
    def scheme_location(self) -> str:
        """``need_groups`` as a path relative to the scenario file when such a file exists, else as given."""
        if self.base_dir and not Path(self.need_groups).is_absolute():
            candidate = Path(self.base_dir) / self.need_groups
            if candidate.is_file():
                return str(candidate)
        return self.need_groups

    @property
    def uplift(self) -> Fraction:
        """(1 + demographic growth) x (1 + cost uplift) x (1 - efficiency), exactly."""
        return Fraction((PPM + self.demographic_growth_ppm) * (PPM + self.cost_uplift_ppm)
                        * (PPM - self.efficiency_ppm), PPM**3)

    def with_overrides(self, overrides: dict, label: str = "override") -> "Scenario":
        """A new scenario with dotted keys replaced (``{"tariff.cost_uplift_pct": 2.9}``), re-validated."""
        raw = copy.deepcopy(self.raw)
        for dotted, value in overrides.items():
            set_dotted(raw, dotted, value, f"{self.source} ({label})")
        return parse_scenario(raw, source=f"{self.source} ({label})", base_dir=self.base_dir)


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load and validate a scenario: a YAML path, or a shipped scenario's name."""
    path = resolve_config(name_or_path, folder="scenarios")
    return parse_scenario(load_yaml(path), source=str(path), base_dir=str(path.parent))


def set_dotted(raw: dict, dotted: str, value, source: str) -> None:
    """Set ``a.b.0.c`` in nested dicts/lists, creating missing mappings."""
    parts = dotted.split(".")
    node = raw
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"{source}: key '{dotted}': '{part}' is not an index of a list of {len(node)}")
            key = int(part)
        elif isinstance(node, dict):
            key = part
            if not last and node.get(key) is None:
                node[key] = {}
        else:
            raise ConfigError(f"{source}: key '{dotted}': '{'.'.join(parts[:i])}' is not a section")
        if last:
            node[key] = value
        else:
            node = node[key]


class _Reader:
    """Validation helpers that raise ConfigError naming the file, key and allowed values."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, key: str, msg: str):
        raise ConfigError(f"{self.source}: key '{key}': {msg}")

    def section(self, data, key: str, allowed) -> dict:
        if data is None:
            return {}
        if not isinstance(data, dict):
            self.fail(key, f"expected a mapping with keys {', '.join(sorted(allowed))}")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            self.fail(f"{key}.{unknown[0]}" if key else unknown[0],
                      f"unknown key; allowed keys{' in ' + key if key else ''}: {', '.join(sorted(allowed))}")
        return data

    def number(self, data: dict, key: str, path: str, lo: float, hi: float, default=None, *,
               nullable: bool = False, lo_open: bool = False, hi_open: bool = False):
        value = data.get(key, default)
        if value is None:
            if nullable:
                return None
            self.fail(path, "a number is required")
        lo_s, hi_s = ("(" if lo_open else "[") + f"{lo:g}", f"{hi:g}" + (")" if hi_open else "]")
        allowed = f"a number in {lo_s}, {hi_s}" + (" or null" if nullable else "")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            self.fail(path, f"{value!r} is not a number; allowed: {allowed}")
        if value < lo or value > hi or (lo_open and value == lo) or (hi_open and value == hi):
            self.fail(path, f"{value!r} is out of range; allowed: {allowed}")
        return value

    def pct(self, data: dict, key: str, path: str, lo: float, hi: float, default=None, *, nullable: bool = False):
        value = self.number(data, key, path, lo, hi, default, nullable=nullable)
        if value is None:
            return None
        ppm = Fraction(str(value)) * 10_000
        if ppm.denominator != 1:
            self.fail(path, f"{value!r} has more than 4 decimal places (percentages are held to 0.0001 %)")
        return int(ppm)

    def choice(self, data: dict, key: str, path: str, allowed, default):
        value = data.get(key, default)
        if value not in allowed:
            self.fail(path, f"{value!r} is not allowed; allowed values: {', '.join(map(str, allowed))}")
        return value

    def text(self, data: dict, key: str, path: str, default=None, required: bool = False) -> str:
        value = data.get(key, default)
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            self.fail(path, "expected a non-empty string" if required else "expected a string")
        return value


def parse_scenario(data: dict, source: str = "<scenario>", base_dir: str | None = None) -> Scenario:
    """Validate a scenario mapping (as read from YAML); ``source`` names it in errors."""
    r = _Reader(source)
    top = r.section(data, "", DEFAULTS)
    name = r.text(top, "name", "name", required=True)
    if not is_safe_name(name):
        r.fail("name", f"{name!r} cannot name the scenario's output folder; allowed: {SAFE_NAME}")
    need_groups = r.text(top, "need_groups", "need_groups", DEFAULTS["need_groups"], required=True)

    settings = top.get("settings", DEFAULTS["settings"])
    if settings == "all":
        settings = list(SETTING_CODES)
    elif settings == "health":
        settings = list(HEALTH_SETTINGS)
    if not isinstance(settings, list) or not settings:
        r.fail("settings", f"expected a non-empty list of settings, 'health' or 'all'; allowed: {', '.join(SETTING_CODES)}")
    for s in settings:
        if s not in SETTING_CODES:
            r.fail("settings", f"unknown setting {s!r}; allowed: {', '.join(SETTING_CODES)}")
    if len(set(settings)) != len(settings):
        r.fail("settings", "a setting is listed twice")

    t = r.section(top.get("tariff"), "tariff", DEFAULTS["tariff"])
    cap = r.number(t, "cap_percentile", "tariff.cap_percentile", 50, 100, nullable=True, hi_open=True)
    excess = r.choice(t, "excess", "tariff.excess", EXCESS, "pool")
    growth = r.pct(t, "demographic_growth_pct", "tariff.demographic_growth_pct", -50, 100, 0)
    uplift = r.pct(t, "cost_uplift_pct", "tariff.cost_uplift_pct", -50, 100, 0)
    efficiency = r.pct(t, "efficiency_pct", "tariff.efficiency_pct", 0, 50, 0)

    b = r.section(top.get("budget"), "budget", DEFAULTS["budget"])
    mode = r.choice(b, "mode", "budget.mode", MODES, "tariff")
    envelope_gbp = r.number(b, "envelope_gbp", "budget.envelope_gbp", 0, 1e12, nullable=True, lo_open=True)
    if envelope_gbp is not None and mode == "tariff":
        r.fail("budget.envelope_gbp", "only applies to modes fair_shares and blend (in tariff mode the envelope "
                                      "is tariffs x registered people); remove it or change budget.mode")
    if envelope_gbp is not None and gbp_to_pence(envelope_gbp) == 0:
        r.fail("budget.envelope_gbp", f"{envelope_gbp!r} rounds to 0 pence; allowed: at least 0.005 (half a penny), "
                                      "in pounds")
    need = r.choice(b, "need", "budget.need", NEEDS, "auto")
    tariff_weight = r.pct(b, "tariff_weight_pct", "budget.tariff_weight_pct", 0, 100, 50)
    pace = None
    if b.get("pace_of_change") is not None:
        p = r.section(b["pace_of_change"], "budget.pace_of_change", PACE_DEFAULTS)
        pace = PaceOfChange(
            step_ppm=r.pct(p, "step_pct", "budget.pace_of_change.step_pct", 0, 100, 100),
            min_growth_ppm=r.pct(p, "min_growth_pct", "budget.pace_of_change.min_growth_pct", -100, 100, nullable=True),
            max_growth_ppm=r.pct(p, "max_growth_pct", "budget.pace_of_change.max_growth_pct", -100, 1000, nullable=True),
            years=r.number(p, "years", "budget.pace_of_change.years", 1, 20, 1),
            envelope_growth_ppm=r.pct(p, "envelope_growth_pct", "budget.pace_of_change.envelope_growth_pct",
                                      -50, 100, 0),
        )
        if not float(pace.years).is_integer():
            r.fail("budget.pace_of_change.years", f"{pace.years!r} is not a whole number of years; allowed: 1 to 20")
        pace = PaceOfChange(pace.step_ppm, pace.min_growth_ppm, pace.max_growth_ppm, int(pace.years),
                            pace.envelope_growth_ppm)
        if pace.min_growth_ppm is not None and pace.max_growth_ppm is not None and pace.min_growth_ppm > pace.max_growth_ppm:
            r.fail("budget.pace_of_change.min_growth_pct", "must not exceed max_growth_pct")

    s = r.section(top.get("top_slices"), "top_slices", DEFAULTS["top_slices"])
    contingency = r.pct(s, "contingency_pct", "top_slices.contingency_pct", 0, 50, 0)
    withhold = r.pct(s, "outcome_withhold_pct", "top_slices.outcome_withhold_pct", 0, 50, 0)
    earned = r.pct(s, "withhold_earned_pct", "top_slices.withhold_earned_pct", 0, 100, 100)
    by_outcome = _parse_withhold_by_outcome(r, s)

    corridor = _parse_corridor(r, top.get("corridor"))
    stop_loss = _parse_stop_loss(r, top.get("stop_loss"), cap)
    risk_pool = _parse_risk_pool(r, top.get("risk_pool"))
    for lever in ("inequalities", "coding_intensity"):
        if b.get("components") is not None and b.get(lever) is not None:
            r.fail(f"budget.{lever}", "cannot be combined with budget.components (each component is shared by its "
                                      "own need basis); remove one of them")
    return Scenario(
        name=name, description=r.text(top, "description", "description", ""), need_groups=need_groups,
        settings=tuple(settings), cap_percentile=cap, excess=excess, demographic_growth_ppm=growth,
        cost_uplift_ppm=uplift, efficiency_ppm=efficiency, mode=mode,
        envelope_pence=None if envelope_gbp is None else gbp_to_pence(envelope_gbp), need=need,
        tariff_weight_ppm=tariff_weight, pace_of_change=pace, contingency_ppm=contingency,
        outcome_withhold_ppm=withhold, withhold_earned_ppm=earned, corridor=corridor, source=source,
        raw=copy.deepcopy(data), base_dir=base_dir, stop_loss=stop_loss, risk_pool=risk_pool,
        withhold_by_outcome=by_outcome,
        components=_parse_components(r, b.get("components"), tuple(settings)),
        inequalities=_parse_inequalities(r, b.get("inequalities"), mode),
        coding_intensity=_parse_coding_intensity(r, b.get("coding_intensity")),
    )


def _parse_corridor(r: _Reader, data) -> Corridor:
    if data is None or data == "none":
        return Corridor.provider_bears_all()
    c = r.section(data, "corridor", _CORRIDOR_KEYS)
    caps = dict(
        provider_loss_cap_ppm=r.pct(c, "provider_loss_cap_pct", "corridor.provider_loss_cap_pct", 0, 100, nullable=True),
        provider_gain_cap_ppm=r.pct(c, "provider_gain_cap_pct", "corridor.provider_gain_cap_pct", 0, 100, nullable=True),
        payer_exposure_cap_ppm=r.pct(c, "payer_exposure_cap_pct", "corridor.payer_exposure_cap_pct", 0, 100, nullable=True),
    )
    shares = [k for k in ("loss_share_pct", "gain_share_pct") if k in c]
    tiers = [k for k in ("overspend", "underspend") if k in c]
    if shares and tiers:
        r.fail(f"corridor.{shares[0]}", f"give either loss_share_pct/gain_share_pct or tiers ({tiers[0]}), not both")
    if shares:  # provider's share of any overspend / saving from the first pound
        loss = r.pct(c, "loss_share_pct", "corridor.loss_share_pct", 0, 100, 100)
        gain = r.pct(c, "gain_share_pct", "corridor.gain_share_pct", 0, 100, 100)
        return Corridor((CorridorTier(0, None, PPM - loss),), (CorridorTier(0, None, PPM - gain),), **caps)
    if "overspend" not in c:
        r.fail("corridor.overspend", "tiers are required (a list of {from_pct, to_pct, payer_share_pct}), "
                                     "or give loss_share_pct and gain_share_pct")
    over = _parse_tiers(r, c["overspend"], "corridor.overspend")
    under_raw = c.get("underspend", "mirror")
    under = over if under_raw == "mirror" else _parse_tiers(r, under_raw, "corridor.underspend")
    return Corridor(over, under, **caps)


def _parse_tiers(r: _Reader, data, key: str) -> tuple[CorridorTier, ...]:
    if not isinstance(data, list) or not data:
        r.fail(key, "expected a non-empty list of tiers {from_pct, to_pct, payer_share_pct}"
                    + (" or 'mirror'" if key.endswith("underspend") else ""))
    tiers, expected_from = [], 0
    for i, raw in enumerate(data):
        path = f"{key}.{i}"
        t = r.section(raw, path, _TIER_KEYS)
        lo = r.pct(t, "from_pct", f"{path}.from_pct", 0, 1000)
        if lo != expected_from:
            r.fail(f"{path}.from_pct", f"tiers must start at 0 and follow on without gaps: expected "
                                       f"{expected_from / 10_000:g}, got {lo / 10_000:g}")
        last = i == len(data) - 1
        hi = r.pct(t, "to_pct", f"{path}.to_pct", 0, 1000, nullable=True)
        if last and hi is not None:
            r.fail(f"{path}.to_pct", "the last tier must be open-ended: omit to_pct")
        if not last and (hi is None or hi <= lo):
            r.fail(f"{path}.to_pct", f"expected a number above from_pct ({lo / 10_000:g})")
        share = r.pct(t, "payer_share_pct", f"{path}.payer_share_pct", 0, 100)
        tiers.append(CorridorTier(lo, hi, share))
        expected_from = hi
    return tuple(tiers)


# --- issue 19 levers: stop-loss (1) and risk pooling (2) ----------------------------------

def _parse_stop_loss(r: _Reader, data, cap_percentile) -> StopLoss | None:
    sl = r.section(data, "stop_loss", STOP_LOSS_DEFAULTS)
    if not sl:  # absent or null: off (and a sweep's 1,000 variants pay nothing for it)
        return None
    attachment = r.number(sl, "attachment_gbp", "stop_loss.attachment_gbp", 0, 1e9, nullable=True, lo_open=True)
    share = r.pct(sl, "pool_share_pct", "stop_loss.pool_share_pct", 0, 100, 100)
    cap = r.number(sl, "practice_cap_gbp", "stop_loss.practice_cap_gbp", 0, 1e12, nullable=True)
    if attachment is None:
        if sl.get("practice_cap_gbp") is not None:
            r.fail("stop_loss.practice_cap_gbp", "needs stop_loss.attachment_gbp (GBP per person-year)")
        return None
    if gbp_to_pence(attachment) == 0:
        r.fail("stop_loss.attachment_gbp", f"{attachment!r} rounds to 0 pence; allowed: at least 0.005, in pounds")
    if cap_percentile is not None:
        r.fail("stop_loss.attachment_gbp", "a stop-loss and tariff.cap_percentile are two high-cost pools; "
                                           "set one of them (tariff.cap_percentile: null)")
    return StopLoss(gbp_to_pence(attachment), share, None if cap is None else gbp_to_pence(cap))


def _parse_risk_pool(r: _Reader, data) -> RiskPool:
    rp = r.section(data, "risk_pool", RISK_POOL_DEFAULTS)
    level = r.choice(rp, "level", "risk_pool.level", POOL_LEVELS, "practice")
    if rp.get("widen_by_size") is None:
        return RiskPool(level)
    w = r.section(rp["widen_by_size"], "risk_pool.widen_by_size", WIDEN_DEFAULTS)
    size = r.number(w, "reference_list_size", "risk_pool.widen_by_size.reference_list_size", 1, 1e8)
    if not float(size).is_integer():
        r.fail("risk_pool.widen_by_size.reference_list_size", f"{size!r} is not a whole number of people; "
                                                             "allowed: 1 to 100000000")
    factor = r.pct(w, "max_factor", "risk_pool.widen_by_size.max_factor", 1, 10, 4)  # to 4 decimals: x 10,000
    protects = r.choice(w, "protects", "risk_pool.widen_by_size.protects", WIDEN_PROTECTS, "practice")
    return RiskPool(level, int(size), factor * 100, protects)


def _parse_withhold_by_outcome(r: _Reader, top_slices: dict) -> WithholdByOutcome | None:
    key = "top_slices.withhold_earned_by"
    if top_slices.get("withhold_earned_by") is None:
        return None
    w = r.section(top_slices["withhold_earned_by"], key, WITHHOLD_OUTCOME_DEFAULTS)
    if top_slices.get("withhold_earned_pct") is not None:
        r.fail("top_slices.withhold_earned_pct", "give either withhold_earned_pct (the same share everywhere) or "
                                                 "withhold_earned_by (earned per practice by outcome), not both")
    measure = r.choice(w, "measure", f"{key}.measure", OUTCOME_MEASURES, "emergency_admissions")
    full = r.number(w, "full_at_ratio", f"{key}.full_at_ratio", 0, 10, 0.95)
    none = r.number(w, "none_at_ratio", f"{key}.none_at_ratio", 0, 10, 1.10)
    if none <= full:
        r.fail(f"{key}.none_at_ratio", f"{none!r} must be above full_at_ratio ({full!r})")
    return WithholdByOutcome(measure, Fraction(str(full)), Fraction(str(none)))
# --- issue 19 levers B: component budgets and the health-inequalities adjustment -----------

#: How a component budget is shared over practices (``budget.components.<name>.need``).
COMPONENT_NEEDS = ("group_tariff", "list_size", "predicted_cost")
_COMPONENT_KEYS = {"settings", "need"}
#: Deprivation bands of the inequalities adjustment: the feature and how many bands it has.
DEPRIVATION_BANDS = {"imd_decile": 10, "imd_quintile": 5}
INEQUALITY_TARGETS = ("tariffs", "fair_shares")
_INEQUALITY_KEYS = {"by", "index", "weight_pct", "apply_to"}


@dataclass(frozen=True)
class Component:
    """A component budget (acute, prescribing, ...): its settings and how it is shared."""

    name: str
    settings: tuple[str, ...]
    need: str  # one of COMPONENT_NEEDS


@dataclass(frozen=True)
class Inequalities:
    """NHS England-style health-inequalities adjustment: ``weight`` of the money shared by need
    x a deprivation index (``index_ppm[b]`` for band b + 1, 1 = most deprived), the rest by need."""

    by: str  # imd_decile or imd_quintile
    index_ppm: tuple[int, ...]
    weight_ppm: int
    apply_to: str  # tariffs or fair_shares


def _parse_components(r: _Reader, data, settings: tuple[str, ...]) -> tuple[Component, ...]:
    if data is None:
        return ()
    if not isinstance(data, dict) or not data:
        r.fail("budget.components", "expected a mapping of component name -> {settings, need}")
    components, seen = [], {}
    for name, spec in data.items():
        key = f"budget.components.{name}"
        if not isinstance(name, str) or not is_safe_name(name):
            r.fail(key, f"{name!r} cannot name a component; allowed: {SAFE_NAME}")
        c = r.section(spec, key, _COMPONENT_KEYS)
        own = c.get("settings")
        if not isinstance(own, list) or not own:
            r.fail(f"{key}.settings", f"expected a non-empty list of settings; allowed: {', '.join(settings)}")
        for s in own:
            if s not in settings:
                r.fail(f"{key}.settings", f"{s!r} is not one of the scenario's settings; allowed: {', '.join(settings)}")
            if s in seen:
                r.fail(f"{key}.settings", f"{s!r} is already in component '{seen[s]}'; each setting belongs to one")
            seen[s] = name
        need = r.choice(c, "need", f"{key}.need", COMPONENT_NEEDS, "group_tariff")
        components.append(Component(name, tuple(own), need))
    left = [s for s in settings if s not in seen]
    if left:
        r.fail("budget.components", f"setting(s) {', '.join(left)} are in the scenario but in no component; "
                                    "components must cover every setting so they add up to the total")
    return tuple(components)


def _parse_inequalities(r: _Reader, data, mode: str) -> Inequalities | None:
    if data is None:
        return None
    key = "budget.inequalities"
    i = r.section(data, key, _INEQUALITY_KEYS)
    by = r.choice(i, "by", f"{key}.by", tuple(DEPRIVATION_BANDS), "imd_quintile")
    bands = DEPRIVATION_BANDS[by]
    index = i.get("index")
    if not isinstance(index, list) or len(index) != bands:
        r.fail(f"{key}.index", f"expected a list of {bands} relative need indices, one per {by} "
                               f"(1 = most deprived first), each a number in (0, 10]")
    index_ppm = []
    for b, v in enumerate(index):
        value = r.number({"v": v}, "v", f"{key}.index.{b}", 0, 10, lo_open=True)
        ppm = Fraction(str(value)) * PPM
        if ppm.denominator != 1:
            r.fail(f"{key}.index.{b}", f"{value!r} has more than 6 decimal places")
        index_ppm.append(int(ppm))
    weight = r.pct(i, "weight_pct", f"{key}.weight_pct", 0, 100, 10)
    apply_to = r.choice(i, "apply_to", f"{key}.apply_to", INEQUALITY_TARGETS, "tariffs")
    uses = {"tariff": ("tariffs",), "fair_shares": ("fair_shares",), "blend": INEQUALITY_TARGETS}[mode]
    if apply_to not in uses:
        r.fail(f"{key}.apply_to", f"{apply_to!r} has no effect in budget.mode {mode}; allowed: {', '.join(uses)}")
    return Inequalities(by, tuple(index_ppm), weight, apply_to)


_CODING_KEYS = {"normalise_pct", "flag_threshold_pct"}


@dataclass(frozen=True)
class CodingIntensity:
    """Register-growth safeguard: flag practices whose standardised registers grew more than
    ``flag_threshold`` faster than their ICB's; scale their need down by ``normalise`` x the excess."""

    normalise_ppm: int
    flag_threshold_ppm: int


def _parse_coding_intensity(r: _Reader, data) -> CodingIntensity | None:
    if data is None:
        return None
    c = r.section(data, "budget.coding_intensity", _CODING_KEYS)
    return CodingIntensity(
        normalise_ppm=r.pct(c, "normalise_pct", "budget.coding_intensity.normalise_pct", 0, 100, 0),
        flag_threshold_ppm=r.pct(c, "flag_threshold_pct", "budget.coding_intensity.flag_threshold_pct", 0, 100, 3))
