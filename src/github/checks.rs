//! `verify = "github-checks"`: whether the required check runs and statuses on a
//! commit have all succeeded, one has failed, or some are still to come.

use super::client::{CheckRun, Status};
use crate::model::evidence::{CheckKind, CheckResult};

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Still waiting for these.
    Pending(Vec<String>),
    /// Every required check succeeded; one result per check.
    Passed(Vec<CheckResult>),
    /// This one did not succeed.
    Failed(CheckResult),
}

/// Judges `required` against what GitHub reports for one commit. A name is looked up
/// among check runs first (the newest run of that name counts), then statuses.
pub fn judge(required: &[String], runs: &[CheckRun], statuses: &[Status]) -> Verdict {
    let mut passed = Vec::new();
    let mut pending = Vec::new();
    for name in required {
        let run = runs.iter().filter(|r| &r.name == name).max_by_key(|r| r.id);
        if let Some(run) = run {
            let url = run
                .details_url
                .clone()
                .or_else(|| run.html_url.clone())
                .unwrap_or_default();
            let summary = run
                .output
                .as_ref()
                .and_then(|o| o.summary.clone().or_else(|| o.title.clone()))
                .unwrap_or_default();
            if run.status != "completed" {
                pending.push(name.clone());
                continue;
            }
            let conclusion = run.conclusion.as_deref().unwrap_or("");
            let evidence = CheckResult {
                name: name.clone(),
                kind: CheckKind::CheckRun,
                conclusion: conclusion.to_owned(),
                summary,
                url,
            };
            if matches!(conclusion, "success" | "neutral" | "skipped") {
                passed.push(evidence);
                continue;
            }
            return Verdict::Failed(evidence);
        }
        match statuses.iter().find(|s| &s.context == name) {
            Some(s) => {
                let evidence = CheckResult {
                    name: name.clone(),
                    kind: CheckKind::Status,
                    conclusion: s.state.clone(),
                    summary: s.description.clone().unwrap_or_default(),
                    url: s.target_url.clone().unwrap_or_default(),
                };
                match s.state.as_str() {
                    "success" => passed.push(evidence),
                    "pending" => pending.push(name.clone()),
                    _ => return Verdict::Failed(evidence),
                }
            }
            None => pending.push(name.clone()),
        }
    }
    if pending.is_empty() {
        Verdict::Passed(passed)
    } else {
        Verdict::Pending(pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::client::CheckOutput;

    fn run(id: u64, name: &str, status: &str, conclusion: Option<&str>) -> CheckRun {
        CheckRun {
            id,
            name: name.into(),
            status: status.into(),
            conclusion: conclusion.map(Into::into),
            html_url: Some(format!("https://ci/{id}")),
            details_url: None,
            output: Some(CheckOutput {
                title: None,
                summary: Some(format!("run {id}")),
            }),
        }
    }

    fn status(context: &str, state: &str) -> Status {
        Status {
            context: context.into(),
            state: state.into(),
            description: Some("desc".into()),
            target_url: None,
        }
    }

    #[test]
    fn all_required_must_succeed_and_the_newest_run_counts() {
        let req = vec!["build".to_owned(), "lint".to_owned()];
        let runs = [
            run(1, "build", "completed", Some("failure")),
            run(2, "build", "completed", Some("success")),
        ];
        assert_eq!(
            judge(&req, &runs, &[]),
            Verdict::Pending(vec!["lint".into()])
        );
        assert!(matches!(
            judge(&req, &runs, &[status("lint", "success")]),
            Verdict::Passed(p) if p.len() == 2
        ));
        assert_eq!(
            judge(&req, &runs, &[status("lint", "pending")]),
            Verdict::Pending(vec!["lint".into()])
        );
        match judge(&req, &runs, &[status("lint", "error")]) {
            Verdict::Failed(e) => assert_eq!(e.name, "lint"),
            other => panic!("{other:?}"),
        }
        let failing = [run(3, "build", "completed", Some("timed_out"))];
        match judge(&req, &failing, &[]) {
            Verdict::Failed(e) => {
                assert_eq!(e.summary, "run 3");
                assert_eq!(e.url, "https://ci/3");
            }
            other => panic!("{other:?}"),
        }
        let running = [run(4, "build", "in_progress", None)];
        assert_eq!(
            judge(&req[..1], &running, &[]),
            Verdict::Pending(vec!["build".into()])
        );
    }
}
