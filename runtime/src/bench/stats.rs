//! Sample statistics for benchmarks.

use std::time::Duration;

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Summary {
    pub samples: usize,
    pub median_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub min_us: f64,
}

pub fn summarize(samples: &mut [Duration]) -> Summary {
    assert!(!samples.is_empty(), "at least one sample");
    samples.sort_unstable();
    let at =
        |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e6;
    Summary {
        samples: samples.len(),
        median_us: at(0.5),
        p90_us: at(0.9),
        p99_us: at(0.99),
        min_us: samples[0].as_secs_f64() * 1e6,
    }
}

/// Times `f` `n` times (after `warmup` untimed runs).
pub fn time_n(warmup: usize, n: usize, mut f: impl FnMut()) -> Summary {
    for _ in 0..warmup {
        f();
    }
    let mut samples: Vec<Duration> = (0..n)
        .map(|_| {
            let t = std::time::Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    summarize(&mut samples)
}
