//! Plan files: a planner's batch of tasks with the dependencies among them, read and
//! judged whole before anything is added.
//!
//! A plan is TOML (`[[task]]` tables) or JSON (`{"task": [...]}`): JSON when the file
//! name ends in `.json` or the text starts with `{`. Both are first read into one small
//! tree that keeps each value's byte offset, so that one walk judges either format and
//! every problem (syntax, unknown keys, wrong types, the task text rules of
//! [`crate::model`], scopes and dependencies that do not resolve, cycles) is reported at
//! once, each at its own place, sorted by position. Pure: what the file cannot tell
//! (which scopes resolve, which task ids exist) the caller answers through [`Known`].

use std::collections::HashMap;
use std::collections::VecDeque;
use std::sync::Arc;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Diagnostic, LineIndex, Location, closest};
use crate::model::{MAX_NAME_CHARS, TaskId, check_priority, check_task_text};

/// A larger text is refused with one diagnostic, unread.
pub const MAX_PLAN_BYTES: usize = 1024 * 1024;
/// The most tasks one plan may add.
pub const MAX_PLAN_TASKS: usize = 1000;

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    pub value: T,
    pub at: Location,
}

/// What a task waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dep {
    /// Another task of the same plan: its index in the returned list.
    Local(usize),
    /// A task that already exists.
    Task(TaskId),
}

/// One task of a plan, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTask {
    /// The local name, unique in the plan, never a task id.
    pub name: String,
    /// Trimmed.
    pub title: String,
    pub request: String,
    pub accept: Vec<String>,
    pub scope: Vec<Located<String>>,
    pub priority: i64,
    pub after: Vec<Located<Dep>>,
    /// Where the task's table (TOML) or object (JSON) starts.
    pub at: Location,
}

/// What the caller knows that the file does not: whether a scope entry resolves
/// (subsystem name, or a glob matching tracked files), and whether a task id exists.
pub struct Known<'a> {
    pub scope: &'a dyn Fn(&str) -> Result<(), String>,
    pub task: &'a dyn Fn(TaskId) -> bool,
}

/// Reads and checks a plan. `file` only names the plan in locations (and, ending in
/// `.json`, selects JSON). Returns the tasks in file order, or every problem found.
pub fn parse(
    file: &str,
    text: &str,
    known: &Known<'_>,
) -> Result<Vec<PlannedTask>, Vec<Diagnostic>> {
    let file: Arc<str> = file.into();
    if text.len() > MAX_PLAN_BYTES {
        let at = Location {
            file,
            line: 1,
            col: 1,
        };
        return Err(vec![Diagnostic::error(
            Some(at),
            format!(
                "the plan is {} bytes; the limit is {MAX_PLAN_BYTES}",
                text.len()
            ),
        )]);
    }
    let format = if file.ends_with(".json") || text.trim_start().starts_with('{') {
        Format::Json
    } else {
        Format::Toml
    };
    let mut cx = Cx {
        file,
        lines: LineIndex::new(text),
        format,
        problems: Vec::new(),
    };
    let root = match format {
        Format::Toml => read_toml(text, &mut cx.problems),
        Format::Json => read_json(text, &mut cx),
    };
    let tasks = match root {
        Some(root) => cx.plan(&root, known),
        None => Vec::new(),
    };
    if cx.problems.is_empty() {
        return Ok(tasks);
    }
    let mut problems = std::mem::take(&mut cx.problems);
    // Stable: problems at one place keep the order they were found in.
    problems.sort_by_key(|(at, _)| *at);
    Err(problems
        .into_iter()
        .map(|(at, message)| Diagnostic::error(Some(cx.at(at)), message))
        .collect())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Toml,
    Json,
}

/// A value of either format, with the byte offset where it starts.
#[derive(Debug)]
struct Node {
    at: usize,
    tree: Tree,
}

#[derive(Debug)]
enum Tree {
    Str(String),
    /// `None`: an integer that does not fit an `i64`.
    Int(Option<i64>),
    List(Vec<Node>),
    Table(Vec<Entry>),
    /// Anything no plan key takes, by its name with an article ("a float", "null").
    Other(&'static str),
}

#[derive(Debug)]
struct Entry {
    key: String,
    key_at: usize,
    value: Node,
}

/// A problem: the byte offset it concerns and the message.
type Problem = (usize, String);

/// A value and the byte offset where it was written.
type At<T> = (usize, T);

/// What one parse carries: where offsets are, which format, the problems so far.
struct Cx<'t> {
    file: Arc<str>,
    lines: LineIndex<'t>,
    format: Format,
    problems: Vec<Problem>,
}

// ---- reading TOML ----

