//! Latency samples and the few numbers the reports need.

use std::time::Duration;

use serde_json::{json, Value};

/// Nearest-rank percentile (`p` in 0..=100) of sorted values; `None` when empty.
pub fn percentile_sorted(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    // Nearest rank: the smallest value with at least p% of samples ≤ it.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// A set of latency samples in milliseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    ms: Vec<f64>,
    sorted: bool,
}

impl Samples {
    pub fn new() -> Samples {
        Samples::default()
    }

    pub fn add(&mut self, d: Duration) {
        self.add_ms(d.as_secs_f64() * 1000.0);
    }

    pub fn add_ms(&mut self, ms: f64) {
        self.ms.push(ms);
        self.sorted = false;
    }

    pub fn extend(&mut self, other: Samples) {
        self.ms.extend(other.ms);
        self.sorted = false;
    }

    pub fn len(&self) -> usize {
        self.ms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ms.is_empty()
    }

    fn sort(&mut self) {
        if !self.sorted {
            self.ms.sort_by(|a, b| a.total_cmp(b));
            self.sorted = true;
        }
    }

    pub fn pct(&mut self, p: f64) -> Option<f64> {
        self.sort();
        percentile_sorted(&self.ms, p)
    }

    pub fn max(&mut self) -> Option<f64> {
        self.sort();
        self.ms.last().copied()
    }

    pub fn mean(&self) -> Option<f64> {
        if self.ms.is_empty() {
            None
        } else {
            Some(self.ms.iter().sum::<f64>() / self.ms.len() as f64)
        }
    }

    /// `{"n","p50_ms","p99_ms","max_ms","mean_ms"}` (numbers rounded to µs).
    pub fn summary(&mut self) -> Value {
        json!({
            "n": self.len(),
            "p50_ms": self.pct(50.0).map(round3),
            "p99_ms": self.pct(99.0).map(round3),
            "max_ms": self.max().map(round3),
            "mean_ms": self.mean().map(round3),
        })
    }
}

/// Rounds to 3 decimals (µs when the unit is ms).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Rounds to 1 decimal.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `count / secs`, 0 when no time passed.
pub fn rate(count: f64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        count / s
    } else {
        0.0
    }
}

/// `a / b` rounded to 3 decimals, `None` when either side is missing or b is 0.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(round3(a / b)),
        _ => None,
    }
}

pub fn ms(d: Duration) -> f64 {
    round3(d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile_sorted(&v, 50.0), Some(50.0));
        assert_eq!(percentile_sorted(&v, 99.0), Some(99.0));
        assert_eq!(percentile_sorted(&v, 100.0), Some(100.0));
        assert_eq!(percentile_sorted(&v, 0.0), Some(1.0));
        assert_eq!(percentile_sorted(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile_sorted(&[], 50.0), None);
        let v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile_sorted(&v, 50.0), Some(5.0));
        assert_eq!(percentile_sorted(&v, 99.0), Some(10.0));
        assert_eq!(percentile_sorted(&v, 90.0), Some(9.0));
    }

    #[test]
    fn samples_summarize_unsorted_input() {
        let mut s = Samples::new();
        for x in [5.0, 1.0, 3.0, 2.0, 4.0] {
            s.add_ms(x);
        }
        s.add(Duration::from_micros(6500));
        assert_eq!(s.pct(50.0), Some(3.0));
        assert_eq!(s.max(), Some(6.5));
        let v = s.summary();
        assert_eq!(v["n"], 6);
        assert_eq!(v["p99_ms"], 6.5);
        assert_eq!(Samples::new().summary()["p50_ms"], Value::Null);
    }

    #[test]
    fn ratios_and_rates() {
        assert_eq!(ratio(Some(1.0), Some(3.0)), Some(0.333));
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
        assert_eq!(rate(10.0, Duration::from_millis(500)), 20.0);
        assert_eq!(rate(10.0, Duration::ZERO), 0.0);
        assert_eq!(ms(Duration::from_micros(1234)), 1.234);
    }
}
