//! Distribution quantiles for the parametric PCA limits, without a statistics dependency.

use std::f64::consts::PI;

/// Natural log of the gamma function for `x > 0` (Lanczos, g = 7, nine terms; relative error
/// about 1e-15).
pub(crate) fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const P: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection keeps the series in its accurate range.
        return (PI / (PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = P[0];
    for (i, p) in P.iter().enumerate().skip(1) {
        a += p / (x + i as f64);
    }
    let t = x + G + 0.5;
    0.5 * (2.0 * PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Regularized incomplete beta function `I_x(a, b)`, for `a, b > 0`, by the continued fraction
/// of Numerical Recipes (§6.4), on whichever side of the mean it converges fast.
pub(crate) fn regularized_beta(x: f64, a: f64, b: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front = ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln();
    let front = ln_front.exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(x, a, b) / a
    } else {
        1.0 - front * beta_cf(1.0 - x, b, a) / b
    }
}

fn beta_cf(x: f64, a: f64, b: f64) -> f64 {
    const MAX_ITER: usize = 300;
    const EPS: f64 = 1e-15;
    const TINY: f64 = 1e-300;
    let floor = |v: f64| if v.abs() < TINY { TINY } else { v };
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 / floor(1.0 - qab * x / qap);
    let mut h = d;
    for m in 1..=MAX_ITER {
        let m = m as f64;
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 / floor(1.0 + aa * d);
        c = floor(1.0 + aa / c);
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 / floor(1.0 + aa * d);
        c = floor(1.0 + aa / c);
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < EPS {
            break;
        }
    }
    h
}

/// The `p`-quantile of the F distribution with `d1` and `d2` degrees of freedom, `p` in (0, 1):
/// bisection on `P(F <= f) = I_{d1 f / (d1 f + d2)}(d1 / 2, d2 / 2)` over the beta variable,
/// which is monotone and bounded, so it cannot fail to converge.
pub(crate) fn f_quantile(p: f64, d1: f64, d2: f64) -> f64 {
    let (a, b) = (d1 / 2.0, d2 / 2.0);
    let (mut lo, mut hi) = (0.0_f64, 1.0_f64);
    // 200 halvings reach the resolution of f64 in (0, 1) with room to spare.
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if mid <= lo || mid >= hi {
            break;
        }
        if regularized_beta(mid, a, b) < p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    let x = 0.5 * (lo + hi);
    d2 * x / (d1 * (1.0 - x))
}

/// The `p`-quantile of the standard normal distribution, `p` in (0, 1), by Acklam's rational
/// approximation (relative error below 1.2e-9).
pub(crate) fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const P_LOW: f64 = 0.02425;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < P_LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - P_LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        (a - b).abs() / b.abs().max(1e-300)
    }

    #[test]
    fn ln_gamma_at_known_points() {
        // Γ(1) = Γ(2) = 1, Γ(5) = 24, Γ(1/2) = √π, Γ(10) = 362880.
        assert!(ln_gamma(1.0).abs() < 1e-14);
        assert!(ln_gamma(2.0).abs() < 1e-14);
        assert!(rel(ln_gamma(5.0), 24.0_f64.ln()) < 1e-14);
        assert!(rel(ln_gamma(0.5), PI.sqrt().ln()) < 1e-13);
        assert!(rel(ln_gamma(10.0), 362_880.0_f64.ln()) < 1e-14);
        assert!(rel(ln_gamma(0.25), 3.625_609_908_221_908_f64.ln()) < 1e-13);
    }

    #[test]
    fn incomplete_beta_closed_forms() {
        // I_x(1, 1) = x, I_x(a, 1) = x^a, I_x(1, b) = 1 - (1 - x)^b, I_x(1/2, 1/2) =
        // (2 / π) asin(√x).
        for x in [0.01, 0.2, 0.5, 0.77, 0.99] {
            assert!((regularized_beta(x, 1.0, 1.0) - x).abs() < 1e-14);
            assert!((regularized_beta(x, 3.5, 1.0) - x.powf(3.5)).abs() < 1e-13);
            assert!((regularized_beta(x, 1.0, 4.0) - (1.0 - (1.0 - x).powi(4))).abs() < 1e-13);
            let arcsine = 2.0 / PI * x.sqrt().asin();
            assert!((regularized_beta(x, 0.5, 0.5) - arcsine).abs() < 1e-12);
        }
        assert_eq!(regularized_beta(0.0, 2.0, 3.0), 0.0);
        assert_eq!(regularized_beta(1.0, 2.0, 3.0), 1.0);
    }

    #[test]
    fn f_quantiles() {
        // F(2, d2) has the closed form d2 / 2 ((1 - p)^(-2 / d2) - 1).
        for (p, d2) in [(0.95, 10.0), (0.99, 10.0), (0.99, 57.0), (0.9, 3.0)] {
            let exact = d2 / 2.0 * ((1.0_f64 - p).powf(-2.0 / d2) - 1.0);
            assert!(rel(f_quantile(p, 2.0, d2), exact) < 1e-10, "p {p} d2 {d2}");
        }
        // F(1, d2) is the square of Student's t: t_0.975(10) = 2.228138851986 (tables), and
        // F(1, 1) is the square of the Cauchy quantile tan(π (p - 1/2)).
        assert!(rel(f_quantile(0.95, 1.0, 10.0), 2.228_138_851_986_f64.powi(2)) < 1e-9);
        let cauchy = (PI * (0.975 - 0.5)).tan();
        assert!(rel(f_quantile(0.95, 1.0, 1.0), cauchy * cauchy) < 1e-9);
        // Tables: F_0.95(5, 20) = 2.7109, F_0.99(3, 30) = 4.5097.
        assert!(rel(f_quantile(0.95, 5.0, 20.0), 2.7109) < 1e-4);
        assert!(rel(f_quantile(0.99, 3.0, 30.0), 4.5097) < 1e-4);
    }

    #[test]
    fn normal_quantiles() {
        // Tables: z_0.5 = 0, z_0.95 = 1.6448536270, z_0.975 = 1.9599639845,
        // z_0.99 = 2.3263478740, z_0.999 = 3.0902323062, and symmetry.
        assert!(normal_quantile(0.5).abs() < 1e-15);
        for (p, z) in [
            (0.95, 1.644_853_627_0),
            (0.975, 1.959_963_984_5),
            (0.99, 2.326_347_874_0),
            (0.999, 3.090_232_306_2),
        ] {
            assert!(rel(normal_quantile(p), z) < 2e-9, "p {p}");
            assert!(rel(normal_quantile(1.0 - p), -z) < 2e-9, "p {}", 1.0 - p);
        }
    }
}