/// Syntax errors stop the reading (what toml recovers around one is a guess that would
/// be judged into phantom problems); one error per line, as for the configuration.
fn read_toml(text: &str, problems: &mut Vec<Problem>) -> Option<Node> {
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        let mut lines_seen = Vec::new();
        for e in syntax {
            let at = e.span().map_or(0, |s| s.start);
            let line = text[..at.min(text.len())].matches('\n').count();
            if !lines_seen.contains(&line) {
                lines_seen.push(line);
                problems.push((at, one_line(e.message())));
            }
        }
        return None;
    }
    Some(Node {
        at: 0,
        tree: toml_table(doc.get_ref()),
    })
}

fn toml_table(table: &DeTable<'_>) -> Tree {
    let mut entries: Vec<Entry> = table
        .iter()
        .map(|(k, v)| Entry {
            key: k.get_ref().to_string(),
            key_at: k.span().start,
            value: toml_node(v),
        })
        .collect();
    entries.sort_by_key(|e| e.key_at);
    Tree::Table(entries)
}

fn toml_node(value: &Spanned<DeValue<'_>>) -> Node {
    let tree = match value.get_ref() {
        DeValue::String(s) => Tree::Str(s.to_string()),
        DeValue::Integer(i) => Tree::Int(i64::from_str_radix(i.as_str(), i.radix()).ok()),
        DeValue::Array(a) => Tree::List(a.iter().map(toml_node).collect()),
        DeValue::Table(t) => toml_table(t),
        DeValue::Float(_) => Tree::Other("a float"),
        DeValue::Boolean(_) => Tree::Other("a boolean"),
        DeValue::Datetime(_) => Tree::Other("a datetime"),
    };
    Node {
        at: value.span().start,
        tree,
    }
}

// ---- reading JSON ----

/// Strict JSON (no comments, trailing commas or other JSON5 liberties), through
/// jsonc-parser's range-keeping AST; a duplicate key is an error here.
fn read_json(text: &str, cx: &mut Cx<'_>) -> Option<Node> {
    use jsonc_parser::{CollectOptions, ParseOptions, parse_to_ast};
    let strict = ParseOptions {
        allow_comments: false,
        allow_loose_object_property_names: false,
        allow_trailing_commas: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    };
    match parse_to_ast(text, &CollectOptions::default(), &strict) {
        Ok(parsed) => match parsed.value {
            Some(value) => Some(cx.json_node(&value)),
            None => {
                cx.problems
                    .push((0, "the plan has no \"task\" entries".into()));
                None
            }
        },
        Err(e) => {
            let message = lower_first(&one_line(&e.kind().to_string()));
            cx.problems.push((e.range().start, message));
            None
        }
    }
}

impl Cx<'_> {
    fn json_node(&mut self, value: &jsonc_parser::ast::Value<'_>) -> Node {
        use jsonc_parser::ast::Value;
        use jsonc_parser::common::Ranged;
        let (at, tree) = match value {
            Value::StringLit(s) => (s.range.start, Tree::Str(s.value.to_string())),
            Value::NumberLit(n) => {
                let integral = !n.value.contains(['.', 'e', 'E']);
                let tree = if integral {
                    Tree::Int(n.value.parse().ok())
                } else {
                    Tree::Other("a float")
                };
                (n.range.start, tree)
            }
            Value::BooleanLit(b) => (b.range.start, Tree::Other("a boolean")),
            Value::NullKeyword(n) => (n.range.start, Tree::Other("null")),
            Value::Array(a) => (
                a.range.start,
                Tree::List(a.elements.iter().map(|v| self.json_node(v)).collect()),
            ),
            Value::Object(o) => {
                let mut entries: Vec<Entry> = Vec::new();
                for prop in &o.properties {
                    let key = prop.name.as_str().to_owned();
                    let key_at = prop.name.range().start;
                    if let Some(first) = entries.iter().find(|e| e.key == key) {
                        let line = self.at(first.key_at).line;
                        self.problems.push((
                            key_at,
                            format!("duplicate key {key:?} (first at line {line})"),
                        ));
                        continue;
                    }
                    let value = self.json_node(&prop.value);
                    entries.push(Entry { key, key_at, value });
                }
                (o.range.start, Tree::Table(entries))
            }
        };
        Node { at, tree }
    }
}

// ---- judging ----

const TASK_KEYS: &[&str] = &[
    "name", "title", "request", "accept", "scope", "priority", "after",
];

/// A task as written, each value with its offset, before names are resolved.
struct Draft {
    at: usize,
    name: Option<At<String>>,
    title: Option<At<String>>,
    request: String,
    accept: Vec<String>,
    scope: Vec<At<String>>,
    priority: i64,
    after: Vec<At<String>>,
}

