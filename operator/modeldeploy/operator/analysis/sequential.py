"""Always-valid statistics over counts that accumulate tick by tick. Pure: standard library only.

Why sequential. The analysis looks at the same growing evidence every `interval`: dozens of looks per
step. A fixed-sample test repeated at every look rejects a true null hypothesis far more often than
its nominal level, and reading only overlapping windows makes "two failures in a row" little better
than one. Every test here is instead built from a nonnegative martingale M_t under the null with
M_0 = 1; Ville's inequality, P(sup_t M_t >= 1/alpha) <= alpha, makes "reject the first time
M_t >= 1/alpha" valid at every look at once, however many looks there are and whenever one stops.

- **A proportion** (events out of n, each an independent Bernoulli(p)): Robbins' beta-binomial
  mixture. Against a point p0, M_n(p0) = B(a+e, b+n-e) / B(a, b) / (p0^e (1-p0)^(n-e)), the
  likelihood ratio of a Beta(a, b) mixture of alternatives to p0, is a martingale when p = p0. The
  p0 it does not reject, {p0: M_n(p0) < 1/alpha}, form a confidence sequence: an interval that holds
  the true p at every n simultaneously with probability >= 1 - alpha. It is exact (no normal
  approximation), so it stays sound with 0, 1 or 5 events where Wilson and Newcombe bounds are
  anti-conservative. The messages show it. The one-sided question the checks ask ("is p above the
  limit?") is answered by `log_evalue`, a mixture of likelihood ratios of alternatives above the limit
  only, valid even when p varies over time below the limit.
- **Two arms' events against each other** (5xx or 4xx of canary and stable): conditional on the
  E events of both arms, each is the canary's with probability pi = r n_c / (r n_c + n_s), where
  r = p_c / p_s; equal rates give pi0 = n_c / (n_c + n_s). The canary's share of the events is then
  a proportion with a known null value, tested as above: exact, free of the unknown common rate, and
  untouched by a slow period or an error burst that both arms share (it raises both rates together).
- **Quantiles**: the count of observations at or below the true q-quantile is Binomial(n, q). The
  counts k that the proportion's confidence sequence keeps at q bound the ranks of the order
  statistics around the quantile, at every n at once (Howard and Ramdas, "Sequential estimation of
  quantiles", 2022, use the same construction).
- **Two distributions** (class mix, score histogram): universal inference (Wasserman, Ramdas and
  Balakrishnan, 2020). The e-value is each arm's Dirichlet-multinomial mixture likelihood over the
  likelihood of the pooled maximum-likelihood fit; under homogeneity the pooled fit is at least the
  true common distribution's likelihood, so the e-value is bounded by a martingale and is valid at
  every look.

The prior Beta(1/2, 1/2) (Jeffreys; Krichevsky-Trofimov for the Dirichlet) costs about
(1/2) log n per parameter against the best fixed alternative, the smallest regret a mixture has
uniformly over p.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

PRIOR = 0.5
"""Beta(PRIOR, PRIOR) and Dirichlet(PRIOR, ...) mixing distributions."""


def _lbeta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def log_mixture(events: float, n: float, p0: float) -> float:
    """log M_n(p0): the beta-binomial mixture's log likelihood ratio against p = p0 (0 < p0 < 1)."""
    e, f = events, n - events
    log_lik_p0 = (e * math.log(p0) if e > 0 else 0.0) + (f * math.log1p(-p0) if f > 0 else 0.0)
    return _lbeta(PRIOR + e, PRIOR + f) - _lbeta(PRIOR, PRIOR) - log_lik_p0


def proportion_bounds(events: float, n: float, alpha: float) -> tuple[float, float]:
    """The confidence sequence for a proportion at this look: (lower, upper), holding at every look at
    once with probability >= 1 - alpha. (0, 1) without observations."""
    if n <= 0:
        return 0.0, 1.0
    events = min(max(events, 0.0), n)
    p_hat = events / n
    threshold = math.log(1 / alpha)

    def outside(p: float) -> bool:
        return log_mixture(events, n, p) >= threshold

    def boundary(inside: float, out: float) -> float:
        # log M is convex in p with its minimum at p_hat: bisect between a kept and a rejected point
        for _ in range(60):
            mid = (inside + out) / 2
            if outside(mid):
                out = mid
            else:
                inside = mid
            if abs(out - inside) <= 1e-12 + 1e-9 * inside:
                break
        return inside

    tiny = 1e-15
    lower = 0.0 if not outside(tiny) or p_hat <= tiny else boundary(p_hat, tiny)
    upper = 1.0 if not outside(1 - tiny) or p_hat >= 1 - tiny else boundary(p_hat, 1 - tiny)
    return lower, upper


ODDS_RATIOS = (1.1, 1.2, 1.35, 1.5, 1.75, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0, 20.0)
"""The alternatives of the one-sided test, as odds ratios over the limit, mixed with equal weights."""


