//! The one JSON line each scenario prints, and the checks behind its `ok`.

use serde_json::{Map, Value};

/// What a scenario measured and verified.
pub struct Report {
    scenario: &'static str,
    protocol: &'static str,
    pub params: Map<String, Value>,
    pub results: Map<String, Value>,
    /// `None` prints `"floor": null` (PostgreSQL floors skipped).
    pub floor: Option<Value>,
    pub ratio: Map<String, Value>,
    pub notes: Vec<String>,
    failures: Vec<String>,
    checks: u64,
    loadavg_start: Option<f64>,
}

/// The 1-minute load average (the machine is shared: a busy machine skews timings).
pub fn loadavg_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Report {
    pub fn new(scenario: &'static str, protocol: &'static str) -> Report {
        Report {
            scenario,
            protocol,
            params: Map::new(),
            results: Map::new(),
            floor: None,
            ratio: Map::new(),
            notes: Vec::new(),
            failures: Vec::new(),
            checks: 0,
            loadavg_start: loadavg_1m(),
        }
    }

    pub fn param(&mut self, k: &str, v: impl Into<Value>) {
        self.params.insert(k.to_string(), v.into());
    }

    pub fn result(&mut self, k: &str, v: impl Into<Value>) {
        self.results.insert(k.to_string(), v.into());
    }

    pub fn ratio(&mut self, k: &str, v: Option<f64>) {
        self.ratio
            .insert(k.to_string(), v.map(Value::from).unwrap_or(Value::Null));
    }

    pub fn note(&mut self, n: impl Into<String>) {
        self.notes.push(n.into());
    }

    /// Records one verification; a false `cond` fails the scenario.
    pub fn check(&mut self, cond: bool, what: impl FnOnce() -> String) {
        self.checks += 1;
        if !cond {
            self.fail(what());
        }
    }

    pub fn fail(&mut self, what: impl Into<String>) {
        if self.failures.len() < 20 {
            self.failures.push(what.into());
        } else if self.failures.len() == 20 {
            self.failures.push("… (more failures left out)".into());
        }
    }

    pub fn ok(&self) -> bool {
        self.failures.is_empty()
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("scenario".into(), self.scenario.into());
        m.insert("protocol".into(), self.protocol.into());
        m.insert("ok".into(), self.ok().into());
        m.insert("checks".into(), self.checks.into());
        m.insert("failures".into(), self.failures.clone().into());
        m.insert("params".into(), Value::Object(self.params.clone()));
        m.insert("results".into(), Value::Object(self.results.clone()));
        m.insert("floor".into(), self.floor.clone().unwrap_or(Value::Null));
        m.insert("ratio".into(), Value::Object(self.ratio.clone()));
        m.insert(
            "machine".into(),
            serde_json::json!({
                "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
                "loadavg_1m_start": self.loadavg_start,
                "loadavg_1m_end": loadavg_1m(),
            }),
        );
        if !self.notes.is_empty() {
            m.insert("notes".into(), self.notes.clone().into());
        }
        Value::Object(m)
    }

    /// Prints the JSON line on stdout.
    pub fn print(&self) {
        println!("{}", self.to_json());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_check_fails_the_report() {
        let mut r = Report::new("push", "0.4");
        r.check(true, || unreachable!());
        assert!(r.ok());
        r.check(1 + 1 == 3, || "maths".into());
        r.result("events_per_s", 12.5);
        r.ratio("x", None);
        let j = r.to_json();
        assert_eq!(j["ok"], false);
        assert_eq!(j["checks"], 2);
        assert_eq!(j["failures"][0], "maths");
        assert_eq!(j["floor"], Value::Null);
        assert_eq!(j["ratio"]["x"], Value::Null);
        assert_eq!(j["results"]["events_per_s"], 12.5);
        // One line.
        assert!(!j.to_string().contains('\n'));
    }
}
