//! Ownership lanes (`[queue] lanes = true`): which tasks in the queue are independent, as
//! declared by ownership. Pure: the planner asks, the daemon fills in what each task
//! touches from its `submitted` event.
//!
//! A task's verdict depends on the subsystems its verify covers (those it touches, and
//! those that `depends_on` them, transitively) and on what those depend on
//! (transitively). Two tasks are independent when neither touches anything the other's
//! verdict depends on. A change to a path no subsystem owns, or to the config, touches
//! everything: it is independent of nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::Subsystem;
use crate::model::{SubsystemName, TaskId};

/// What a change touches, for lanes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// The subsystems owning its changed paths.
    Subsystems(BTreeSet<SubsystemName>),
    /// Everything (an unowned path, the config, or a change the ledger cannot tell).
    Everything,
}

/// A task's footprint: what it touches, and what its verdict depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footprint {
    /// `None`: everything.
    touches: Option<BTreeSet<SubsystemName>>,
    depends: BTreeSet<SubsystemName>,
}

impl Footprint {
    /// Whether two changes can be verified without each other: neither touches what the
    /// other's verdict depends on.
    pub fn independent(&self, other: &Footprint) -> bool {
        match (&self.touches, &other.touches) {
            (Some(mine), Some(theirs)) => {
                mine.is_disjoint(&other.depends) && theirs.is_disjoint(&self.depends)
            }
            _ => false,
        }
    }
}

/// The subsystems' `depends_on` graph, closed transitively both ways.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// Each subsystem and everything it depends on, transitively.
    dependencies: BTreeMap<SubsystemName, BTreeSet<SubsystemName>>,
    /// Each subsystem and everything that depends on it, transitively.
    dependents: BTreeMap<SubsystemName, BTreeSet<SubsystemName>>,
}

impl Graph {
    /// From the config's subsystems (`depends_on` is acyclic, the config checks that).
    pub fn new(subsystems: &[Subsystem]) -> Graph {
        let direct: BTreeMap<&SubsystemName, &[SubsystemName]> = subsystems
            .iter()
            .map(|s| (&s.name, s.depends_on.as_slice()))
            .collect();
        let mut graph = Graph::default();
        for s in subsystems {
            // Everything reachable along `depends_on`, the subsystem itself included.
            let mut seen = BTreeSet::new();
            let mut todo = vec![&s.name];
            while let Some(n) = todo.pop() {
                if seen.insert(n.clone()) {
                    todo.extend(direct.get(n).into_iter().flat_map(|d| d.iter()));
                }
            }
            for d in &seen {
                graph
                    .dependents
                    .entry(d.clone())
                    .or_default()
                    .insert(s.name.clone());
            }
            graph.dependencies.insert(s.name.clone(), seen);
        }
        graph
    }

    /// What a change reaching `reach` touches and depends on.
    pub fn footprint(&self, reach: &Reach) -> Footprint {
        let Reach::Subsystems(touched) = reach else {
            return Footprint {
                touches: None,
                depends: BTreeSet::new(),
            };
        };
        let one = |map: &BTreeMap<SubsystemName, BTreeSet<SubsystemName>>, s: &SubsystemName| {
            map.get(s)
                .cloned()
                .unwrap_or_else(|| BTreeSet::from([s.clone()]))
        };
        // What its verify covers: what it touches and what depends on that.
        let covers: BTreeSet<SubsystemName> = touched
            .iter()
            .flat_map(|s| one(&self.dependents, s))
            .collect();
        let depends = covers
            .iter()
            .flat_map(|s| one(&self.dependencies, s))
            .collect();
        Footprint {
            touches: Some(touched.clone()),
            depends,
        }
    }
}

/// The footprints of the tasks the planner looks at. A task it does not know is
/// independent of nothing.
#[derive(Debug, Clone, Default)]
pub struct Lanes {
    footprints: BTreeMap<TaskId, Footprint>,
}

impl Lanes {
    pub fn new(graph: &Graph, reach: impl IntoIterator<Item = (TaskId, Reach)>) -> Lanes {
        Lanes {
            footprints: reach
                .into_iter()
                .map(|(id, r)| (id, graph.footprint(&r)))
                .collect(),
        }
    }

    pub fn independent(&self, a: TaskId, b: TaskId) -> bool {
        match (self.footprints.get(&a), self.footprints.get(&b)) {
            (Some(x), Some(y)) => a != b && x.independent(y),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Approval;
    use crate::diagnostic::Location;

    fn name(s: &str) -> SubsystemName {
        SubsystemName::new(s).unwrap()
    }

    fn subsystem(n: &str, deps: &[&str]) -> Subsystem {
        Subsystem {
            name: name(n),
            max_parallel: None,
            verify: Vec::new(),
            approval: Approval::None,
            review: Approval::None,
            depends_on: deps.iter().map(|d| name(d)).collect(),
            location: Location::of_offset(&"sy.toml".into(), "", 0),
        }
    }

    fn touches(names: &[&str]) -> Reach {
        Reach::Subsystems(names.iter().map(|n| name(n)).collect())
    }

    #[test]
    fn independence_follows_ownership_and_depends_on() {
        // web depends on api, api on db; docs and ops stand alone.
        let graph = Graph::new(&[
            subsystem("db", &[]),
            subsystem("api", &["db"]),
            subsystem("web", &["api"]),
            subsystem("docs", &[]),
            subsystem("ops", &[]),
        ]);
        type Case<'a> = (&'a [&'a str], Option<&'a [&'a str]>, bool, &'a str);
        let cases: &[Case] = &[
            (&["docs"], Some(&["ops"]), true, "unrelated subsystems"),
            (&["docs"], Some(&["docs"]), false, "the same subsystem"),
            (
                &["db"],
                Some(&["web"]),
                false,
                "web's verdict depends on db, transitively",
            ),
            (&["web"], Some(&["db"]), false, "the other way round too"),
            (&["api"], Some(&["web"]), false, "a direct dependency"),
            (
                &["web", "docs"],
                Some(&["ops"]),
                true,
                "two subsystems, neither the other's",
            ),
            (&["web", "ops"], Some(&["ops"]), false, "sharing one of two"),
            (
                &["docs"],
                None,
                false,
                "an unowned path or the config touches everything",
            ),
        ];
        for (a, b, want, why) in cases {
            let a = graph.footprint(&touches(a));
            let b = graph.footprint(&b.map_or(Reach::Everything, touches));
            assert_eq!(a.independent(&b), *want, "{why}");
            assert_eq!(b.independent(&a), *want, "{why}, symmetric");
        }
    }

    #[test]
    fn a_subsystem_depended_on_covers_its_dependents_verdicts() {
        // Both lib's dependents verify when lib changes: a change to app1 depends on lib,
        // and a change to lib covers app1 and app2, whose verdicts depend on lib.
        let graph = Graph::new(&[
            subsystem("lib", &[]),
            subsystem("app1", &["lib"]),
            subsystem("app2", &["lib"]),
        ]);
        let app1 = graph.footprint(&touches(&["app1"]));
        let app2 = graph.footprint(&touches(&["app2"]));
        let lib = graph.footprint(&touches(&["lib"]));
        assert!(app1.independent(&app2), "siblings over a shared library");
        assert!(!lib.independent(&app2));
        let lanes = Lanes::new(
            &graph,
            [
                (TaskId(1), touches(&["app1"])),
                (TaskId(2), touches(&["app2"])),
            ],
        );
        assert!(lanes.independent(TaskId(1), TaskId(2)));
        assert!(!lanes.independent(TaskId(1), TaskId(3)), "unknown: never");
    }
}
