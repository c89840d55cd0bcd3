//! BENCHMARKS.md and bench-results.json.

use serde::Serialize;

/// One row of the results.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub case: String,
    pub ours: f64,
    pub unit: String,
    pub baseline: Option<f64>,
    pub baseline_name: String,
    /// ours / baseline, oriented so that higher is better for rates and
    /// stated explicitly for times.
    pub ratio: Option<f64>,
    pub target: String,
    pub met: Option<bool>,
    pub note: String,
}

impl Row {
    pub fn new(case: &str, ours: f64, unit: &str) -> Row {
        Row {
            case: case.into(),
            ours,
            unit: unit.into(),
            baseline: None,
            baseline_name: "-".into(),
            ratio: None,
            target: "-".into(),
            met: None,
            note: String::new(),
        }
    }

    /// Compare with a baseline from the same run.
    pub fn vs(mut self, baseline: f64, name: &str, ratio: f64) -> Row {
        self.baseline = Some(baseline);
        self.baseline_name = name.into();
        self.ratio = Some(ratio);
        self
    }

    pub fn target(mut self, target: &str, met: bool) -> Row {
        self.target = target.into();
        self.met = Some(met);
        self
    }

    pub fn note(mut self, note: &str) -> Row {
        self.note = note.into();
        self
    }
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub date: String,
    pub machine: String,
    pub quick: bool,
    pub rows: Vec<Row>,
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

pub fn markdown(r: &Results) -> String {
    let mut s = String::new();
    s.push_str("# gongwen benchmarks\n\n");
    s.push_str(&format!(
        "Measured {} on {}{}. Every figure comes from one run of `scripts/bench.sh`; ratios compare with a baseline measured in the same run.\n\n",
        r.date,
        r.machine,
        if r.quick { " (**--quick**: reduced sizes)" } else { "" }
    ));
    s.push_str("| benchmark | ours | baseline | ratio | target | met | note |\n|---|---|---|---|---|---|---|\n");
    for row in &r.rows {
        s.push_str(&format!(
            "| {} | {} {} | {} | {} | {} | {} | {} |\n",
            row.case,
            fmt(row.ours),
            row.unit,
            row.baseline
                .map(|b| format!("{} {} ({})", fmt(b), row.unit, row.baseline_name))
                .unwrap_or_else(|| row.baseline_name.clone()),
            row.ratio
                .map(|x| format!("{x:.2}×"))
                .unwrap_or_else(|| "-".into()),
            row.target,
            match row.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "-",
            },
            row.note
        ));
    }
    s
}
