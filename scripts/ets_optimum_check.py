"""Is statsforecast's ETS fit the likelihood optimum? Compares it with statsmodels' on one series.

For a series of the forecast benchmark and an additive-season ETS form (e.g. elnino MNA, co2
MAA), fits statsforecast's fixed-form ETS (as AutoETS does) and statsmodels' ETSModel by
maximum likelihood on the benchmark's training part, then evaluates statsmodels' log-likelihood
at statsforecast's parameters, so both solutions are compared under one likelihood, and prints
each one's holdout sMAPE. statsforecast's Nelder-Mead stops at 1,000 iterations; when it stops
there, its solution is not the optimum.

    target/bench/venv-ref/bin/python scripts/ets_optimum_check.py elnino MNA
(run scripts/bench_numeric.sh once first: it makes the venv and target/bench/data/forecast/)
"""

import sys
import warnings
from pathlib import Path

import numpy as np
from statsforecast.ets import ets_f, forecast_ets
from statsmodels.tsa.exponential_smoothing.ets import ETSModel

sys.path.insert(0, str(Path(__file__).parent))
import bench_forecast as bf  # noqa: E402  (the benchmark's series list, split and sMAPE)


def main(name: str, form: str) -> None:
    error, trend, season = form
    if season != "A":
        sys.exit("only additive-season forms (..A) are mapped between the libraries here")
    meta = {s[0]: s for s in bf.SERIES}[name]
    m, h = meta[1], meta[2]
    data = Path(__file__).parent.parent / "target/bench/data/forecast" / f"{name}.csv"
    y = np.loadtxt(data, skiprows=1)
    train, test = y[:-h], y[-h:]

    sf = ets_f(train, m, model=form, damped=False)
    sf_forecast = forecast_ets(sf, h)["mean"]
    model = ETSModel(
        train,
        error={"A": "add", "M": "mul"}[error],
        trend=None if trend == "N" else "add",
        seasonal="add",
        seasonal_periods=m,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ml = model.fit(disp=False)

    # statsforecast's state is [l0, (b0), x_1..x_m] with x_j = s_{-j}, seasonals summing to 0;
    # statsmodels' is the same order with s_{-m} fixed at 0: shift the level by x_m.
    par = sf["par"]
    k = 1 + (trend != "N")
    init = np.asarray(par[4:])
    seasonal = init[k:]
    smoothing = [par[0]] + ([par[1]] if trend != "N" else []) + [par[2]]
    as_sm = np.array(
        smoothing + [init[0] + seasonal[-1]] + list(init[1:k]) + list(seasonal - seasonal[-1])
    )
    print(f"{name} ETS({error},{trend},{season})[{m}], {len(train)} training points, holdout {h}")
    print(f"  statsforecast: llf {model.loglike(as_sm):.3f}  sMAPE {bf.smape(test, sf_forecast):.4f}"
          f"  Nelder-Mead iterations {sf['fit'].nit}")
    print(f"  statsmodels ML: llf {ml.llf:.3f}  sMAPE {bf.smape(test, np.asarray(ml.forecast(h))):.4f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
