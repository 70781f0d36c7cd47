"""Success rates as the VLA benchmarks print and plot them: k/n with the Wilson 95% interval."""

from __future__ import annotations

from collections.abc import Sequence


def rate(successes: int, n: int) -> str:
    """'k/n = p% (lo-hi)', the Wilson 95% interval in percent."""
    from sim.evaluation import wilson_interval

    lo, hi = wilson_interval(successes, n)
    return f"{successes}/{n} = {100 * successes / n:.0f}% ({100 * lo:.0f}-{100 * hi:.0f})"


def success_errorbars(ax, x: Sequence[float], outcomes: Sequence[Sequence[bool]], **style) -> None:
    """One point per list of episode outcomes at x, in percent, with its Wilson 95% interval as error bar."""
    from sim.evaluation import wilson_interval

    y, low, high = [], [], []
    for episodes in outcomes:
        k, n = sum(episodes), len(episodes)
        lo, hi = wilson_interval(k, n)
        y.append(100 * k / n)
        low.append(y[-1] - 100 * lo)
        high.append(100 * hi - y[-1])
    ax.errorbar(list(x), y, yerr=[low, high], fmt="o", capsize=4, **style)
