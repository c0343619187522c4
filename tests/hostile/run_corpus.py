"""Run the hostile-input corpus against whichever riskcap this Python imports, each case in its
own ``riskcap`` process with a time limit, and count how many give the expected outcome.

tests/test_hostile.py runs the same cases in-process (the suite); this script is for measuring
another install, e.g. the baseline, where some cases hang:

    /work/venv-base/bin/python tests/hostile/run_corpus.py /tmp/corpus-base [--timeout 40]

A case passes as in tests/test_hostile.py: its exit code (2 unless cases.yaml says otherwise),
no traceback, every expected fragment in the output and none of the absent ones, and its check
(nothing written outside, deleted or re-permissioned) where it has one. Prints one line per
case and a summary by outcome; exits 1 if any case failed.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


def run_case(make, spec: dict, case: str, base, folder: Path, timeout: float) -> tuple[str, str]:
    """(outcome, detail): outcome is "pass", "exit 0", "exit N", "traceback", "hang", "message" or "check"."""
    env = {**os.environ, "RISKCAP_PSEUDONYM_KEY": "k" * 32, **{k: str(v) for k, v in spec.get("env", {}).items()}}
    folder.mkdir(parents=True)
    args = [str(a) for a in make.CASES[case](base, folder)]
    riskcap = Path(sys.executable).with_name("riskcap")
    try:
        done = subprocess.run([str(riskcap), *args], env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return "hang", f"no answer in {timeout:.0f} s"
    output = done.stdout + done.stderr
    if "Traceback" in output:
        return "traceback", output.strip().splitlines()[-1][:160]
    if done.returncode != spec.get("exit", 2):
        return f"exit {done.returncode}", output.strip().splitlines()[-1][:160] if output.strip() else ""
    missing = [f for f in spec.get("expect", []) if f not in output]
    unwanted = [f for f in spec.get("absent", []) if f in output]
    if missing or unwanted:
        return "message", f"missing {missing[:1]} unwanted {unwanted[:1]}: {output.strip()[:160]}"
    if case in make.CHECKS:
        try:
            make.CHECKS[case](base, folder)
        except AssertionError as exc:
            return "check", str(exc)[:160]
    return "pass", ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="an empty folder to build the cases in")
    parser.add_argument("--timeout", type=float, default=40.0, help="seconds a case may take (default 40)")
    parser.add_argument("cases", nargs="*", help="only these cases (default: all)")
    opts = parser.parse_args()
    import riskcap

    sys.path.insert(0, str(HERE))
    import make_cases as make

    cases = yaml.safe_load((HERE / "cases.yaml").read_text(encoding="utf-8"))
    base = make.build_base(opts.work / "base")
    print(f"riskcap {riskcap.__file__}", flush=True)
    outcomes: Counter = Counter()
    for case in opts.cases or sorted(cases):
        outcome, detail = run_case(make, cases[case], case, base, opts.work / "cases" / case, opts.timeout)
        outcomes[outcome] += 1
        print(f"{outcome:10} item {cases[case]['item']}  {case}  {detail}", flush=True)
    print(f"{sum(outcomes.values())} cases: " + ", ".join(f"{n} {k}" for k, n in outcomes.most_common()))
    return 0 if outcomes["pass"] == sum(outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