def log_evalue(events: float, n: float, limit: float) -> float:
    """log of the one-sided e-value against "p <= limit": the average over ODDS_RATIOS of the likelihood
    ratio of p' = limit x odds ratio (as odds) against p = limit.

    Each ratio, for a p' above the limit, is a supermartingale under *every* p <= limit, even one that
    changes from request to request (a slow period, a burst shared with stable), so the average is too:
    rejecting when it reaches 1/alpha errs with probability <= alpha at every look. The mixture over a
    dozen effect sizes costs log 12 against knowing the effect; a one-sided Beta mixture costs about
    (1/2) log n and wastes half its mass below the limit."""
    if n <= 0 or not 0 < limit < 1:
        return 0.0
    e, f = events, n - events
    odds = limit / (1 - limit)
    terms = []
    for ratio in ODDS_RATIOS:
        alt = odds * ratio / (1 + odds * ratio)
        terms.append(e * math.log(alt / limit) + f * math.log((1 - alt) / (1 - limit)))
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms) / len(terms))


def exceeds_limit(events: float, n: float, limit: float, alpha: float) -> bool:
    """Is the proportion above `limit`, at level alpha at every look? The one-sided e-value reaches
    1/alpha (a limit of 0 is exceeded by any event; a limit of 1 never)."""
    if n <= 0 or limit >= 1:
        return False
    if limit <= 0:
        return events > 0
    return events / n > limit and log_evalue(events, n, limit) >= math.log(1 / alpha)


def null_share(n_canary: float, n_stable: float, ratio: float = 1.0) -> float:
    """The canary's share of both arms' events when its rate is `ratio` times stable's."""
    weighted = ratio * n_canary
    total = weighted + n_stable
    return weighted / total if total > 0 else 0.0


def canary_rate_above(
    e_canary: float, n_canary: float, e_stable: float, n_stable: float, *, alpha: float, ratio: float = 1.0
) -> bool:
    """Is the canary's event rate above `ratio` times stable's, at level alpha at every look? The
    conditional test: the canary's share of both arms' events against `null_share`."""
    if n_canary <= 0 or n_stable <= 0:
        return False
    return exceeds_limit(e_canary, e_canary + e_stable, null_share(n_canary, n_stable, ratio), alpha)


def rank_bounds(n: int, q: float, alpha: float) -> tuple[int | None, int | None]:
    """1-based ranks (lower, upper) whose order statistics bound the q-quantile of n observations at
    level alpha at every look: X_(lower) <= quantile <= X_(upper). None where no rank qualifies (too
    few observations)."""
    if n <= 0 or not 0 < q < 1:
        return None, None
    threshold = math.log(1 / alpha)
    centre = min(max(round(n * q), 0), n)

    def kept(k: int) -> bool:
        return log_mixture(k, n, q) < threshold

    def last_kept(start: int, step: int, stop: int) -> int | None:
        """The farthest k from `start` (towards `stop`) that is kept; log M is convex in k, so the kept
        counts form an interval around n q. Galloping then bisection."""
        if not kept(start):
            return None
        good, bad = start, None
        jump = 1
        while bad is None:
            probe = good + step * jump
            if (step > 0 and probe > stop) or (step < 0 and probe < stop):
                if kept(stop):
                    return stop
                bad = stop
                break
            if kept(probe):
                good = probe
                jump *= 2
            else:
                bad = probe
        while abs(bad - good) > 1:
            mid = (good + bad) // 2
            if kept(mid):
                good = mid
            else:
                bad = mid
        return good

    k_low = last_kept(centre, -1, 0)
    k_high = last_kept(centre, +1, n)
    if k_low is None or k_high is None:
        return None, None
    # at least k_low observations lie at or below the quantile, so X_(k_low) <= quantile (none when 0);
    # at most k_high do, so X_(k_high + 1) > quantile (none when k_high = n)
    lower = k_low if k_low >= 1 else None
    upper = k_high + 1 if k_high + 1 <= n else None
    return lower, upper


def _dirichlet_multinomial(counts: Sequence[float]) -> float:
    """log of the Dirichlet(PRIOR, ...) mixture's probability of one sequence with these counts."""
    k = len(counts)
    total = sum(counts)
    out = math.lgamma(PRIOR * k) - math.lgamma(PRIOR * k + total)
    for x in counts:
        out += math.lgamma(PRIOR + x) - math.lgamma(PRIOR)
    return out


def log_homogeneity_evalue(canary: Sequence[float], stable: Sequence[float]) -> float:
    """log of the universal-inference e-value against "both arms draw from one distribution", over
    aligned category counts. Large means a real shift; >= log(1/alpha) rejects at level alpha."""
    pairs = [(max(c, 0.0), max(s, 0.0)) for c, s in zip(canary, stable, strict=True)]
    pairs = [(c, s) for c, s in pairs if c + s > 0]
    if len(pairs) < 2:
        return 0.0
    cs, ss = [c for c, _ in pairs], [s for _, s in pairs]
    total = sum(cs) + sum(ss)
    pooled = 0.0
    for c, s in pairs:
        share = (c + s) / total
        pooled += (c + s) * math.log(share)
    return _dirichlet_multinomial(cs) + _dirichlet_multinomial(ss) - pooled
