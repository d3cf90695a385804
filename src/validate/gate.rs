//! Limits on a validation's error, so a calibration can be gated in CI
//! (`llmforge validate --max-mape ...`, exit 1 when a limit is exceeded).
//!
//! A limit is `PERCENT` (the MAPE over every row in the statistics) or `SCOPE=PERCENT`,
//! where `SCOPE` names one group of the report as it prints it:
//!
//! * `phase:decode batch 1` — a phase class (`by phase`);
//! * `metric:TTFT` — a measured metric (`by metric`);
//! * `group:RTX 4090 | llama.cpp | tg tok/s` — one device, stack and metric.
//!
//! Names match ignoring case and surrounding blanks; `PERCENT` is `15` or `15%`. A scope that
//! names no group of the report is an error, never a silent pass.

use super::stats::{ErrorStats, Group};
use super::{Report, ValidateError};
use std::str::FromStr;

/// Which rows a limit is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Overall,
    Phase(String),
    Metric(String),
    Group(String),
}

impl Scope {
    fn describe(&self) -> String {
        match self {
            Scope::Overall => "overall".into(),
            Scope::Phase(p) => format!("phase `{p}`"),
            Scope::Metric(m) => format!("metric `{m}`"),
            Scope::Group(g) => format!("group `{g}`"),
        }
    }
}

/// One `--max-mape` limit.
#[derive(Clone, Debug, PartialEq)]
pub struct Limit {
    pub scope: Scope,
    /// In percent.
    pub max_pct: f64,
}

const FORMS: &str = "write PERCENT (overall) or phase:NAME=PERCENT, metric:NAME=PERCENT, \
                     group:DEVICE | STACK | METRIC=PERCENT, e.g. --max-mape 15 --max-mape 'phase:decode batch 1=10%'";

impl FromStr for Limit {
    type Err = ValidateError;
    fn from_str(spec: &str) -> Result<Limit, ValidateError> {
        let fail = |message: String| ValidateError::Limit {
            spec: spec.to_string(),
            message,
            help: FORMS.into(),
        };
        let (scope, pct) = match spec.rsplit_once('=') {
            Some((scope, pct)) => (Some(scope.trim()), pct),
            None => (None, spec),
        };
        let number = pct.trim().trim_end_matches('%').trim();
        let max_pct: f64 = number
            .parse()
            .map_err(|_| fail(format!("`{}` is not a percentage", pct.trim())))?;
        if !(max_pct.is_finite() && max_pct >= 0.0) {
            return Err(fail(format!(
                "the limit must be finite and at least 0, got {max_pct}"
            )));
        }
        let scope = match scope {
            None => Scope::Overall,
            Some(s) => {
                let (kind, name) = s
                    .split_once(':')
                    .ok_or_else(|| fail(format!("`{s}` names no scope kind (phase, metric or group)")))?;
                let name = name.trim().to_string();
                if name.is_empty() {
                    return Err(fail(format!("`{s}` names no {}", kind.trim())));
                }
                match kind.trim().to_ascii_lowercase().as_str() {
                    "phase" => Scope::Phase(name),
                    "metric" => Scope::Metric(name),
                    "group" => Scope::Group(name),
                    other => return Err(fail(format!("unknown scope kind `{other}`"))),
                }
            }
        };
        Ok(Limit { scope, max_pct })
    }
}

/// A limit held against a report.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    /// `overall`, `phase \`decode batch 1\``, ...
    pub what: String,
    pub mape: f64,
    pub max_pct: f64,
    /// Rows in the statistic.
    pub rows: usize,
    pub exceeded: bool,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: MAPE {:.1}% {} {}% ({} rows)",
            self.what,
            self.mape,
            if self.exceeded { ">" } else { "<=" },
            self.max_pct,
            self.rows
        )
    }
}

fn matches(group: &Group, name: &str) -> bool {
    let key = group.key.join(" | ");
    let norm = |s: &str| {
        s.split('|')
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" | ")
            .to_lowercase()
    };
    norm(&key) == norm(name)
}

/// Every limit against the report, in the order given. A scope that names no group, or a
/// report without rows, is an error.
pub fn check(report: &Report, limits: &[Limit]) -> Result<Vec<Outcome>, ValidateError> {
    limits
        .iter()
        .map(|limit| {
            let fail = |message: String, groups: &[Group]| {
                let names: Vec<String> = groups.iter().map(|g| g.key.join(" | ")).collect();
                ValidateError::Limit {
                    spec: format!("{}={}", limit.scope.describe(), limit.max_pct),
                    message,
                    help: if names.is_empty() {
                        FORMS.into()
                    } else {
                        format!("the report's names: {}", names.join("; "))
                    },
                }
            };
            let (groups, name): (&[Group], Option<&str>) = match &limit.scope {
                Scope::Overall => (&[], None),
                Scope::Phase(p) => (&report.by_phase, Some(p)),
                Scope::Metric(m) => (&report.by_metric, Some(m)),
                Scope::Group(g) => (&report.groups, Some(g)),
            };
            let stats: &ErrorStats = match name {
                None => report
                    .overall
                    .as_ref()
                    .ok_or_else(|| fail("no predicted row is in the statistics".into(), &[]))?,
                Some(n) => groups
                    .iter()
                    .find(|g| matches(g, n))
                    .map(|g| &g.stats)
                    .ok_or_else(|| {
                        fail(
                            format!("the report has no such {}", kind_word(&limit.scope)),
                            groups,
                        )
                    })?,
            };
            Ok(Outcome {
                what: limit.scope.describe(),
                mape: stats.mape,
                max_pct: limit.max_pct,
                rows: stats.n,
                exceeded: stats.mape > limit.max_pct,
            })
        })
        .collect()
}

fn kind_word(scope: &Scope) -> &'static str {
    match scope {
        Scope::Overall => "statistic",
        Scope::Phase(_) => "phase",
        Scope::Metric(_) => "metric",
        Scope::Group(_) => "group",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse() {
        let l: Limit = "15".parse().unwrap();
        assert_eq!((l.scope, l.max_pct), (Scope::Overall, 15.0));
        let l: Limit = "phase: decode batch 1 = 8.5%".parse().unwrap();
        assert_eq!((l.scope, l.max_pct), (Scope::Phase("decode batch 1".into()), 8.5));
        let l: Limit = "group:RTX 4090 | llama.cpp | tg tok/s=10".parse().unwrap();
        assert_eq!(l.scope, Scope::Group("RTX 4090 | llama.cpp | tg tok/s".into()));
        for bad in ["", "x", "-1", "phase=3", "device:a=3", "metric:=3", "inf"] {
            let e = bad.parse::<Limit>().unwrap_err();
            assert!(e.to_string().starts_with("--max-mape"), "{bad}: {e}");
        }
    }
}
