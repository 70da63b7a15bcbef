//! The bench's report: every figure measured in several rounds, each round measuring both
//! sides of a ratio in turn, summarised as min / median / max over the rounds, with the
//! per-round ratio (so noise that hits one round hits both its sides) and the goal beside it.
//! Written as JSON (`--json`) and compared with an earlier report (`--compare`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write as _;

/// What a figure must be to meet its goal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Goal {
    /// The value itself at most this.
    AtMost(f64),
    /// The value itself at least this.
    AtLeast(f64),
    /// Value / baseline at most this.
    RatioAtMost(f64),
    /// Value / baseline at least this.
    RatioAtLeast(f64),
}

impl Goal {
    fn met(&self, value: f64, ratio: Option<f64>) -> Option<bool> {
        Some(match *self {
            Goal::AtMost(g) => value <= g,
            Goal::AtLeast(g) => value >= g,
            Goal::RatioAtMost(g) => ratio? <= g,
            Goal::RatioAtLeast(g) => ratio? >= g,
        })
    }

    fn describe(&self, unit: &str) -> String {
        match *self {
            Goal::AtMost(g) => format!("<= {g} {unit}"),
            Goal::AtLeast(g) => format!(">= {g} {unit}"),
            Goal::RatioAtMost(g) => format!("ratio <= {g}"),
            Goal::RatioAtLeast(g) => format!("ratio >= {g}"),
        }
    }
}

/// One figure of one round.
#[derive(Debug, Clone)]
pub struct Row {
    pub what: String,
    pub value: f64,
    pub unit: &'static str,
    /// The figure it is compared with, measured in the same round, and what it is.
    pub baseline: Option<(String, f64)>,
    pub goal: Option<Goal>,
}

impl Row {
    pub fn new(what: impl Into<String>, value: f64, unit: &'static str) -> Row {
        Row {
            what: what.into(),
            value,
            unit,
            baseline: None,
            goal: None,
        }
    }

    pub fn baseline(mut self, what: impl Into<String>, value: f64) -> Row {
        self.baseline = Some((what.into(), value));
        self
    }

    pub fn goal(mut self, goal: Goal) -> Row {
        self.goal = Some(goal);
        self
    }
}

/// A figure's values over the rounds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub min: f64,
    pub median: f64,
    pub max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Spread {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| !x.is_nan()).collect();
        if v.is_empty() {
            return Spread {
                min: f64::NAN,
                median: f64::NAN,
                max: f64::NAN,
            };
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Spread {
            min: v[0],
            median,
            max: v[n - 1],
        }
    }

    /// (max - min) / median, in percent: how far the rounds disagree.
    pub fn spread_percent(&self) -> f64 {
        (self.max - self.min) / self.median.abs() * 100.0
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Baseline {
    pub what: String,
    pub value: Spread,
}

/// One figure over all rounds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figure {
    pub what: String,
    pub unit: String,
    pub value: Spread,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
    /// value / baseline of each round, summarised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<Spread>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<Goal>,
    /// Whether the median meets the goal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub ward_version: String,
    pub rounds: usize,
    pub figures: Vec<Figure>,
}

impl Report {
    /// Folds the rows of every round into figures, in the order of the first round.
    pub fn from_rounds(rounds: &[Vec<Row>]) -> Report {
        let mut order: Vec<String> = Vec::new();
        let mut by_what: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
        for row in rounds.iter().flatten() {
            if !by_what.contains_key(&row.what) {
                order.push(row.what.clone());
            }
            by_what.entry(row.what.clone()).or_default().push(row);
        }
        let figures = order
            .iter()
            .map(|what| {
                let rows = &by_what[what];
                let first = rows[0];
                let values: Vec<f64> = rows.iter().map(|r| r.value).collect();
                let value = Spread::of(&values);
                let baseline = first.baseline.as_ref().map(|(name, _)| Baseline {
                    what: name.clone(),
                    value: Spread::of(
                        &rows
                            .iter()
                            .filter_map(|r| r.baseline.as_ref().map(|b| b.1))
                            .collect::<Vec<_>>(),
                    ),
                });
                let ratio = first.baseline.as_ref().map(|_| {
                    Spread::of(
                        &rows
                            .iter()
                            .filter_map(|r| r.baseline.as_ref().map(|b| r.value / b.1))
                            .collect::<Vec<_>>(),
                    )
                });
                let met = first
                    .goal
                    .and_then(|g| g.met(value.median, ratio.map(|r| r.median)));
                Figure {
                    what: what.clone(),
                    unit: first.unit.to_string(),
                    value,
                    baseline,
                    ratio,
                    goal: first.goal,
                    met,
                }
            })
            .collect();
        Report {
            ward_version: env!("CARGO_PKG_VERSION").to_string(),
            rounds: rounds.len(),
            figures,
        }
    }

