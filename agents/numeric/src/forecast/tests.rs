use super::*;
use std::f64::consts::PI;

fn opts(horizon: usize, season_lengths: Vec<usize>) -> ForecastOptions {
    ForecastOptions {
        horizon,
        season_lengths,
        level: 0.95,
    }
}

fn assert_within_pct(actual: &[f64], expected: &[f64], pct: f64) {
    assert_eq!(actual.len(), expected.len());
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        let rel = ((a - e) / e).abs() * 100.0;
        assert!(
            rel <= pct,
            "step {i}: got {a}, expected {e} ({rel:.3}% off, limit {pct}%)"
        );
    }
}

fn assert_intervals_sane(f: &Forecast) {
    for i in 0..f.point.len() {
        assert!(
            f.lower[i] <= f.point[i] && f.point[i] <= f.upper[i],
            "step {i}: {f:?}"
        );
    }
}

fn assert_widths_non_decreasing(f: &Forecast) {
    let w: Vec<f64> = f.lower.iter().zip(&f.upper).map(|(l, u)| u - l).collect();
    for i in 1..w.len() {
        assert!(
            w[i] >= w[i - 1] - 1e-9 * w[i - 1].abs(),
            "width shrank at {i}: {w:?}"
        );
    }
}

/// Deterministic pseudo-noise in [-1, 1) (64-bit LCG), so tests need no RNG crate.
fn noise(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

fn trend_sine(t: usize) -> f64 {
    100.0 + 0.5 * t as f64 + 10.0 * (2.0 * PI * t as f64 / 12.0).sin()
}

#[test]
fn trend_plus_period_12_sine_continues_within_1pct() {
    let history: Vec<f64> = (0..120).map(trend_sine).collect();
    let truth: Vec<f64> = (120..132).map(trend_sine).collect();
    let f = forecast(&history, &opts(12, vec![12])).unwrap();
    assert!(
        f.method.contains("MSTL[12]") || f.method.contains("[12] (own implementation)"),
        "seasonal method expected, got {}",
        f.method
    );
    assert!(f.fallback.is_none());
    assert_within_pct(&f.point, &truth, 1.0);
    assert_intervals_sane(&f);
}

#[test]
fn constant_series_forecasts_the_constant() {
    let history = vec![42.0; 30];
    let f = forecast(&history, &opts(6, vec![])).unwrap();
    for p in &f.point {
        assert!((p - 42.0).abs() < 1e-6, "{f:?}");
    }
    assert_intervals_sane(&f);
}

#[test]
fn linear_trend_continues_within_1pct() {
    let history: Vec<f64> = (0..40).map(|t| 10.0 + 2.0 * t as f64).collect();
    let truth: Vec<f64> = (40..50).map(|t| 10.0 + 2.0 * t as f64).collect();
    let f = forecast(&history, &opts(10, vec![])).unwrap();
    assert_within_pct(&f.point, &truth, 1.0);
    assert_intervals_sane(&f);
}

#[test]
fn short_history_uses_labelled_drift_with_widening_interval() {
    let history = [10.0, 12.0, 13.0, 15.0, 16.0];
    let f = forecast(&history, &opts(4, vec![12])).unwrap();
    assert!(f.method.starts_with("drift"), "{}", f.method);
    assert!(f.fallback.as_deref().unwrap().contains("5 points"));
    // Drift = (16 - 10) / 4 = 1.5 per step.
    assert_within_pct(&f.point, &[17.5, 19.0, 20.5, 22.0], 1e-9);
    let w: Vec<f64> = f.lower.iter().zip(&f.upper).map(|(l, u)| u - l).collect();
    assert!(w.windows(2).all(|p| p[1] > p[0]), "{w:?}");
    assert!(w[0] > 0.0);
    assert_intervals_sane(&f);
}

#[test]
fn one_or_two_points_use_naive_with_unbounded_interval() {
    for history in [vec![5.0], vec![5.0, 7.0]] {
        let f = forecast(&history, &opts(3, vec![])).unwrap();
        assert!(f.method.starts_with("naive"));
        assert_eq!(f.point, vec![*history.last().unwrap(); 3]);
        assert!(f.lower.iter().all(|l| *l == f64::NEG_INFINITY));
        assert!(f.upper.iter().all(|u| *u == f64::INFINITY));
        assert!(f.fallback.as_deref().unwrap().contains("unbounded"));
    }
}

#[test]
fn intervals_contain_point_and_widen_with_horizon() {
    let e = noise(80, 7);
    let history: Vec<f64> = (0..80)
        .map(|t| 200.0 + 1.5 * t as f64 + 6.0 * e[t])
        .collect();
    let f = forecast(&history, &opts(24, vec![])).unwrap();
    assert!(f.fallback.is_none(), "{f:?}");
    assert_intervals_sane(&f);
    assert_widths_non_decreasing(&f);
    assert_eq!(f.level, 0.95);
}

#[test]
fn noisy_seasonal_series_selects_by_holdout_and_names_method() {
    let e = noise(96, 3);
    let history: Vec<f64> = (0..96).map(|t| trend_sine(t) + 2.0 * e[t]).collect();
    let f = forecast(&history, &opts(12, vec![12])).unwrap();
    assert_eq!(f.holdout, 12);
    assert_eq!(f.point.len(), 12);
    assert_intervals_sane(&f);
    // Chosen method is the scored candidate with the lowest sMAPE.
    let best = f
        .candidates
        .iter()
        .filter_map(|c| c.smape.map(|s| (s, c)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap();
    // The folds refit the form the full history chose, so the served fit is the scored one.
    assert_eq!(f.method, best.1.name, "{f:#?}");
    assert_eq!(
        f.candidates.len(),
        13,
        "positive + seasonal -> drift + (1 + 4 MSTL + 1 own ETS) x 2 scales"
    );
    assert!(
        f.candidates[0].name.starts_with("drift"),
        "{:?}",
        f.candidates[0]
    );
    let own: Vec<&CandidateScore> = f
        .candidates
        .iter()
        .filter(|c| c.name.contains("(own implementation)"))
        .collect();
    assert_eq!(own.len(), 2);
    for c in own {
        assert!(c.smape.is_some(), "{c:?}");
        assert!(
            c.note
                .as_deref()
                .is_some_and(|n| n.contains("AICc: ETS(A,N,A)[12]")),
            "{c:?}"
        );
    }
    assert_eq!(f.folds, 3);
}

/// By hand: drift continues an exact line, so its holdout sMAPE is 0 on every fold and it wins
/// (ties go to the simpler candidate), with the line's next values as the forecast.
#[test]
fn an_exact_line_is_served_by_drift() {
    let history: Vec<f64> = (0..30).map(|t| 10.0 + 2.0 * t as f64).collect();
    let f = forecast(&history, &opts(4, vec![])).unwrap();
    assert!(f.fallback.is_none(), "{f:?}");
    assert!(f.method.starts_with("drift"), "{f:#?}");
    assert_eq!(f.candidates[0].smape, Some(0.0));
    for (s, p) in f.point.iter().enumerate() {
        assert!(
            (p - (10.0 + 2.0 * (30 + s) as f64)).abs() < 1e-9,
            "{:?}",
            f.point
        );
    }
}

#[test]
fn season_too_long_is_skipped_and_reported() {
    let history: Vec<f64> = (0..20).map(|t| 50.0 + t as f64).collect();
    let f = forecast(&history, &opts(3, vec![12])).unwrap();
    assert!(!f.method.contains("MSTL"));
    assert!(f.candidates.iter().any(|c| c
        .note
        .as_deref()
        .is_some_and(|n| n.contains("2 full seasons"))));
}

#[test]
fn non_positive_series_has_no_log_candidate() {
    let e = noise(40, 11);
    let history: Vec<f64> = (0..40).map(|t| -5.0 + 0.2 * t as f64 + e[t]).collect();
    let f = forecast(&history, &opts(5, vec![])).unwrap();
    assert!(f.candidates.iter().all(|c| !c.name.contains("log")));
    assert_intervals_sane(&f);
}

#[test]
fn invalid_input_errors_name_the_field() {
    let ok = opts(3, vec![]);
    let cases: Vec<(Vec<f64>, ForecastOptions, &str)> = vec![
        (vec![], ok.clone(), "history"),
        (vec![1.0, f64::NAN, 2.0], ok.clone(), "history"),
        (vec![1.0, f64::INFINITY], ok.clone(), "history"),
        (vec![1.0, 2.0], opts(0, vec![]), "horizon"),
        (vec![1.0, 2.0], opts(MAX_HORIZON + 1, vec![]), "horizon"),
        (vec![1.0, 2.0], opts(3, vec![12, 1]), "season_length"),
        (vec![1.0, 2.0], opts(3, vec![0]), "season_length"),
        (
            vec![1.0, 2.0],
            ForecastOptions {
                level: 1.0,
                ..ok.clone()
            },
            "level",
        ),
        (
            vec![1.0, 2.0],
            ForecastOptions {
                level: 0.0,
                ..ok.clone()
            },
            "level",
        ),
        (
            vec![1.0, 2.0],
            ForecastOptions {
                level: f64::NAN,
                ..ok.clone()
            },
            "level",
        ),
    ];
    for (h, o, field) in cases {
        let err = forecast(&h, &o).unwrap_err();
        assert_eq!(err.field(), field, "{err}");
        assert!(err.to_string().starts_with(field), "{err}");
    }
    assert!(matches!(
        forecast(&[1.0, f64::NAN], &ok),
        Err(ForecastError::NonFiniteHistory { index: 1, .. })
    ));
}

#[test]
fn odd_inputs_never_panic() {
    let e = noise(60, 5);
    let series: Vec<Vec<f64>> = vec![
        vec![0.0; 50],
        vec![1e300; 30],
        (0..40)
            .map(|t| if t % 2 == 0 { 1e9 } else { -1e9 })
            .collect(),
        (0..40).map(|t| 1e-300 * (t + 1) as f64).collect(),
        (0..60).map(|t| e[t] * 1e12).collect(),
        (0..30).map(|t| if t == 15 { 1e6 } else { 1.0 }).collect(),
        vec![3.0; 8],
    ];
    for s in series {
        for seasons in [vec![], vec![2], vec![4, 12], vec![7, 365]] {
            let f = forecast(&s, &opts(13, seasons)).expect("valid input must not error");
            assert_eq!(f.point.len(), 13);
            assert!(f.point.iter().all(|p| p.is_finite()), "{f:?}");
            assert_intervals_sane(&f);
        }
    }
}

#[test]
fn smape_and_mape_match_hand_computation() {
    // |100-110| -> 2*10/210; |200-180| -> 2*20/380.
    let s = smape(&[100.0, 200.0], &[110.0, 180.0]);
    assert!((s - 100.0 * (20.0 / 210.0 + 40.0 / 380.0) / 2.0).abs() < 1e-12);
    let m = mape(&[100.0, 200.0], &[110.0, 180.0]);
    assert!((m - 10.0).abs() < 1e-12);
    assert_eq!(smape(&[0.0], &[0.0]), 0.0);
}

#[test]
fn normal_quantile_matches_tables() {
    assert!((normal_quantile(0.975) - 1.959963984540054).abs() < 1e-8);
    assert!((normal_quantile(0.9) - 1.2815515655446004).abs() < 1e-8);
    assert!((normal_quantile(0.005) + 2.5758293035489004).abs() < 1e-8);
}

#[test]
fn season_lengths_from_dates() {
    let monthly: Vec<String> = (0..36)
        .map(|i| format!("{}-{:02}", 2020 + i / 12, i % 12 + 1))
        .collect();
    assert_eq!(detect_frequency(&monthly).unwrap(), Frequency::Monthly);
    assert_eq!(infer_season_lengths(&monthly).unwrap(), vec![12]);
    let quarterly = [
        "2019-01-01",
        "2019-04-01",
        "2019-07-01",
        "2019-10-01",
        "2020-01-01",
    ];
    assert_eq!(infer_season_lengths(&quarterly).unwrap(), vec![4]);
    let weekly = ["2024-01-01", "2024-01-08", "2024-01-15"];
    assert_eq!(infer_season_lengths(&weekly).unwrap(), vec![52]);
    let daily = |n: i64| -> Vec<String> {
        // 2023-01-01 + i days, rendered through month lengths of 2023/2024/2025.
        let mut out = Vec::new();
        let (mut y, mut m, mut d) = (2023, 1, 1);
        for _ in 0..n {
            out.push(format!("{y:04}-{m:02}-{d:02}"));
            d += 1;
            if d > super::days_in_month(y, m) {
                d = 1;
                m += 1;
            }
            if m > 12 {
                m = 1;
                y += 1;
            }
        }
        out
    };
    assert_eq!(infer_season_lengths(&daily(60)).unwrap(), vec![7]);
    assert_eq!(infer_season_lengths(&daily(800)).unwrap(), vec![7, 365]);
    let yearly = ["2001-01", "2002-01", "2003-01"];
    assert_eq!(infer_season_lengths(&yearly).unwrap(), Vec::<usize>::new());

    for bad in [
        vec!["2020-13"],
        vec!["2020-01", "2020-02-30"],
        vec!["2020-02", "2020-01"],
        vec!["x", "y"],
    ] {
        let err = infer_season_lengths(&bad).unwrap_err();
        assert_eq!(err.field(), "dates", "{err}");
    }
}

// ---- Seasonal ETS (own implementation, `seasonal_ets`) ----

use super::seasonal_ets::{
    admissible, auto_fit, auto_fit_non_seasonal, classical_season, fit, fit_non_seasonal,
    ls_states, neg2loglik_at, nelder_mead, non_seasonal_states, params_ok, roots_within_radius,
    ErrorType, EtsError, EtsModel, NmOptions, Params, TrendType,
};

/// A fixed additive season of period 12 (sums to 0).
const SEASON12: [f64; 12] = [
    -6.0, -4.0, 0.0, 3.0, 7.0, 9.0, 8.0, 4.0, 1.0, -3.0, -8.0, -11.0,
];

fn level_trend_season(t: usize) -> f64 {
    200.0 + 1.5 * t as f64 + SEASON12[t % 12]
}

const AAA: EtsModel = EtsModel {
    error: ErrorType::Additive,
    trend: TrendType::Additive,
};

#[test]
fn ets_aaa_continues_noise_free_level_trend_season_within_half_pct() {
    let history: Vec<f64> = (0..96).map(level_trend_season).collect();
    let truth: Vec<f64> = (96..120).map(level_trend_season).collect();
    let f = fit(&history, 12, AAA).unwrap();
    assert_eq!(f.name(), "ETS(A,A,A)[12]");
    let (point, lower, upper) = f.forecast(24, 0.95);
    assert_within_pct(&point, &truth, 0.5);
    assert!(lower
        .iter()
        .zip(&point)
        .zip(&upper)
        .all(|((l, p), u)| l <= p && p <= u));
    // The initial seasonal states recover the season (shifted by nothing: t = 0 is position 0).
    for (s, e) in f.initial_season.iter().zip(SEASON12) {
        assert!((s - e).abs() < 0.05, "{:?}", f.initial_season);
    }
}

#[test]
fn classical_decomposition_and_least_squares_states_are_exact_without_noise() {
    let y: Vec<f64> = (0..36).map(level_trend_season).collect();
    let season = classical_season(&y, 12);
    for (s, e) in season.iter().zip(SEASON12) {
        assert!((s - e).abs() < 1e-9, "{season:?}");
    }
    // Any smoothing values: least-squares initial states reproduce the series exactly.
    let p = Params {
        alpha: 0.3,
        beta: 0.05,
        gamma: 0.2,
        phi: 1.0,
    };
    let x = ls_states(&y, AAA, 12, &p).unwrap();
    // l0, b0 are the states before t = 0 (ŷ_0 = l0 + b0 + s_0 = 200 + s_0).
    assert!(
        (x[0] - 198.5).abs() < 1e-6 && (x[1] - 1.5).abs() < 1e-6,
        "{x:?}"
    );
    let mut s0 = vec![0.0; 12];
    s0[1..].copy_from_slice(&x[2..]);
    s0[0] = -x[2..].iter().sum::<f64>();
    let v = neg2loglik_at(&y, AAA, &p, x[0], x[1], &s0);
    assert!(
        v < 36.0 * (1e-12_f64).ln(),
        "SSE should be ~0, -2logL = {v}"
    );
}

#[test]
fn ets_likelihood_matches_hand_computation() {
    // ETS(A,N,A), m = 2, α = 0.5, γ = 0.2, l0 = 10, s = [1, -1] (times 0, 1), y = 11.5, 8.5, 12, 9:
    //   t0: ŷ = 11      u = 0.5     l = 10.25   s0 = 1.1
    //   t1: ŷ = 9.25    u = -0.75   l = 9.875   s1 = -1.15
    //   t2: ŷ = 10.975  u = 1.025   l = 10.3875 s0 = 1.305
    //   t3: ŷ = 9.2375  u = -0.2375
    // A: -2logL = 4 ln(0.25 + 0.5625 + 1.050625 + 0.05640625) = 4 ln 1.91953125.
    // M: ε = u / ŷ, -2logL = 4 ln Σε² + 2 Σ ln ŷ.
    let y = [11.5, 8.5, 12.0, 9.0];
    let p = Params {
        alpha: 0.5,
        beta: 0.0,
        gamma: 0.2,
        phi: 1.0,
    };
    let ana = EtsModel {
        error: ErrorType::Additive,
        trend: TrendType::None,
    };
    let mna = EtsModel {
        error: ErrorType::Multiplicative,
        trend: TrendType::None,
    };
    let a = neg2loglik_at(&y, ana, &p, 10.0, 0.0, &[1.0, -1.0]);
    assert!((a - 4.0 * 1.91953125_f64.ln()).abs() < 1e-12, "{a}");
    let fits = [11.0, 9.25, 10.975, 9.2375];
    let us = [0.5, -0.75, 1.025, -0.2375];
    let see: f64 = us.iter().zip(&fits).map(|(u, f)| (u / f) * (u / f)).sum();
    let logs: f64 = fits.iter().map(|f: &f64| f.ln()).sum();
    let m = neg2loglik_at(&y, mna, &p, 10.0, 0.0, &[1.0, -1.0]);
    assert!((m - (4.0 * see.ln() + 2.0 * logs)).abs() < 1e-12, "{m}");
}

#[test]
fn ets_beats_mstl_when_the_seasonal_pattern_drifts() {
    // Deterministic series whose seasonal pattern changes slowly: (a) amplitude grows
    // 1x -> 4x over 13 years, (b) shape morphs from a sine into a cosine. Seasonal ETS
    // keeps updating its seasonal states; STL smooths the pattern over several cycles
    // (or all of them, periodic) and MSTL repeats it.
    let amp = |t: usize| {
        let x = t as f64;
        100.0
            + 0.3 * x
            + (1.0 + x / 48.0)
                * (8.0 * (2.0 * PI * x / 12.0).sin() + 3.0 * (4.0 * PI * x / 12.0).cos())
    };
    let morph = |t: usize| {
        let (x, w) = (t as f64, t as f64 / 156.0);
        100.0
            + 0.3 * x
            + 10.0 * ((1.0 - w) * (2.0 * PI * x / 12.0).sin() + w * (2.0 * PI * x / 12.0).cos())
    };
    let series: [&dyn Fn(usize) -> f64; 2] = [&amp, &morph];
    for f in series {
        let y: Vec<f64> = (0..156).map(f).collect();
        let (train, test) = y.split_at(144);
        let ets = Spec {
            periods: vec![],
            periodic: false,
            scale: Scale::Raw,
            robust: false,
            ets_season: Some(12),
        };
        let ets_fit = run_candidate(&ets, None, train, 12, 0.95).unwrap();
        let ets_smape = smape(test, &ets_fit.point);
        for (periodic, robust) in [(false, false), (true, false), (false, true), (true, true)] {
            let mstl = Spec {
                periods: vec![12],
                periodic,
                scale: Scale::Raw,
                robust,
                ets_season: None,
            };
            let fit = run_candidate(&mstl, None, train, 12, 0.95).unwrap();
            let s = smape(test, &fit.point);
            assert!(
                ets_smape < 0.5 * s,
                "{}: {ets_smape} vs {}: {s}",
                ets_fit.name,
                fit.name
            );
        }
    }
}

#[test]
fn ets_interval_widths_follow_the_class_1_formula() {
    // Var(h) = σ²(1 + Σ_{j=1}^{h-1} c_j²), c_j = α + β·φ*_j + γ·[j mod m = 0], m = 4.
    // (A,A,A) α = 0.5, β = 0.1, γ = 0.2, σ² = 2: c = 0.6, 0.7, 0.8, 0.9 + 0.2, 1.0
    //   Var = 2·(1, 1.36, 1.85, 2.49, 3.70, 4.70) = 2, 2.72, 3.70, 4.98, 7.40, 9.40
    //   (statsforecast's closed form at h = 6: 1 + 5·0.66 + 0.2·1·2.0 = 4.70).
    // (A,N,A) α = 0.3, γ = 0.4, σ² = 1: c = 0.3, 0.3, 0.3, 0.7, 0.3
    //   Var = 1, 1.09, 1.18, 1.27, 1.76, 1.85 (closed form h = 5: 1 + 0.09·4 + 0.4·1·1.0).
    // (A,Ad,A) α = 0.5, β = 0.1, γ = 0.2, φ = 0.9, σ² = 1: φ*_j = 0.9, 1.71, 2.439, 3.0951,
    //   c = 0.59, 0.671, 0.7439, 1.00951: Var = 1, 1.3481, 1.798341, 2.35172821, 3.3708386501.
    let e = noise(40, 21);
    let y: Vec<f64> = (0..40)
        .map(|t| 50.0 + 0.5 * t as f64 + [3.0, -1.0, -4.0, 2.0][t % 4] + e[t])
        .collect();
    let z = 1.959963984540054;
    let cases: [(TrendType, Params, f64, &[f64]); 3] = [
        (
            TrendType::Additive,
            Params {
                alpha: 0.5,
                beta: 0.1,
                gamma: 0.2,
                phi: 1.0,
            },
            2.0,
            &[2.0, 2.72, 3.70, 4.98, 7.40, 9.40],
        ),
        (
            TrendType::None,
            Params {
                alpha: 0.3,
                beta: 0.0,
                gamma: 0.4,
                phi: 1.0,
            },
            1.0,
            &[1.0, 1.09, 1.18, 1.27, 1.76, 1.85],
        ),
        (
            TrendType::Damped,
            Params {
                alpha: 0.5,
                beta: 0.1,
                gamma: 0.2,
                phi: 0.9,
            },
            1.0,
            &[1.0, 1.3481, 1.798341, 2.35172821, 3.3708386501],
        ),
    ];
    for (trend, params, sigma2, expected) in cases {
        let model = EtsModel {
            error: ErrorType::Additive,
            trend,
        };
        let mut f = fit(&y, 4, model).unwrap();
        f.params = params;
        f.sigma2 = sigma2;
        let (point, lower, upper) = f.forecast(expected.len(), 0.95);
        for (i, v) in expected.iter().enumerate() {
            let half = (upper[i] - lower[i]) / 2.0;
            // normal_quantile is accurate to ~1e-9 relative.
            let want = z * v.sqrt();
            assert!(
                (half - want).abs() < 1e-8 * want,
                "{model:?} h={}: {half} vs {want}",
                i + 1
            );
            assert!((point[i] - (upper[i] + lower[i]) / 2.0).abs() < 1e-9);
        }
    }
}

#[test]
fn ets_multiplicative_error_variance_follows_the_class_2_recursion() {
    // v_1 = σ²μ_1²; v_2 = (1+σ²)(μ_2² + σ²c_1²μ_1²) − μ_2², c_1 = α + β (A trend).
    let e = noise(40, 5);
    let y: Vec<f64> = (0..40)
        .map(|t| 50.0 + 0.5 * t as f64 + [3.0, -1.0, -4.0, 2.0][t % 4] + e[t])
        .collect();
    let model = EtsModel {
        error: ErrorType::Multiplicative,
        trend: TrendType::Additive,
    };
    let mut f = fit(&y, 4, model).unwrap();
    f.params = Params {
        alpha: 0.4,
        beta: 0.1,
        gamma: 0.3,
        phi: 1.0,
    };
    f.sigma2 = 0.01;
    let (point, _, _) = f.forecast(2, 0.95);
    let v = f.variances(&point);
    let (m1, m2, s2, c1) = (point[0], point[1], 0.01, 0.5);
    assert!((v[0] - s2 * m1 * m1).abs() < 1e-9 * m1 * m1);
    let v2 = (1.0 + s2) * (m2 * m2 + s2 * c1 * c1 * m1 * m1) - m2 * m2;
    assert!((v[1] - v2).abs() < 1e-9 * m2 * m2, "{} vs {v2}", v[1]);
}

#[test]
fn ets_fitted_parameters_respect_bounds() {
    let e = noise(120, 9);
    let noisy: Vec<f64> = (0..120)
        .map(|t| level_trend_season(t) + 3.0 * e[t])
        .collect();
    let drifting: Vec<f64> = (0..60)
        .map(|t| 50.0 + (1.0 + t as f64 / 20.0) * SEASON12[t % 12] + e[t])
        .collect();
    for (y, m) in [(&noisy, 12), (&drifting, 12), (&noisy, 4)] {
        for model in EtsModel::ADDITIVE
            .into_iter()
            .chain(EtsModel::MULTIPLICATIVE)
        {
            let f = fit(y, m, model).unwrap();
            let p = f.params;
            assert!((1e-4..=0.9999).contains(&p.alpha), "{p:?}");
            assert!(p.gamma >= 1e-4 && p.gamma <= 1.0 - p.alpha + 1e-12, "{p:?}");
            match model.trend {
                TrendType::None => assert_eq!((p.beta, p.phi), (0.0, 1.0)),
                TrendType::Additive => {
                    assert!(p.beta >= 1e-4 && p.beta <= p.alpha, "{p:?}");
                    assert_eq!(p.phi, 1.0);
                }
                TrendType::Damped => {
                    assert!(p.beta >= 1e-4 && p.beta <= p.alpha, "{p:?}");
                    assert!((0.8..=0.98).contains(&p.phi), "{p:?}");
                }
            }
            assert!(params_ok(&p, model, m) && admissible(&p, m));
            let sum: f64 = f.initial_season.iter().sum();
            assert!(sum.abs() < 1e-9 * 300.0, "seasonal states sum {sum}");
            // α, γ, l0, m − 1 seasonal states, σ²; β and b0 with trend; φ if damped.
            let trend = usize::from(model.trend != TrendType::None);
            let k = 3 + m + 2 * trend + usize::from(model.trend == TrendType::Damped);
            assert_eq!(f.n_params, k, "{model:?}");
            assert!(f.aicc.is_finite() && f.aicc > f.neg2loglik && f.sigma2 > 0.0);
        }
    }
}

#[test]
fn ets_short_constant_and_long_season_inputs_do_not_panic() {
    // Fewer than 2 full seasons: no fit, and forecast() notes the skip.
    let short: Vec<f64> = (0..23).map(|t| 10.0 + t as f64).collect();
    assert_eq!(
        auto_fit(&short, 12, true).unwrap_err(),
        EtsError::TooShort {
            needed: 24,
            got: 23
        }
    );
    let f = forecast(&short, &opts(6, vec![12])).unwrap();
    let skipped = f
        .candidates
        .iter()
        .find(|c| c.name == "ETS(*,*,A)[12] (own implementation)")
        .unwrap();
    assert!(
        skipped.smape.is_none() && skipped.note.as_deref().unwrap().contains("2 full seasons"),
        "{skipped:?}"
    );
    // Exactly two seasons fits; a constant series forecasts the constant.
    let two: Vec<f64> = (0..24).map(|t| 30.0 + SEASON12[t % 12]).collect();
    assert!(auto_fit(&two, 12, true).is_ok());
    let flat = vec![42.0; 48];
    let a = auto_fit(&flat, 12, true).unwrap();
    let (point, lower, upper) = a.best.forecast(12, 0.95);
    assert!(point.iter().all(|p| (p - 42.0).abs() < 1e-6), "{point:?}");
    assert!(lower
        .iter()
        .zip(&upper)
        .all(|(l, u)| l.is_finite() && u.is_finite() && l <= u));
    assert!(auto_fit(&[0.0; 30], 4, true).is_ok(), "all zeros");
    // Seasons longer than MAX_SEASON are not fitted, and say why.
    assert_eq!(
        auto_fit(&flat, 25, true).unwrap_err(),
        EtsError::SeasonLength(25)
    );
    let weekly: Vec<f64> = (0..120).map(|t| 5.0 + (t % 52) as f64).collect();
    let f = forecast(&weekly, &opts(4, vec![52])).unwrap();
    assert!(f
        .candidates
        .iter()
        .any(|c| c.name.starts_with("ETS(*,*,A)[52]")
            && c.note.as_deref().unwrap().contains("season length 52 > 24")));
    // Non-positive data: no multiplicative-error forms, additive ones still fit.
    let neg: Vec<f64> = (0..48).map(|t| -5.0 + SEASON12[t % 12]).collect();
    let a = auto_fit(&neg, 12, true).unwrap();
    assert_eq!(a.tried.len(), 3);
}

#[test]
fn nelder_mead_minimises_rosenbrock_and_respects_bounds() {
    let mut rosen = |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
    let opts = NmOptions {
        tol_std: 1e-14,
        max_iter: 5000,
        ..NmOptions::default()
    };
    let inf = f64::INFINITY;
    let r = nelder_mead(&mut rosen, &[-1.2, 1.0], &[-inf, -inf], &[inf, inf], &opts);
    assert!(
        (r.x[0] - 1.0).abs() < 1e-3 && (r.x[1] - 1.0).abs() < 1e-3,
        "{r:?}"
    );
    assert!(r.iterations > 0);
    // Minimum at (3, -2) lies outside the box [0, 1] x [0, 1]: the answer is the corner (1, 0).
    let mut bowl = |x: &[f64]| (x[0] - 3.0).powi(2) + (x[1] + 2.0).powi(2);
    let r = nelder_mead(&mut bowl, &[0.5, 0.5], &[0.0, 0.0], &[1.0, 1.0], &opts);
    assert!((r.x[0] - 1.0).abs() < 1e-6 && r.x[1].abs() < 1e-6, "{r:?}");
    // NaN values count as +inf and do not derail the search.
    let mut holey = |x: &[f64]| {
        if x[0] < 0.0 {
            f64::NAN
        } else {
            (x[0] - 2.0).powi(2)
        }
    };
    let r = nelder_mead(&mut holey, &[0.5], &[-inf], &[inf], &opts);
    assert!((r.x[0] - 2.0).abs() < 1e-4, "{r:?}");
}

#[test]
fn admissibility_uses_the_characteristic_roots() {
    // Ascending coefficients. (z − 0.5)(z + 0.9), z² − 0.9z + 0.81 (|roots| 0.9): inside.
    assert!(roots_within_radius(&[-0.45, 0.4, 1.0], 1.0));
    assert!(roots_within_radius(&[0.81, -0.9, 1.0], 1.0));
    // (z − 1.1)(z − 0.2), z² − 1.05z + 1.1025 (|roots| 1.05): outside.
    assert!(!roots_within_radius(&[0.22, -1.3, 1.0], 1.0));
    assert!(!roots_within_radius(&[1.1025, -1.05, 1.0], 1.0));
    let p = |alpha, beta, gamma, phi| Params {
        alpha,
        beta,
        gamma,
        phi,
    };
    assert!(admissible(&p(0.5, 0.0, 0.3, 1.0), 12));
    assert!(admissible(&p(0.6, 0.1, 0.2, 0.95), 4));
    assert!(!admissible(&p(0.5, 0.0, 1.6, 1.0), 12), "γ > 1 + 1/φ − α");
    // These pass the inequality screens; only the characteristic roots (largest
    // modulus 1.216 and 1.026, per numpy) rule them out.
    assert!(!admissible(&p(0.23, 0.474, 1.742, 0.876), 2));
    assert!(!admissible(&p(0.134, 0.114, 0.964, 0.909), 12));
    // Random (α, β, γ, φ, m) with statsforecast 2.1.1 `admissible`'s verdicts.
    let cases = [
        ((1.056, 0.338, 0.495, 0.958, 2), true),
        ((0.246, 0.253, 0.201, 0.881, 2), true),
        ((0.651, 0.259, 0.094, 0.928, 4), true),
        ((1.235, 0.393, 0.39, 0.968, 2), true),
        ((0.62, 0.553, 0.222, 0.964, 4), true),
        ((0.93, 0.587, 0.287, 0.96, 4), true),
        ((1.411, -0.056, 1.423, 0.862, 4), false),
        ((0.462, 0.628, 0.614, 0.91, 4), false),
        ((0.172, 0.55, 0.421, 0.897, 12), false),
        ((1.465, 0.762, 1.087, 0.908, 2), false),
        ((-0.011, 0.77, 0.774, 0.823, 12), false),
        ((0.822, 0.577, 0.92, 0.983, 2), false),
    ];
    for ((a, b, g, phi, m), ok) in cases {
        assert_eq!(
            admissible(&p(a, b, g, phi), m),
            ok,
            "{:?}",
            (a, b, g, phi, m)
        );
    }
    // The usual bounds: β ≤ α and γ ≤ 1 − α.
    let aaa = EtsModel {
        error: ErrorType::Additive,
        trend: TrendType::Additive,
    };
    assert!(!params_ok(&p(0.3, 0.4, 0.2, 1.0), aaa, 12));
    assert!(!params_ok(&p(0.7, 0.1, 0.4, 1.0), aaa, 12));
}

#[test]
fn seasonal_naive_and_mase_match_hand_computed_values() {
    // Seasonal differences are all 1, so sigma = 1; the second season widens by sqrt(2).
    let history = [1.0, 2.0, 3.0, 4.0, 2.0, 3.0, 4.0, 5.0];
    let f = seasonal_naive(&history, 6, 4, 0.95).unwrap();
    assert_eq!(f.point, vec![2.0, 3.0, 4.0, 5.0, 2.0, 3.0]);
    let z = 1.959_963_985;
    for (s, (lo, p)) in f.lower.iter().zip(&f.point).enumerate() {
        let expected = if s < 4 { z } else { z * 2f64.sqrt() };
        assert!((p - lo - expected).abs() < 1e-6, "step {s}");
    }
    assert_eq!(f.method, "seasonal naive (m = 4)");
    // Scale: mean |y_t - y_{t-4}| = 1; errors 1 and 2 -> 1.5.
    assert!((mase(&history, 4, &[3.0, 3.0], &[2.0, 5.0]) - 1.5).abs() < 1e-12);
    assert!(seasonal_naive(&history, 3, 8, 0.95).is_err());
    // Drift through (0, 1) .. (3, 4): slope 1, exact differences, zero-width interval.
    let d = drift(&[1.0, 2.0, 3.0, 4.0], 2, 0.9).unwrap();
    assert_eq!(d.point, vec![5.0, 6.0]);
    assert_eq!(d.lower, d.point);
    assert!(d.fallback.is_none());
}

// ---- Non-seasonal ETS (own implementation, not a candidate yet) ----

/// By hand: an exact line is ETS(A,A,N) with no error from l0 = y0 - b0, b0 = the slope, for
/// any smoothing values, so the fit's forecast continues the line.
#[test]
fn non_seasonal_ets_continues_an_exact_line() {
    let y: Vec<f64> = (0..20).map(|t| 10.0 + 2.0 * t as f64).collect();
    let aan = EtsModel {
        error: ErrorType::Additive,
        trend: TrendType::Additive,
    };
    let p = Params {
        alpha: 0.4,
        beta: 0.1,
        gamma: 0.0,
        phi: 1.0,
    };
    let (l0, b0) = non_seasonal_states(&y, aan, &p).unwrap();
    assert!(
        (l0 - 8.0).abs() < 1e-9 && (b0 - 2.0).abs() < 1e-9,
        "{l0} {b0}"
    );
    let (fit, _) = fit_non_seasonal(&y, aan, None).unwrap();
    assert_eq!(fit.name(), "ETS(A,A,N)");
    let (point, lower, upper) = fit.forecast(3, 0.95);
    for (s, v) in point.iter().enumerate() {
        assert!((v - (50.0 + 2.0 * s as f64)).abs() < 1e-6, "{point:?}");
    }
    assert!(lower
        .iter()
        .zip(&point)
        .zip(&upper)
        .all(|((l, p), u)| l <= p && p <= u));
}

/// The least-squares initial states are the minimum: no nearby (l0, b0) gives a smaller sum
/// of squared one-step errors, checked by direct evaluation.
#[test]
fn non_seasonal_initial_states_minimise_the_squared_errors() {
    let e = noise(40, 5);
    let y: Vec<f64> = (0..40)
        .map(|t| 50.0 + 0.8 * t as f64 + 3.0 * e[t])
        .collect();
    for trend in [TrendType::None, TrendType::Additive, TrendType::Damped] {
        let model = EtsModel {
            error: ErrorType::Additive,
            trend,
        };
        let p = Params {
            alpha: 0.3,
            beta: if trend == TrendType::None { 0.0 } else { 0.05 },
            gamma: 0.0,
            phi: if trend == TrendType::Damped { 0.9 } else { 1.0 },
        };
        let (l0, b0) = non_seasonal_states(&y, model, &p).unwrap();
        // −2·log-likelihood, n·ln Σε² on one season of length 1: increasing in Σε².
        let best = neg2loglik_at(&y, model, &p, l0, b0, &[0.0]);
        for (dl, db) in [
            (0.5, 0.0),
            (-0.5, 0.0),
            (0.0, 0.05),
            (0.0, -0.05),
            (0.3, -0.03),
        ] {
            let db = if trend == TrendType::None { 0.0 } else { db };
            let other = neg2loglik_at(&y, model, &p, l0 + dl, b0 + db, &[0.0]);
            assert!(
                best <= other + 1e-9,
                "{trend:?}: {best} > {other} at ({dl}, {db})"
            );
        }
    }
    let auto = auto_fit_non_seasonal(&y).unwrap();
    assert_eq!(auto.tried.len(), 3, "{}", auto.summary());
}
