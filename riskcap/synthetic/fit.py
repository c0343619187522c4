"""Refit the generator's fitted constants after a model change; paste the printed values into ``params.py``.

Condition levels (``params.CONDITION_OFFSET``), so recorded prevalences hit their targets::

    python -m riskcap.synthetic.fit --people 300000 --populations 4 --iterations 3

Each iteration simulates a population and moves every register's liability offset by
0.8 x (probit(target) - probit(achieved)); palliative care scales its rate per unit of
death hazard by (target / achieved) ** 0.8.

How a practice's mix moves its need per head (``params.NEED_SENSITIVITY``)::

    python -m riskcap.synthetic.fit --need --people 1000000

simulates practices whose age tilt, deprivation, mental-health and morbidity shifts are drawn
independently, and regresses the log of each practice's need per head (the demographic-plus-
morbidity formula of ``calibration.formula_fit``) on them. Nothing is written: it prints the values.
"""
from __future__ import annotations

import argparse
from unittest import mock

import numpy as np
from scipy.special import ndtri

from riskcap.schema import CONDITION_CODES
from riskcap.synthetic import calibration
from riskcap.synthetic import params as P
from riskcap.synthetic.pipeline import SynthConfig, generate


def fit_prevalence_offsets(people: int = 200_000, iterations: int = 3, seed: int = 11,
                           populations: int = 1) -> tuple[dict[str, float], float]:
    """Fitted ``CONDITION_OFFSET`` and ``PALLIATIVE_PER_DEATH_HAZARD`` (module values are left unchanged).

    Each iteration pools ``populations`` synthetic ICBs of ``people`` (seeds ``seed``,
    ``seed + 1`` ...): practices differ in mix, so one ICB's prevalences are not England's.
    """
    offsets = dict(P.CONDITION_OFFSET)
    palliative = P.PALLIATIVE_PER_DEATH_HAZARD
    for _ in range(iterations):
        with mock.patch.dict(P.CONDITION_OFFSET, offsets), mock.patch.object(P, "PALLIATIVE_PER_DEATH_HAZARD", palliative):
            stats: dict = {}
            for k in range(populations):
                for part in generate(SynthConfig(people=people, seed=seed + k, partition_people=people)):
                    calibration.merge_stats(stats, part.stats)
        for j, code in enumerate(CONDITION_CODES):
            target = P.PREVALENCE_TARGET[code][0]
            achieved = max(stats["prev_num"][j], 1.0) / max(stats["prev_den"][j], 1.0)
            if code == "palliative":
                palliative *= (target / achieved) ** 0.8
            else:
                offsets[code] += 0.8 * float(ndtri(target) - ndtri(achieved))
    return {c: round(v, 3) for c, v in offsets.items()}, round(float(palliative), 3)


#: Spread of the independent draws of each shape in :func:`fit_need_sensitivity`.
SHAPE_SD = {"age_tilt": 0.3, "deprivation": 1.0, "mental_health": 0.2, "morbidity": 0.2}


def fit_need_sensitivity(people: int = 1_000_000, seed: int = 13) -> dict[str, float]:
    """Log need per head per unit of each practice shape (see the module docstring)."""
    config = SynthConfig(people=people, seed=seed, partition_people=people)
    plan = config.plan()
    rng = np.random.default_rng(seed)
    for name, sd in SHAPE_SD.items():
        plan.frame[name] = rng.normal(0, sd, len(plan.frame))
    stats: dict = {}
    for part in generate(config, plan=plan):
        calibration.merge_stats(stats, part.stats)
    need = calibration.formula_fit(stats)["need_per_head"]
    frame = plan.frame.set_index(plan.frame["practice_code"].astype(str)).loc[list(need)]
    x = np.column_stack([np.ones(len(need))] + [frame[name].to_numpy(dtype=float) for name in SHAPE_SD])
    beta = np.linalg.lstsq(x, np.log(np.array(list(need.values()))), rcond=None)[0]
    return {name: round(float(b), 3) for name, b in zip(SHAPE_SD, beta[1:])}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=200_000)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--populations", type=int, default=1, help="synthetic ICBs pooled per iteration")
    parser.add_argument("--need", action="store_true", help="fit NEED_SENSITIVITY instead of the condition levels")
    args = parser.parse_args(argv)
    if args.need:
        print("NEED_SENSITIVITY = " + repr(fit_need_sensitivity(args.people, args.seed)))
        return
    offsets, palliative = fit_prevalence_offsets(args.people, args.iterations, args.seed, args.populations)
    print("CONDITION_OFFSET = " + repr(offsets))
    print(f"PALLIATIVE_PER_DEATH_HAZARD = {palliative}")
    assert np.isfinite(palliative)


if __name__ == "__main__":
    main()
