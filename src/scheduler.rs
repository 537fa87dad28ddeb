//! Which task a claim gets: the highest-priority, oldest open task whose subsystems all
//! have room under their caps (and under the global cap). Pure: it is handed the open
//! tasks and who holds which slots, and decides.

use std::collections::BTreeMap;
use std::fmt;

use crate::config::Config;
use crate::model::{SubsystemName, Task, TaskId};

/// The caps in force.
#[derive(Debug, Clone, Default)]
pub struct Caps {
    pub per_subsystem: BTreeMap<SubsystemName, u32>,
    pub global: Option<u32>,
}

impl Caps {
    pub fn from_config(config: &Config) -> Caps {
        Caps {
            per_subsystem: config
                .subsystems
                .iter()
                .filter_map(|s| s.max_parallel.map(|m| (s.name.clone(), m.get())))
                .collect(),
            global: config.claims.max_parallel.map(|m| m.get()),
        }
    }
}

/// Who holds claim slots now: every claimed task, and per subsystem the ones touching it.
#[derive(Debug, Clone, Default)]
pub struct Load {
    pub all: Vec<TaskId>,
    pub per_subsystem: BTreeMap<SubsystemName, Vec<TaskId>>,
}

impl Load {
    /// The load made by tasks that hold claims.
    pub fn of<'a>(holding: impl IntoIterator<Item = &'a Task>) -> Load {
        let mut load = Load::default();
        for task in holding {
            load.all.push(task.id);
            for s in &task.subsystems {
                load.per_subsystem
                    .entry(s.clone())
                    .or_default()
                    .push(task.id);
            }
        }
        load
    }
}

/// Why a task cannot be claimed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocked {
    Subsystem {
        name: SubsystemName,
        cap: u32,
        holders: Vec<TaskId>,
    },
    Global {
        cap: u32,
        holders: Vec<TaskId>,
    },
}

impl fmt::Display for Blocked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |ids: &[TaskId]| {
            ids.iter()
                .map(|i| i.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Blocked::Subsystem { name, cap, holders } => write!(
                f,
                "subsystem {name} is at its cap of {cap}: {} hold its slots",
                list(holders)
            ),
            Blocked::Global { cap, holders } => write!(
                f,
                "the global cap of {cap} claimed tasks is reached: {}",
                list(holders)
            ),
        }
    }
}

/// Whether a task touching `subsystems` fits under the caps.
pub fn fits(subsystems: &[SubsystemName], load: &Load, caps: &Caps) -> Result<(), Blocked> {
    if let Some(cap) = caps.global
        && load.all.len() >= cap as usize
    {
        return Err(Blocked::Global {
            cap,
            holders: load.all.clone(),
        });
    }
    for name in subsystems {
        let Some(&cap) = caps.per_subsystem.get(name) else {
            continue;
        };
        let holders = load.per_subsystem.get(name).cloned().unwrap_or_default();
        if holders.len() >= cap as usize {
            return Err(Blocked::Subsystem {
                name: name.clone(),
                cap,
                holders,
            });
        }
    }
    Ok(())
}

/// The task to claim among `open` ones, or why each of them is blocked.
pub fn pick<'t>(
    open: &'t [Task],
    load: &Load,
    caps: &Caps,
) -> Result<&'t Task, Vec<(TaskId, Blocked)>> {
    let mut order: Vec<&Task> = open.iter().collect();
    order.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));
    let mut blocked = Vec::new();
    for task in order {
        match fits(&task.subsystems, load, caps) {
            Ok(()) => return Ok(task),
            Err(why) => blocked.push((task.id, why)),
        }
    }
    Err(blocked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{TaskState, Timestamp};

    fn task(id: i64, priority: i64, subs: &[&str]) -> Task {
        Task {
            id: TaskId(id),
            title: format!("task {id}"),
            body: String::new(),
            accept: vec![],
            scope: vec![],
            subsystems: subs
                .iter()
                .map(|s| SubsystemName::new(s).unwrap())
                .collect(),
            priority,
            state: TaskState::Open,
            branch: format!("switchyard/t{id}"),
            worktree: None,
            agent: None,
            executor: None,
            lease_expires_at: None,
            attempt: 0,
            port_base: None,
            base_sha: None,
            queued_at: None,
            approved_attempt: None,
            submitted_head: None,
            after: vec![],
            blocked_by: vec![],
            review: None,
            reviewed_head: None,
            remote_claim: false,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    fn caps(per: &[(&str, u32)], global: Option<u32>) -> Caps {
        Caps {
            per_subsystem: per
                .iter()
                .map(|(n, c)| (SubsystemName::new(n).unwrap(), *c))
                .collect(),
            global,
        }
    }

    #[test]
    fn highest_priority_then_oldest() {
        let open = [task(1, 0, &[]), task(2, 5, &[]), task(3, 5, &[])];
        let got = pick(&open, &Load::default(), &Caps::default()).unwrap();
        assert_eq!(got.id, TaskId(2));
    }

    #[test]
    fn skips_tasks_whose_subsystem_is_full() {
        let holding = [task(10, 0, &["auth"]), task(11, 0, &["auth", "web"])];
        let load = Load::of(&holding);
        let open = [
            task(1, 9, &["auth"]),
            task(2, 0, &["web"]),
            task(3, 0, &["docs"]),
        ];
        let c = caps(&[("auth", 2), ("web", 1)], None);
        assert_eq!(pick(&open, &load, &c).unwrap().id, TaskId(3));
        let blocked = pick(&open[..2], &load, &c).unwrap_err();
        assert_eq!(
            blocked[0].1.to_string(),
            "subsystem auth is at its cap of 2: t10, t11 hold its slots"
        );
        assert_eq!(
            blocked[1].1.to_string(),
            "subsystem web is at its cap of 1: t11 hold its slots"
        );
    }

    #[test]
    fn global_cap() {
        let holding = [task(10, 0, &[])];
        let load = Load::of(&holding);
        let open = [task(1, 0, &[])];
        let err = pick(&open, &load, &caps(&[], Some(1))).unwrap_err();
        assert_eq!(
            err[0].1.to_string(),
            "the global cap of 1 claimed tasks is reached: t10"
        );
        assert!(pick(&open, &load, &caps(&[], Some(2))).is_ok());
    }
}