impl Cx<'_> {
    fn at(&self, offset: usize) -> Location {
        self.lines.locate(&self.file, offset)
    }

    fn problem(&mut self, at: usize, message: impl Into<String>) {
        self.problems.push((at, message.into()));
    }

    fn found(&self, node: &Node) -> &'static str {
        match (&node.tree, self.format) {
            (Tree::Str(_), _) => "a string",
            (Tree::Int(_), _) => "an integer",
            (Tree::List(_), _) => "an array",
            (Tree::Table(_), Format::Toml) => "a table",
            (Tree::Table(_), Format::Json) => "an object",
            (Tree::Other(what), _) => what,
        }
    }

    fn plan(&mut self, root: &Node, known: &Known<'_>) -> Vec<PlannedTask> {
        let (no_tasks, task_type, task_section) = match self.format {
            Format::Toml => (
                "the plan has no [[task]] entries",
                "`task` must be an array of tables ([[task]])",
                "[[task]]",
            ),
            Format::Json => (
                "the plan has no \"task\" entries",
                "`task` must be an array of objects",
                "a task",
            ),
        };
        let Tree::Table(top) = &root.tree else {
            let found = self.found(root);
            self.problem(
                root.at,
                format!("the plan must be an object with a \"task\" list, found {found}"),
            );
            return Vec::new();
        };
        for entry in top.iter().filter(|e| e.key != "task") {
            let hint = match closest(&entry.key, &["task"]) {
                Some(k) => format!("; did you mean `{k}`?"),
                None => " (the only key there is `task`)".into(),
            };
            self.problem(
                entry.key_at,
                format!("unknown key `{}` at the top level{hint}", entry.key),
            );
        }
        let Some(list) = top.iter().find(|e| e.key == "task").map(|e| &e.value) else {
            self.problem(0, no_tasks);
            return Vec::new();
        };
        let Tree::List(items) = &list.tree else {
            let found = self.found(list);
            self.problem(list.at, format!("{task_type}, found {found}"));
            return Vec::new();
        };
        if items.is_empty() {
            self.problem(list.at, no_tasks);
            return Vec::new();
        }
        if let Some(first_over) = items.get(MAX_PLAN_TASKS) {
            self.problem(
                first_over.at,
                format!(
                    "the plan has {} tasks; the limit is {MAX_PLAN_TASKS}",
                    items.len()
                ),
            );
        }
        let mut drafts = Vec::new();
        for item in items {
            match &item.tree {
                Tree::Table(entries) => {
                    drafts.push(self.draft(item.at, entries, task_section));
                }
                _ => {
                    let found = self.found(item);
                    self.problem(item.at, format!("{task_type}, found {found}"));
                }
            }
        }
        self.resolve(drafts, known)
    }

    /// One task's keys, typed; the text and priority checked.
    fn draft(&mut self, at: usize, entries: &[Entry], section: &str) -> Draft {
        for entry in entries {
            if TASK_KEYS.contains(&entry.key.as_str()) {
                continue;
            }
            let hint = match closest(&entry.key, TASK_KEYS) {
                Some(k) => format!("; did you mean `{k}`?"),
                None => format!(" (known keys: {})", TASK_KEYS.join(", ")),
            };
            self.problem(
                entry.key_at,
                format!("unknown key `{}` in {section}{hint}", entry.key),
            );
        }
        let get = |key: &str| entries.iter().find(|e| e.key == key).map(|e| &e.value);

        let name = get("name").and_then(|n| self.string("name", n));
        match &name {
            None if get("name").is_none() => self.problem(at, "this task has no `name`"),
            None => {}
            Some((at, name)) => {
                if let Some(message) = name_problem(name) {
                    self.problem(*at, message);
                }
            }
        }

        let title = get("title").and_then(|t| self.string("title", t));
        let request = get("request").and_then(|r| self.string("request", r));
        let accept = get("accept").and_then(|a| self.strings("accept", a));
        match &title {
            None if get("title").is_none() => self.problem(at, "this task has no `title`"),
            None => {}
            Some((at, title)) => {
                if let Err(m) = check_task_text(title.trim(), "", &[]) {
                    self.problem(*at, text_message(&m));
                }
            }
        }
        if let Some((at, request)) = &request
            && let Err(m) = check_task_text("t", request, &[])
        {
            self.problem(*at, text_message(&m));
        }
        if let Some((at, accept)) = &accept {
            let all: Vec<String> = accept.iter().map(|(_, a)| a.clone()).collect();
            match check_task_text("t", "", &all) {
                Err(m) if all.len() > crate::model::MAX_ACCEPT => {
                    self.problem(*at, text_message(&m));
                }
                _ => {
                    for (at, a) in accept {
                        if let Err(m) = check_task_text("t", "", std::slice::from_ref(a)) {
                            self.problem(*at, text_message(&m));
                        }
                    }
                }
            }
        }

        let priority = match get("priority") {
            None => 0,
            Some(node) => match &node.tree {
                Tree::Int(Some(p)) => {
                    if let Err(m) = check_priority(*p) {
                        self.problem(node.at, m);
                    }
                    *p
                }
                Tree::Int(None) => {
                    self.problem(node.at, "`priority` is out of range");
                    0
                }
                _ => {
                    let found = self.found(node);
                    self.problem(
                        node.at,
                        format!("`priority` must be an integer, found {found}"),
                    );
                    0
                }
            },
        };

        Draft {
            at,
            name,
            title: title.map(|(at, t)| (at, t.trim().to_owned())),
            request: request.map(|(_, r)| r).unwrap_or_default(),
            accept: accept
                .map(|(_, a)| a.into_iter().map(|(_, a)| a).collect())
                .unwrap_or_default(),
            scope: get("scope")
                .and_then(|s| self.strings("scope", s))
                .map(|(_, s)| s)
                .unwrap_or_default(),
            priority,
            after: get("after")
                .and_then(|a| self.strings("after", a))
                .map(|(_, a)| a)
                .unwrap_or_default(),
        }
    }

    fn string(&mut self, key: &str, node: &Node) -> Option<At<String>> {
        match &node.tree {
            Tree::Str(s) => Some((node.at, s.clone())),
            _ => {
                let found = self.found(node);
                self.problem(node.at, format!("`{key}` must be a string, found {found}"));
                None
            }
        }
    }

    fn strings(&mut self, key: &str, node: &Node) -> Option<At<Vec<At<String>>>> {
        let Tree::List(items) = &node.tree else {
            let found = self.found(node);
            self.problem(
                node.at,
                format!("`{key}` must be a list of strings, found {found}"),
            );
            return None;
        };
        let mut out = Vec::new();
        for item in items {
            match &item.tree {
                Tree::Str(s) => out.push((item.at, s.clone())),
                _ => {
                    let found = self.found(item);
                    self.problem(
                        item.at,
                        format!("`{key}` must be a list of strings, but this element is {found}"),
                    );
                }
            }
        }
        Some((node.at, out))
    }

    /// Names made unique, scopes and dependencies resolved, cycles found.
    fn resolve(&mut self, drafts: Vec<Draft>, known: &Known<'_>) -> Vec<PlannedTask> {
        let mut index: HashMap<&str, (usize, usize)> = HashMap::new();
        for (i, d) in drafts.iter().enumerate() {
            let Some((at, name)) = &d.name else { continue };
            if name_problem(name).is_some() {
                continue;
            }
            if let Some((_, first)) = index.get(name.as_str()) {
                let line = self.at(*first).line;
                self.problem(
                    *at,
                    format!("duplicate task name {name:?} (first at line {line})"),
                );
            } else {
                index.insert(name, (i, *at));
            }
        }

        let mut edges: Vec<Vec<(usize, usize)>> = vec![Vec::new(); drafts.len()];
        let mut tasks = Vec::with_capacity(drafts.len());
        for (i, d) in drafts.iter().enumerate() {
            let own = d.name.as_ref().map(|(_, n)| n.as_str());
            let mut scope = Vec::new();
            for (at, s) in &d.scope {
                match (known.scope)(s) {
                    Ok(()) => scope.push(Located {
                        value: s.clone(),
                        at: self.at(*at),
                    }),
                    Err(m) => self.problem(*at, format!("unknown scope {s:?}: {m}")),
                }
            }
            let mut after: Vec<Located<Dep>> = Vec::new();
            let mut seen: Vec<&str> = Vec::new();
            for (at, a) in &d.after {
                if seen.contains(&a.as_str()) {
                    self.problem(*at, format!("`after` lists {a:?} twice"));
                    continue;
                }
                seen.push(a);
                let dep = if Some(a.as_str()) == own {
                    self.problem(*at, format!("task {a:?} depends on itself"));
                    continue;
                } else if let Some((j, _)) = index.get(a.as_str()) {
                    edges[i].push((*j, *at));
                    Dep::Local(*j)
                } else if let Ok(id) = a.parse::<TaskId>() {
                    if !(known.task)(id) {
                        self.problem(*at, format!("no task {id}"));
                        continue;
                    }
                    Dep::Task(id)
                } else {
                    self.problem(*at, format!("no task or local name {a:?} in the plan"));
                    continue;
                };
                after.push(Located {
                    value: dep,
                    at: self.at(*at),
                });
            }
            tasks.push(PlannedTask {
                name: own.unwrap_or_default().to_owned(),
                title: d.title.as_ref().map(|(_, t)| t.clone()).unwrap_or_default(),
                request: d.request.clone(),
                accept: d.accept.clone(),
                scope,
                priority: d.priority,
                after,
                at: self.at(d.at),
            });
        }

        for (at, cycle) in cycles(edges) {
            let path: Vec<&str> = cycle.iter().map(|&i| tasks[i].name.as_str()).collect();
            self.problem(at, format!("dependency cycle: {}", path.join(" -> ")));
        }
        tasks
    }
}

