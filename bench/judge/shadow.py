"""Why the shadow pairs answers: `python -m bench.judge.shadow [--runs N] [--write]`.

Drives the project's own judge (`analysis.judge.judge`) on simulated shadows. Each mirrored request has a
stable class (70% class 0, 30% class 1) and a candidate class. Two candidates:

- `swap`: flips 5% of answers such that its class mix stays 70/30 (0->1 on 3.57% of class-0 inputs,
  1->0 on 8.33% of class-1 inputs): wrong on 5% of inputs, indistinguishable by its mix;
- `agree99`: differs on 1% of inputs, within `minAgreementPercent: 98` (a candidate that should pass).

For n mirrored requests, the share of single checks that Fail:
- paired: the agreement check on the same n requests (`minAgreementPercent: 98`);
- unpaired: the class-mix check (`behaviour.maxClassMixDistance: 0.02`) on two independent arms of n
  requests each, as a canary analysis without a mirror would see them.

Results go to bench/RESULTS-judge.md (section "Shadow: paired answers") with `--write`.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from modeldeploy.operator.analysis.judge import judge
from modeldeploy.operator.analysis.samples import RawArm, RawWindow
from modeldeploy.operator.analysis.target import ShadowGate
from modeldeploy.operator.api.analysis import Analysis

STABLE_CLASS_1 = 0.3
CANDIDATES = {
    # (flip probability for class 0, for class 1)
    "swap": (0.05 / (2 * 0.7), 0.05 / (2 * 0.3)),
    "agree99": (0.01, 0.01),
}
SIZES = (500, 2000, 10000)
PAIRED = Analysis.model_validate({"minRequests": 100, "compareToStable": {}})
UNPAIRED = Analysis.model_validate(
    {"minRequests": 100, "compareToStable": {}, "behaviour": {"maxClassMixDistance": 0.02}}
)
GATE = ShadowGate(min_agreement_percent=98)
RESULTS = Path(__file__).resolve().parents[1] / "RESULTS-judge.md"
HEADING = "## Shadow: paired answers"


def one_request(rng: random.Random, flips: tuple[float, float]) -> tuple[int, int]:
    s = 1 if rng.random() < STABLE_CLASS_1 else 0
    c = 1 - s if rng.random() < flips[s] else s
    return s, c


def paired_fails(rng: random.Random, flips: tuple[float, float], n: int) -> bool:
    agreed = sum(1 for _ in range(n) if len(set(one_request(rng, flips))) == 1)
    stable = RawArm(requests_by_code={"200": n}, mirrored={"agreed": agreed, "disagreed": n - agreed})
    canary = RawArm(requests_by_code={"200": n})
    return judge(PAIRED, RawWindow(stable, canary, 60.0), shadow=GATE).verdict == "Fail"


def unpaired_fails(rng: random.Random, flips: tuple[float, float], n: int) -> bool:
    stable_1 = sum(one_request(rng, flips)[0] for _ in range(n))
    canary_1 = sum(one_request(rng, flips)[1] for _ in range(n))
    stable = RawArm(requests_by_code={"200": n}, class_counts={"0": n - stable_1, "1": stable_1})
    canary = RawArm(requests_by_code={"200": n}, class_counts={"0": n - canary_1, "1": canary_1})
    return judge(UNPAIRED, RawWindow(stable, canary, 60.0)).verdict == "Fail"


def table(runs: int, seed: int) -> str:
    rng = random.Random(seed)
    lines = [
        "| candidate | n mirrored | paired agreement check fails | unpaired class-mix check fails |",
        "| --- | --- | --- | --- |",
    ]
    for name, flips in CANDIDATES.items():
        for n in SIZES:
            paired = sum(paired_fails(rng, flips, n) for _ in range(runs))
            unpaired = sum(unpaired_fails(rng, flips, n) for _ in range(runs))
            lines.append(f"| {name} | {n} | {paired}/{runs} | {unpaired}/{runs} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    text = table(args.runs, args.seed)
    print(text)
    if args.write:
        section = (
            f"{HEADING}\n\nFrom `python -m bench.judge.shadow --runs {args.runs} --seed {args.seed} --write`"
            " (single checks, one per row's run; the judge at its defaults, confidence 0.99).\n\n"
            "`swap` is wrong on 5% of inputs with an unchanged class mix; `agree99` differs on 1%, within"
            " `minAgreementPercent: 98`.\n\n" + text + "\n"
        )
        body = RESULTS.read_text()
        if HEADING in body:
            body = body[: body.index(HEADING)].rstrip() + "\n"
        RESULTS.write_text(body.rstrip() + "\n\n" + section)


if __name__ == "__main__":
    main()
