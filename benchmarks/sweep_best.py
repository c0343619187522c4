"""Best of N 1,000-combination sweeps with test_bench_capitation.py's setup, for A/B timing on a
busy machine (that benchmark times the sweep once). Run from a worktree's root:

    python benchmarks/sweep_best.py 1000000 5

Each repetition starts from a fresh Population, so the cap tails are gathered every time, as
in the benchmark. Prints best, median, every time and the load average.
"""
import os
import sys
import time

sys.path[:0] = ["tests", "benchmarks"]

import numpy as np  # noqa: E402

from reference.fabricated import make_features  # noqa: E402
from riskcap.capitation.population import Population  # noqa: E402
from riskcap.capitation.scenario import HEALTH_SETTINGS  # noqa: E402
from riskcap.capitation.scheme import load_scheme  # noqa: E402
from riskcap.capitation.sweep import parse_axis, run_sweep  # noqa: E402
from test_bench_capitation import PEOPLE_PER_PRACTICE, SWEEP_AXES, _scenario  # noqa: E402

n, reps = int(sys.argv[1]), int(sys.argv[2])
features, practices = make_features(n, max(5, n // PEOPLE_PER_PRACTICE), seed=2024, n_icbs=3, settings=HEALTH_SETTINGS)
scheme, scenario = load_scheme("yoc_illustrative"), _scenario()
axes = [parse_axis(a) for a in SWEEP_AXES]
times = []
for _ in range(reps):
    population = Population.from_features(features, scheme, scenario.settings, practices)
    start = time.perf_counter()
    frame = run_sweep(population, scenario, axes)
    times.append(time.perf_counter() - start)
print(f"{os.path.basename(os.getcwd())} sweep x{reps}: best {min(times):.3f} s median {np.median(times):.3f} s "
      f"all {' '.join(f'{t:.2f}' for t in times)} rows {len(frame)} load {os.getloadavg()[0]:.2f}")