/// What is wrong with a local name, if anything.
fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("`name` is empty".into());
    }
    if name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Some(format!(
            "the name {name:?} must be at most {MAX_NAME_CHARS} characters, without whitespace or control characters"
        ));
    }
    if name.parse::<TaskId>().is_ok() {
        return Some(format!(
            "the name {name:?} would read as a task id in `after`; local names must not look like t1, t2, ..."
        ));
    }
    None
}

/// The model's task-text messages speak of `task add`'s `--body`; a plan calls it `request`.
fn text_message(m: &str) -> String {
    m.replace("--body", "`request`").replace("body", "request")
}

/// At most this many cycles are reported: past it, more say nothing new and cost time.
const MAX_CYCLES_REPORTED: usize = 20;

/// Cycles among local dependencies. `edges[i]` lists, in file order, the tasks `i` waits
/// for with the offset of the `after` entry naming each. Each round finds the tangles
/// (strongly connected components), reports for each the shortest cycle through its
/// first task, at the entry that closes it, and cuts that entry, until none is left.
/// Each cycle comes as the task indices from its first task back to it.
fn cycles(mut edges: Vec<Vec<(usize, usize)>>) -> Vec<(usize, Vec<usize>)> {
    let mut found = Vec::new();
    loop {
        let adjacency: Vec<Vec<usize>> = edges
            .iter()
            .map(|e| e.iter().map(|(j, _)| *j).collect())
            .collect();
        let mut tangles: Vec<Vec<usize>> = components(&adjacency)
            .into_iter()
            .filter(|c| c.len() > 1)
            .collect();
        if tangles.is_empty() {
            return found;
        }
        for tangle in &mut tangles {
            tangle.sort_unstable();
        }
        tangles.sort_unstable();
        for tangle in tangles {
            if found.len() == MAX_CYCLES_REPORTED {
                return found;
            }
            let start = tangle[0];
            let inside = |j: usize| tangle.binary_search(&j).is_ok();
            let mut parent: HashMap<usize, usize> = HashMap::new();
            let mut queue = VecDeque::from([start]);
            let mut closing = None;
            'search: while let Some(u) = queue.pop_front() {
                for (k, &(v, at)) in edges[u].iter().enumerate() {
                    if v == start {
                        closing = Some((u, k, at));
                        break 'search;
                    }
                    if inside(v) && !parent.contains_key(&v) {
                        parent.insert(v, u);
                        queue.push_back(v);
                    }
                }
            }
            // A tangle of more than one task has a cycle through each of its tasks.
            let Some((last, k, at)) = closing else {
                continue;
            };
            let mut path = vec![start];
            let mut u = last;
            while u != start {
                path.push(u);
                u = parent[&u];
            }
            path[1..].reverse();
            path.push(start);
            found.push((at, path));
            edges[last].remove(k);
        }
    }
}

