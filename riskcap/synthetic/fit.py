"""Refit the condition levels (``params.CONDITION_OFFSET``) so prevalences hit their targets.

Run after changing the model, then paste the printed values into ``params.py``::

    python -m riskcap.synthetic.fit --people 200000 --iterations 3

Each iteration simulates a population and moves every register's liability offset by
0.8 x (probit(target) - probit(achieved)); palliative care scales its rate per unit of
death hazard by (target / achieved) ** 0.8. Nothing is written: it prints the values.
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


def fit_prevalence_offsets(people: int = 200_000, iterations: int = 3, seed: int = 11) -> tuple[dict[str, float], float]:
    """Fitted ``CONDITION_OFFSET`` and ``PALLIATIVE_PER_DEATH_HAZARD`` (module values are left unchanged)."""
    offsets = dict(P.CONDITION_OFFSET)
    palliative = P.PALLIATIVE_PER_DEATH_HAZARD
    for _ in range(iterations):
        with mock.patch.dict(P.CONDITION_OFFSET, offsets), mock.patch.object(P, "PALLIATIVE_PER_DEATH_HAZARD", palliative):
            stats: dict = {}
            for part in generate(SynthConfig(people=people, seed=seed, partition_people=people)):
                calibration.merge_stats(stats, part.stats)
        for j, code in enumerate(CONDITION_CODES):
            target = P.PREVALENCE_TARGET[code][0]
            achieved = max(stats["prev_num"][j], 1.0) / max(stats["prev_den"][j], 1.0)
            if code == "palliative":
                palliative *= (target / achieved) ** 0.8
            else:
                offsets[code] += 0.8 * float(ndtri(target) - ndtri(achieved))
    return {c: round(v, 3) for c, v in offsets.items()}, round(float(palliative), 3)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=200_000)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    offsets, palliative = fit_prevalence_offsets(args.people, args.iterations, args.seed)
    print("CONDITION_OFFSET = " + repr(offsets))
    print(f"PALLIATIVE_PER_DEATH_HAZARD = {palliative}")
    assert np.isfinite(palliative)


if __name__ == "__main__":
    main()