    /// The figures whose goal the median misses.
    pub fn missed(&self) -> Vec<&Figure> {
        self.figures
            .iter()
            .filter(|f| f.met == Some(false))
            .collect()
    }

    /// An aligned table: median [min..max] spread, the baseline's median, the ratio's median
    /// [min..max], the goal and whether it is met.
    pub fn print(&self) {
        let width = self
            .figures
            .iter()
            .map(|f| f.what.len())
            .max()
            .unwrap_or(10);
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{:<width$}  {:>10} {:<4} {:>21} {:>6}",
            format!("figure ({} interleaved rounds)", self.rounds),
            "median",
            "",
            "[min .. max]",
            "spread"
        );
        for f in &self.figures {
            let v = f.value;
            let mut line = format!(
                "{:<width$}  {:>10.3} {:<4} [{:>8.3} .. {:>8.3}] {:>5.1}%",
                f.what,
                v.median,
                f.unit,
                v.min,
                v.max,
                v.spread_percent()
            );
            if let (Some(b), Some(r)) = (&f.baseline, &f.ratio) {
                line.push_str(&format!(
                    "  vs {} {:.3}: ratio {:.2} [{:.2} .. {:.2}]",
                    b.what, b.value.median, r.median, r.min, r.max
                ));
            }
            if let Some(goal) = &f.goal {
                let verdict = match f.met {
                    Some(true) => "met",
                    Some(false) => "MISSED",
                    None => "?",
                };
                line.push_str(&format!("  (goal {}: {verdict})", goal.describe(&f.unit)));
            }
            let _ = writeln!(out, "{line}");
        }
    }

    /// Prints, figure by figure, the change of the median (and of the ratio) from `old`.
    pub fn print_comparison(&self, old: &Report) {
        let mut out = std::io::stdout().lock();
        let width = self
            .figures
            .iter()
            .map(|f| f.what.len())
            .max()
            .unwrap_or(10);
        let _ = writeln!(out, "change of the medians against the earlier report:");
        let change = |old: f64, new: f64| (new - old) / old.abs() * 100.0;
        for f in &self.figures {
            let Some(o) = old.figures.iter().find(|o| o.what == f.what) else {
                let _ = writeln!(out, "{:<width$}  new figure", f.what);
                continue;
            };
            let mut line = format!(
                "{:<width$}  {:>10.3} -> {:>10.3} {:<4} {:>+7.1}%",
                f.what,
                o.value.median,
                f.value.median,
                f.unit,
                change(o.value.median, f.value.median)
            );
            if let (Some(a), Some(b)) = (o.ratio, f.ratio) {
                line.push_str(&format!(
                    "  ratio {:.2} -> {:.2} ({:+.1}%)",
                    a.median,
                    b.median,
                    change(a.median, b.median)
                ));
            }
            let _ = writeln!(out, "{line}");
        }
        for o in &old.figures {
            if !self.figures.iter().any(|f| f.what == o.what) {
                let _ = writeln!(out, "{:<width$}  not measured this time", o.what);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_fold_into_spreads_with_per_round_ratios_and_goals() {
        let round = |v: f64, b: f64| {
            vec![
                Row::new("sandbox", v, "s")
                    .baseline("native", b)
                    .goal(Goal::RatioAtMost(1.1)),
                Row::new("instantiate", v * 2.0, "us").goal(Goal::AtMost(5.0)),
            ]
        };
        // Round 2 is slow on both sides: its ratio is still 1.0.
        let report = Report::from_rounds(&[round(1.0, 1.0), round(3.0, 3.0), round(1.2, 1.0)]);
        let f = &report.figures[0];
        assert_eq!(f.value.median, 1.2);
        assert_eq!((f.value.min, f.value.max), (1.0, 3.0));
        let r = f.ratio.expect("a ratio");
        assert_eq!((r.min, r.median, r.max), (1.0, 1.0, 1.2));
        assert_eq!(f.met, Some(true));
        // Instantiate: 2.0, 6.0, 2.4 us → median 2.4, met.
        assert_eq!(report.figures[1].met, Some(true));
        let slow = Report::from_rounds(&[round(3.0, 1.0)]);
        assert_eq!(slow.missed().len(), 2);
        // A report survives its JSON.
        let back: Report = serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
        assert_eq!(back.figures[0].ratio, report.figures[0].ratio);
        assert_eq!(back.figures[1].goal, Some(Goal::AtMost(5.0)));
    }

    #[test]
    fn an_even_number_of_rounds_takes_the_middle_two() {
        let s = Spread::of(&[4.0, 1.0, 2.0, 3.0]);
        assert_eq!((s.min, s.median, s.max), (1.0, 2.5, 4.0));
        assert!((s.spread_percent() - 120.0).abs() < 1e-9);
    }
}
