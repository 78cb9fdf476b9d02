"""Mean and 95% confidence interval over replications (Student t, no scipy)."""

from __future__ import annotations

import math

# two-sided 95%: the 0.975 quantile of Student's t for 1..30 degrees of freedom
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
_Z975 = 1.959963984540054


def t975(df: int) -> float:
    """The 0.975 quantile of t with `df` degrees of freedom (table, then Cornish-Fisher)."""
    if df < 1:
        raise ValueError("need at least 1 degree of freedom")
    if df <= len(_T975):
        return _T975[df - 1]
    z, v = _Z975, float(df)
    return (
        z
        + (z**3 + z) / (4 * v)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * v**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * v**3)
    )


def mean_ci95(values: list[float]) -> tuple[float | None, float | None]:
    """(mean, half-width of the 95% CI); the half-width is None for fewer than 2 values."""
    n = len(values)
    if n == 0:
        return None, None
    mean = math.fsum(values) / n
    if n < 2:
        return mean, None
    var = math.fsum((x - mean) ** 2 for x in values) / (n - 1)
    return mean, t975(n - 1) * math.sqrt(var / n)