/// Strongly connected components (Tarjan's, iterative: a plan may chain many tasks).
fn components(adjacency: &[Vec<usize>]) -> Vec<Vec<usize>> {
    const UNSEEN: usize = usize::MAX;
    let n = adjacency.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0;
    let mut out = Vec::new();
    for root in 0..n {
        if index[root] != UNSEEN {
            continue;
        }
        let mut calls: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&(v, edge)) = calls.last() {
            if let Some(&w) = adjacency[v].get(edge) {
                calls.last_mut().expect("a call is on the stack").1 += 1;
                if index[w] == UNSEEN {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    calls.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            calls.pop();
            if let Some(&(u, _)) = calls.last() {
                low[u] = low[u].min(low[v]);
            }
            if low[v] == index[v] {
                let mut component = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component.push(w);
                    if w == v {
                        break;
                    }
                }
                out.push(component);
            }
        }
    }
    out
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn lower_first(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses with a caller that knows the scopes `db`, `api` and `src/**` and the tasks
    /// t1 to t20; problems come back as they print.
    fn run(file: &str, text: &str) -> Result<Vec<PlannedTask>, Vec<String>> {
        let scope = |s: &str| match s {
            "db" | "api" | "src/**" => Ok(()),
            _ => Err("no subsystem or tracked file matches it".to_owned()),
        };
        let task = |id: TaskId| (1..=20).contains(&id.0);
        let known = Known {
            scope: &scope,
            task: &task,
        };
        parse(file, text, &known).map_err(|ds| ds.iter().map(|d| d.to_string()).collect())
    }

    const TOML_PLAN: &str = r#"
[[task]]
name = "schema"
title = "  Add the users table "
request = "Logins need somewhere to live: caf\u00e9 \U0001F600."
accept = ["migrations run", "tests pass"]
scope = ["db"]
priority = 5

[[task]]
name = "api"
title = "Serve /users"
scope = ["api", "src/**"]
after = ["schema", "t3"]
"#;

    const JSON_PLAN: &str = r#"{"task": [
  {"name": "schema", "title": "  Add the users table ",
   "request": "Logins need somewhere to live: caf\u00e9 \ud83d\ude00.",
   "accept": ["migrations run", "tests pass"], "scope": ["db"], "priority": 5},
  {"name": "api", "title": "Serve \/users", "scope": ["api", "src/**"],
   "after": ["schema", "t3"]}
]}"#;

    #[test]
    fn reads_a_plan_in_toml_and_in_json_alike() {
        for (file, text, at) in [
            (
                "plan.toml",
                TOML_PLAN,
                [
                    (2, 1),
                    (7, 10),
                    (10, 1),
                    (13, 10),
                    (13, 17),
                    (14, 10),
                    (14, 20),
                ],
            ),
            (
                "plan.json",
                JSON_PLAN,
                [(2, 3), (4, 58), (5, 3), (5, 55), (5, 62), (6, 14), (6, 24)],
            ),
            // Not named .json, but it starts with `{`.
            (
                "plan",
                JSON_PLAN,
                [(2, 3), (4, 58), (5, 3), (5, 55), (5, 62), (6, 14), (6, 24)],
            ),
        ] {
            let f: Arc<str> = file.into();
            let loc = |(line, col)| Location {
                file: Arc::clone(&f),
                line,
                col,
            };
            let located = |value, i: usize| Located {
                value,
                at: loc(at[i]),
            };
            let want = vec![
                PlannedTask {
                    name: "schema".into(),
                    title: "Add the users table".into(),
                    request: "Logins need somewhere to live: café 😀.".into(),
                    accept: vec!["migrations run".into(), "tests pass".into()],
                    scope: vec![located("db".to_owned(), 1)],
                    priority: 5,
                    after: vec![],
                    at: loc(at[0]),
                },
                PlannedTask {
                    name: "api".into(),
                    title: "Serve /users".into(),
                    request: String::new(),
                    accept: vec![],
                    scope: vec![
                        located("api".to_owned(), 3),
                        located("src/**".to_owned(), 4),
                    ],
                    priority: 0,
                    after: vec![
                        Located {
                            value: Dep::Local(0),
                            at: loc(at[5]),
                        },
                        Located {
                            value: Dep::Task(TaskId(3)),
                            at: loc(at[6]),
                        },
                    ],
                    at: loc(at[2]),
                },
            ];
            assert_eq!(run(file, text), Ok(want), "{file}");
        }
    }

    #[test]
    fn reports_every_problem_at_its_place() {
        let ok = "[[task]]\nname = \"a\"\ntitle = \"A\"\n";
        let many: String = (0..=MAX_PLAN_TASKS)
            .map(|i| format!("[[task]]\nname = \"n{i}\"\ntitle = \"x\"\n"))
            .collect();
        let huge = format!("{ok}request = \"{}\"\n", "x".repeat(MAX_PLAN_BYTES));
        let deep = format!("{{\"task\": {}{}}}", "[".repeat(600), "]".repeat(600));
        let long_title = "x".repeat(201);
        let long_request = "x".repeat(64 * 1024 + 1);
        let long_title_toml = format!(
            "[[task]]\nname = \"a\"\ntitle = \"{long_title}\"\nrequest = \"{long_request}\"\n"
        );
        let cases: Vec<(&str, &str, &str, Vec<&str>)> = vec![
            // Limits.
            (
                "over the size limit",
                "p.toml",
                &huge,
                vec!["p.toml:1:1: the plan is 1048621 bytes; the limit is 1048576"],
            ),
            (
                "too many tasks",
                "p.toml",
                &many,
                vec!["p.toml:3001:1: the plan has 1001 tasks; the limit is 1000"],
            ),
            // Syntax.
            (
                "toml syntax",
                "p.toml",
                "[[task]]\nname = \"a\"\ntitle = \n",
                vec!["p.toml:3:9: string values must be quoted, expected literal string"],
            ),
            (
                "json syntax",
                "p.json",
                "{\"task\": [{\"name\": \"a\", \"title\": \"x\",}]}",
                vec!["p.json:1:37: trailing commas are not allowed"],
            ),
            (
                "json comment",
                "p.json",
                "{\"task\": [] // none\n}",
                vec!["p.json:1:13: comments are not allowed"],
            ),
            (
                "json lone surrogate",
                "p.json",
                "{\"task\": [{\"name\": \"a\", \"title\": \"x\\ud83d\"}]}",
                vec![
                    "p.json:1:36: invalid unicode escape sequence. 'd83d (unpaired high surrogate)' is not a valid UTF8 character",
                ],
            ),
            (
                "json duplicate key",
                "p.json",
                "{\"task\": [{\"name\": \"a\",\n \"title\": \"x\", \"name\": \"b\"}]}",
                vec!["p.json:2:16: duplicate key \"name\" (first at line 1)"],
            ),
            (
                "json nested too deep",
                "p.json",
                &deep,
                vec!["p.json:1:520: maximum nesting depth exceeded"],
            ),
            // The top level.
            (
                "empty toml",
                "p.toml",
                "",
                vec!["p.toml:1:1: the plan has no [[task]] entries"],
            ),
            (
                "empty json",
                "p.json",
                " ",
                vec!["p.json:1:1: the plan has no \"task\" entries"],
            ),
            (
                "empty task list",
                "p.json",
                "{\"task\": []}",
                vec!["p.json:1:10: the plan has no \"task\" entries"],
            ),
            (
                "json not an object",
                "p.json",
                "[1]",
                vec!["p.json:1:1: the plan must be an object with a \"task\" list, found an array"],
            ),
            (
                "top-level keys",
                "p.toml",
                "tasks = 1\nversion = 2\n[task]\nname = \"a\"\n",
                vec![
                    "p.toml:1:1: unknown key `tasks` at the top level; did you mean `task`?",
                    "p.toml:2:1: unknown key `version` at the top level (the only key there is `task`)",
                    "p.toml:3:1: `task` must be an array of tables ([[task]]), found a table",
                ],
            ),
            (
                "a task not a table",
                "p.toml",
                "task = [1, {name = \"a\", title = \"A\"}]\n",
                vec!["p.toml:1:9: `task` must be an array of tables ([[task]]), found an integer"],
            ),
            (
                "json task not an object",
                "p.json",
                "{\"task\": [null]}",
                vec!["p.json:1:11: `task` must be an array of objects, found null"],
            ),
            // A task's keys and types.
            (
                "unknown keys",
                "p.toml",
                concat!(
                    "[[task]]\nname = \"a\"\ntitle = \"A\"\n",
                    "titel = \"A\"\ncolour = \"red\"\n"
                ),
                vec![
                    "p.toml:4:1: unknown key `titel` in [[task]]; did you mean `title`?",
                    "p.toml:5:1: unknown key `colour` in [[task]] (known keys: name, title, request, accept, scope, priority, after)",
                ],
            ),
            (
                "unknown key in json",
                "p.json",
                "{\"task\": [{\"name\": \"a\", \"title\": \"A\", \"prio\": 1}]}",
                vec![
                    "p.json:1:39: unknown key `prio` in a task (known keys: name, title, request, accept, scope, priority, after)",
                ],
            ),
            (
                "wrong types",
                "p.toml",
                "[[task]]\nname = 1\ntitle = [\"A\"]\nrequest = true\naccept = \"it works\"\nscope = [\"db\", 2]\npriority = \"high\"\nafter = {a = 1}\n",
                vec![
                    "p.toml:2:8: `name` must be a string, found an integer",
                    "p.toml:3:9: `title` must be a string, found an array",
                    "p.toml:4:11: `request` must be a string, found a boolean",
                    "p.toml:5:10: `accept` must be a list of strings, found a string",
                    "p.toml:6:16: `scope` must be a list of strings, but this element is an integer",
                    "p.toml:7:12: `priority` must be an integer, found a string",
                    "p.toml:8:9: `after` must be a list of strings, found a table",
                ],
            ),
            (
                "json numbers",
                "p.json",
                "{\"task\": [{\"name\": \"a\", \"title\": \"A\", \"priority\": 1.5},\n{\"name\": \"b\", \"title\": \"B\", \"priority\": 99999999999999999999}]}",
                vec![
                    "p.json:1:51: `priority` must be an integer, found a float",
                    "p.json:2:41: `priority` is out of range",
                ],
            ),
            // Names.
            (
                "names",
                "p.toml",
                "[[task]]\ntitle = \"A\"\n[[task]]\nname = \"\"\ntitle = \"A\"\n[[task]]\nname = \"my task\"\ntitle = \"A\"\n[[task]]\nname = \"t12\"\ntitle = \"A\"\n[[task]]\nname = \"b\"\ntitle = \"A\"\n[[task]]\nname = \"b\"\ntitle = \"A\"\n",
                vec![
                    "p.toml:1:1: this task has no `name`",
                    "p.toml:4:8: `name` is empty",
                    "p.toml:7:8: the name \"my task\" must be at most 100 characters, without whitespace or control characters",
                    "p.toml:10:8: the name \"t12\" would read as a task id in `after`; local names must not look like t1, t2, ...",
                    "p.toml:16:8: duplicate task name \"b\" (first at line 13)",
                ],
            ),
            // The text and the priority, by the model's rules.
            (
                "text",
                "p.toml",
                "[[task]]\nname = \"a\"\n[[task]]\nname = \"b\"\ntitle = \"  \"\naccept = [\"ok\", \" \"]\npriority = 1001\n[[task]]\nname = \"c\"\ntitle = \"one\\ntwo\"\nrequest = \"bell\\u0007\"\n",
                vec![
                    "p.toml:1:1: this task has no `title`",
                    "p.toml:5:9: the title is empty",
                    "p.toml:6:17: acceptance criteria must be 1 to 50 non-empty lines of at most 1024 bytes",
                    "p.toml:7:12: the priority is 1001; it must be from -1000 to 1000",
                    "p.toml:10:9: the title must be one line (put details in `request`)",
                    "p.toml:11:11: the title, request and acceptance criteria must not contain control characters",
                ],
            ),
            (
                "long text",
                "p.toml",
                &long_title_toml,
                vec![
                    "p.toml:3:9: the title is 201 characters; the limit is 200 (put details in `request`)",
                    "p.toml:4:11: the request is 65537 bytes; the limit is 65536",
                ],
            ),
            // Scopes and dependencies.
            (
                "scope",
                "p.toml",
                concat!(
                    "[[task]]\nname = \"a\"\ntitle = \"A\"\n",
                    "scope = [\"db\", \"dbb\"]\n"
                ),
                vec!["p.toml:4:16: unknown scope \"dbb\": no subsystem or tracked file matches it"],
            ),
            (
                "after",
                "p.toml",
                concat!(
                    "[[task]]\nname = \"a\"\ntitle = \"A\"\n",
                    "after = [\"a\", \"b\", \"t3\", \"t99\", \"t3\", \"t0\"]\n[[task]]\nname = \"c\"\ntitle = \"C\"\n"
                ),
                vec![
                    "p.toml:4:10: task \"a\" depends on itself",
                    "p.toml:4:15: no task or local name \"b\" in the plan",
                    "p.toml:4:26: no task t99",
                    "p.toml:4:33: `after` lists \"t3\" twice",
                    "p.toml:4:39: no task or local name \"t0\" in the plan",
                ],
            ),
            (
                "cycles",
                "p.toml",
                "[[task]]\nname = \"a\"\ntitle = \"A\"\nafter = [\"c\"]\n[[task]]\nname = \"b\"\ntitle = \"B\"\nafter = [\"a\"]\n[[task]]\nname = \"c\"\ntitle = \"C\"\nafter = [\"b\", \"a\"]\n[[task]]\nname = \"d\"\ntitle = \"D\"\nafter = [\"e\", \"a\"]\n[[task]]\nname = \"e\"\ntitle = \"E\"\nafter = [\"d\"]\n",
                vec![
                    "p.toml:8:10: dependency cycle: a -> c -> b -> a",
                    "p.toml:12:15: dependency cycle: a -> c -> a",
                    "p.toml:20:10: dependency cycle: d -> e -> d",
                ],
            ),
            // Everything at once, in the order of the file.
            (
                "all at once",
                "p.json",
                "{\"task\": [\n{\"name\": \"a\", \"title\": \"\", \"after\": [\"b\"]},\n{\"name\": \"b\", \"title\": \"B\", \"after\": [\"a\", \"zz\"], \"scope\": [\"x\"]}\n],\n\"extra\": 1}",
                vec![
                    "p.json:2:24: the title is empty",
                    "p.json:3:39: dependency cycle: a -> b -> a",
                    "p.json:3:44: no task or local name \"zz\" in the plan",
                    "p.json:3:61: unknown scope \"x\": no subsystem or tracked file matches it",
                    "p.json:5:1: unknown key `extra` at the top level (the only key there is `task`)",
                ],
            ),
        ];
        for (case, file, text, want) in cases {
            assert_eq!(
                run(file, text),
                Err(want.into_iter().map(String::from).collect()),
                "{case}"
            );
        }
    }
}
