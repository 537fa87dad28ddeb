//! The dashboard's HTML, rendered on the server from plain view models: the whole page
//! at load, and the live part again for every update the page receives over
//! server-sent events (the browser swaps it in), so there is one renderer and the page
//! reads the same without JavaScript. Pure: no I/O, no clock (the time is in the model).
//!
//! Everything a person or an agent wrote (titles, bodies, reasons, paths, command
//! output) goes through [`esc`]; the page has no inline script or style, so the
//! Content-Security-Policy can forbid both.

use std::fmt::{self, Display, Write};

use crate::api::{self, QueueEntry, Stage};
use crate::model::evidence::{Conflict, Evidence, Finished, Outcome, Verification, VerifyFailure};
use crate::model::{Event, Pause, Stop, StopPart, TaskId, TaskState, Timestamp};

use super::super::metrics::Expected;

/// HTML-escapes text for an element's content or a quoted attribute.
pub(super) fn esc(text: &str) -> Escaped<'_> {
    Escaped(text)
}

pub(super) struct Escaped<'a>(&'a str);

impl Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#39;")?,
                // Control characters (a verify log's colour codes) would only garble.
                c if c.is_control() && c != '\n' && c != '\t' => f.write_char('\u{FFFD}')?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Who is looking, as far as the page cares: whether it offers actions, and the form
/// token those need.
#[derive(Debug, Clone)]
pub(super) enum Viewer {
    /// No token is configured: the page is read-only.
    ReadOnly,
    /// Signed in (or holding the token): actions are offered, recorded as `name`.
    Acting { name: String, csrf: String },
}

impl Viewer {
    fn csrf(&self) -> Option<&str> {
        match self {
            Viewer::ReadOnly => None,
            Viewer::Acting { csrf, .. } => Some(csrf),
        }
    }
}

/// The queue page's live part.
#[derive(Debug)]
pub(super) struct Overview {
    pub now: Timestamp,
    pub counts: Vec<(TaskState, usize)>,
    pub stop: Option<Stop>,
    pub paused: Option<Pause>,
    pub queue: Vec<QueueEntry>,
    pub verifying: Vec<VerifyNow>,
    pub slots: Vec<Slots>,
    pub came_back: Vec<CameBack>,
}

/// A verify running now.
#[derive(Debug)]
pub(super) struct VerifyNow {
    pub id: TaskId,
    pub title: String,
    pub lane: Option<usize>,
    pub started: Timestamp,
    pub commands: Vec<String>,
    pub expected: Option<Expected>,
}

/// One subsystem's slots (or, with `subsystem` `None`, the global cap's).
#[derive(Debug)]
pub(super) struct Slots {
    pub subsystem: Option<String>,
    pub cap: Option<u32>,
    pub holders: Vec<Holder>,
}

/// A task holding a slot.
#[derive(Debug, Clone)]
pub(super) struct Holder {
    pub id: TaskId,
    pub title: String,
    pub state: TaskState,
    pub agent: Option<String>,
    /// When its current claim began.
    pub claimed_at: Option<Timestamp>,
    /// While it holds a lease: when the lease was last given (the claim, or its coming
    /// back), and whether that was a return.
    pub leased: Option<(Timestamp, bool)>,
    /// While it holds a lease: when it was last renewed (the ledger keeps no event per
    /// heartbeat; the lease's end, less its length, says when).
    pub renewed_at: Option<Timestamp>,
    pub lease_expires_at: Option<Timestamp>,
}

/// A task that came back, and why.
#[derive(Debug)]
pub(super) struct CameBack {
    pub id: TaskId,
    pub title: String,
    pub state: TaskState,
    pub agent: Option<String>,
    pub event: Event,
}

/// A task's page's live part.
#[derive(Debug)]
pub(super) struct TaskPage {
    pub now: Timestamp,
    pub detail: api::TaskDetail,
    /// Its place in the queue, while it is in it.
    pub entry: Option<QueueEntry>,
    /// The verify log being written now, while it verifies.
    pub live_log: Option<LiveLog>,
}

#[derive(Debug)]
pub(super) struct LiveLog {
    pub name: String,
    pub tail: Vec<String>,
}

// ---- pages ----------------------------------------------------------------------

/// A whole page: the header, the live part (`live` names where its updates come from)
/// and the footer.
pub(super) fn page(
    title: &str,
    repo: &str,
    live: Option<&str>,
    viewer: &Viewer,
    body: &str,
) -> String {
    let mut h = String::with_capacity(body.len() + 2048);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · switchyard</title>\n\
         <link rel=\"stylesheet\" href=\"/assets/style.css\">\n\
         <link rel=\"icon\" href=\"/assets/icon.svg\" type=\"image/svg+xml\">\n\
         <script src=\"/assets/app.js\" defer></script>\n</head>\n<body>\n\
         <header class=\"top\"><a class=\"brand\" href=\"/\">switchyard</a>\
         <span class=\"repo\">{}</span>",
        esc(title),
        esc(repo)
    );
    if live.is_some() {
        h.push_str(
            "<span id=\"conn\" class=\"conn\" role=\"status\" aria-live=\"polite\">connecting…</span>",
        );
    }
    if let Viewer::Acting { name, csrf } = viewer {
        let _ = write!(
            h,
            "<form class=\"who\" method=\"post\" action=\"/logout\">\
             <span>acting as <b>{}</b></span>\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <button class=\"link\">sign out</button></form>",
            esc(name),
            esc(csrf)
        );
    }
    h.push_str("</header>\n");
    match live {
        Some(url) => {
            let _ = writeln!(h, "<main id=\"live\" data-live=\"{}\">", esc(url));
        }
        None => h.push_str("<main>\n"),
    }
    h.push_str(body);
    h.push_str(
        "</main>\n<footer>Live from the daemon's ledger. \
         <a href=\"/metrics\">metrics</a></footer>\n</body>\n</html>\n",
    );
    h
}

/// The sign-in form (only when a token is configured).
pub(super) fn login(problem: Option<&str>) -> String {
    let mut h = String::from(
        "<section class=\"card login\"><h1>Sign in</h1>\
         <p>This dashboard asks for the token in the environment variable that \
         <code>[dashboard] token_env</code> names.</p>",
    );
    if let Some(p) = problem {
        let _ = write!(h, "<p class=\"problem\" role=\"alert\">{}</p>", esc(p));
    }
    h.push_str(
        "<form method=\"post\" action=\"/login\" class=\"stack\">\
         <label>Token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required></label>\
         <label>Your name <small>(recorded with what you approve, reject or pause; \
         default: dashboard)</small> <input name=\"name\" autocomplete=\"username\"></label>\
         <button>Sign in</button></form></section>\n",
    );
    h
}

/// A page for a refusal or a missing thing: what went wrong, and a way back.
pub(super) fn problem(heading: &str, message: &str, back: &str) -> String {
    format!(
        "<section class=\"card problem-page\"><h1>{}</h1><p>{}</p>\
         <p><a href=\"{}\">Back</a></p></section>\n",
        esc(heading),
        esc(message),
        esc(back)
    )
}

// ---- the queue page ---------------------------------------------------------------

pub(super) fn overview(o: &Overview, viewer: &Viewer) -> String {
    let mut h = String::with_capacity(8192);
    stamp(&mut h, o.now);
    banner(&mut h, o.stop.as_ref(), o.paused.as_ref(), viewer);
    h.push_str("<section class=\"counts\" aria-label=\"Tasks by state\">");
    for (state, n) in &o.counts {
        let _ = write!(
            h,
            "<span class=\"count\">{} <b>{n}</b></span>",
            state_badge(*state)
        );
    }
    // Two columns on a wide screen; on a phone, one, in the order the parts are
    // ranked (the stylesheet orders them).
    h.push_str("</section>\n<div class=\"grid\"><div class=\"col\">\n");
    queue(&mut h, o);
    came_back(&mut h, o);
    h.push_str("</div><div class=\"col\">\n");
    verifying(&mut h, o);
    slots(&mut h, o);
    h.push_str("</div></div>\n");
    h
}

fn banner(h: &mut String, stop: Option<&Stop>, paused: Option<&Pause>, viewer: &Viewer) {
    if stop.is_none() && paused.is_none() {
        h.push_str(
            "<section class=\"banner running\"><span class=\"badge st-running\">running</span> \
             Claims are handed out and the queue integrates.",
        );
        if let Some(csrf) = viewer.csrf() {
            let _ = write!(
                h,
                "<form method=\"post\" action=\"/pause\" class=\"inline\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <input name=\"reason\" required maxlength=\"1024\" placeholder=\"why pause?\" aria-label=\"Why pause\">\
                 <select name=\"only\" aria-label=\"What to pause\"><option value=\"\">everything</option>\
                 <option value=\"queue\">the queue only</option><option value=\"claims\">hand-outs only</option></select>\
                 <button>Pause</button></form>",
                esc(csrf)
            );
        }
        h.push_str("</section>\n");
        return;
    }
    h.push_str("<section class=\"banner paused\">");
    if let Some(s) = stop {
        let what = match s.only {
            None => "Paused",
            Some(StopPart::Queue) => "Queue paused",
            Some(StopPart::Claims) => "Hand-outs paused",
        };
        let _ = write!(
            h,
            "<p><span class=\"badge st-paused\">paused</span> <b>{what}</b> by {} {}: {}</p>",
            esc(&s.by.to_string()),
            ago(s.since),
            esc(&s.reason)
        );
    }
    if let Some(p) = paused {
        let _ = write!(
            h,
            "<p><span class=\"badge st-paused\">paused</span> <b>Queue paused</b> {}: {}</p>",
            ago(p.since),
            esc(&p.reason)
        );
    }
    if let Some(csrf) = viewer.csrf() {
        let _ = write!(
            h,
            "<form method=\"post\" action=\"/resume\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button>Resume</button></form>",
            esc(csrf)
        );
    }
    h.push_str("</section>\n");
}

fn queue(h: &mut String, o: &Overview) {
    h.push_str("<section class=\"card queue\"><h2>Queue</h2>");
    if o.queue.is_empty() {
        h.push_str("<p class=\"empty\">Nothing is queued.</p></section>\n");
        return;
    }
    let mut lanes: Vec<usize> = o.queue.iter().filter_map(|e| e.lane).collect();
    lanes.sort_unstable();
    lanes.dedup();
    for lane in lanes {
        let _ = write!(h, "<h3>Lane {lane}</h3><ol class=\"entries\">");
        for e in o.queue.iter().filter(|e| e.lane == Some(lane)) {
            entry(h, e, o.now);
        }
        h.push_str("</ol>");
    }
    let rest: Vec<&QueueEntry> = o.queue.iter().filter(|e| e.lane.is_none()).collect();
    if !rest.is_empty() {
        h.push_str("<h3>Waiting for several lanes, or for a person</h3><ol class=\"entries\">");
        for e in rest {
            entry(h, e, o.now);
        }
        h.push_str("</ol>");
    }
    h.push_str("</section>\n");
}

fn entry(h: &mut String, e: &QueueEntry, now: Timestamp) {
    let place = match e.lane_position {
        Some(p) => format!("#{p}"),
        None => format!("#{}", e.position),
    };
    let since = Timestamp(now.0 - i64::try_from(e.elapsed_ms).unwrap_or(0));
    let _ = write!(
        h,
        "<li class=\"entry\"><span class=\"pos\" title=\"position {} in the queue\">{place}</span>\
         <span class=\"what\"><a href=\"/tasks/{id}\"><span class=\"id\">{id}</span> {}</a>\
         <span class=\"why\">waits for {}",
        e.position,
        esc(&e.title),
        esc(&e.waiting_for),
        id = e.id,
    );
    if let Some(on) = &e.built_on {
        let _ = write!(h, " · built on {}", esc(on));
    }
    for (command, n) in &e.flakes {
        let _ = write!(h, " · <code>{}</code> flaked ×{n}", esc(command));
    }
    let _ = write!(h, "</span></span>{}", stage_badge(e.stage));
    // At a checkpoint the queue keeps no time.
    if e.elapsed_ms > 0 {
        let _ = write!(
            h,
            " <span class=\"elapsed\" data-since=\"{since}\">{}</span>",
            duration(e.elapsed_ms)
        );
    }
    h.push_str("</li>");
}

fn verifying(h: &mut String, o: &Overview) {
    h.push_str("<section class=\"card verifying\"><h2>Verifying now</h2>");
    if o.verifying.is_empty() {
        h.push_str("<p class=\"empty\">No verify is running.</p></section>\n");
        return;
    }
    h.push_str("<ul class=\"runs\">");
    for v in &o.verifying {
        let elapsed = u64::try_from(o.now.0 - v.started.0).unwrap_or(0);
        let lane = v.lane.map(|l| format!(" · lane {l}")).unwrap_or_default();
        let _ = write!(
            h,
            "<li><a href=\"/tasks/{id}\"><span class=\"id\">{id}</span> {}</a>{lane}<br>\
             <span class=\"elapsed\" data-since=\"{}\">{}</span> elapsed",
            esc(&v.title),
            v.started,
            duration(elapsed),
            id = v.id,
        );
        match v.expected {
            Some(x) => {
                let _ = write!(
                    h,
                    ", about <b>{}</b> expected <small>(median of the last {} passing run{})</small>\
                     <progress max=\"{}\" value=\"{}\" data-since=\"{}\" aria-label=\"elapsed against expected\"></progress>",
                    duration(x.median_ms),
                    x.runs,
                    if x.runs == 1 { "" } else { "s" },
                    x.median_ms,
                    elapsed.min(x.median_ms),
                    v.started
                );
            }
            None => h.push_str(", no earlier run of these commands to expect a time from"),
        }
        if !v.commands.is_empty() {
            h.push_str("<br><small>");
            for (i, c) in v.commands.iter().enumerate() {
                if i > 0 {
                    h.push_str(", ");
                }
                let _ = write!(h, "<code>{}</code>", esc(c));
            }
            h.push_str("</small>");
        }
        h.push_str("</li>");
    }
    h.push_str("</ul></section>\n");
}

fn slots(h: &mut String, o: &Overview) {
    h.push_str("<section class=\"card slots\"><h2>Slots</h2>");
    if o.slots.is_empty() {
        h.push_str("<p class=\"empty\">No subsystems and no cap are configured.</p></section>\n");
        return;
    }
    for s in &o.slots {
        let name = match &s.subsystem {
            Some(n) => format!("<b>{}</b>", esc(n)),
            None => "<b>all subsystems</b> <small>([claims] max_parallel)</small>".to_owned(),
        };
        let used = s.holders.len();
        let cap = match s.cap {
            Some(c) => format!(
                "{used} of {c}<meter min=\"0\" max=\"{c}\" value=\"{used}\" aria-label=\"slots used\"></meter>"
            ),
            None => format!("{used} held, no cap"),
        };
        let full = s.cap.is_some_and(|c| used >= c as usize);
        let _ = write!(
            h,
            "<div class=\"slot{}\"><div class=\"slot-head\">{name} <span class=\"used\">{cap}</span>{}</div>",
            if full { " full" } else { "" },
            if full {
                " <span class=\"badge st-full\">full</span>"
            } else {
                ""
            }
        );
        if !s.holders.is_empty() {
            h.push_str("<ul class=\"holders\">");
            for t in &s.holders {
                holder(h, t);
            }
            h.push_str("</ul>");
        }
        h.push_str("</div>");
    }
    h.push_str("</section>\n");
}

fn holder(h: &mut String, t: &Holder) {
    let _ = write!(
        h,
        "<li><a href=\"/tasks/{id}\"><span class=\"id\">{id}</span> {}</a> {}",
        esc(&t.title),
        state_badge(t.state),
        id = t.id
    );
    if let Some(a) = &t.agent {
        let _ = write!(h, " <span class=\"agent\">{}</span>", esc(a));
    }
    h.push_str("<br><small>");
    if let Some(c) = t.claimed_at {
        let _ = write!(h, "claimed {}", ago(c));
    }
    match (t.renewed_at, t.leased) {
        // Renewed when the lease was given, not since.
        (Some(r), Some((given, back))) if r.0 <= given.0 + 1000 => {
            let _ = write!(
                h,
                " · no heartbeat since {}",
                if back { "it came back" } else { "the claim" }
            );
        }
        (Some(r), _) => {
            let _ = write!(h, " · last heartbeat {}", ago(r));
        }
        (None, _) => {}
    }
    if let Some(until) = t.lease_expires_at {
        let _ = write!(
            h,
            " · lease ends <span data-until=\"{until}\">{}</span>",
            time(until)
        );
    }
    h.push_str("</small></li>");
}

fn came_back(h: &mut String, o: &Overview) {
    h.push_str("<section class=\"card returned\"><h2>Came back</h2>");
    if o.came_back.is_empty() {
        h.push_str("<p class=\"empty\">No task is back with its executor.</p></section>\n");
        return;
    }
    h.push_str("<ul class=\"back\">");
    for b in &o.came_back {
        let _ = write!(
            h,
            "<li><a href=\"/tasks/{id}\"><span class=\"id\">{id}</span> {}</a> {} {}<br>{}",
            esc(&b.title),
            state_badge(b.state),
            ago(b.event.at),
            esc(&crate::story::line(&b.event)),
            id = b.id
        );
        if let Some(a) = &b.agent {
            let _ = write!(h, " <small>(with {})</small>", esc(a));
        }
        h.push_str("</li>");
    }
    h.push_str("</ul></section>\n");
}

// ---- a task's page ----------------------------------------------------------------

pub(super) fn task(p: &TaskPage, viewer: &Viewer) -> String {
    let d = &p.detail;
    let t = &d.task;
    let mut h = String::with_capacity(16384);
    stamp(&mut h, p.now);
    let _ = write!(
        h,
        "<p class=\"crumbs\"><a href=\"/\">← the queue</a></p>\
         <h1><span class=\"id\">{}</span> {} {}</h1>",
        t.id,
        esc(&t.title),
        state_badge(t.state)
    );
    h.push_str("<dl class=\"facts\">");
    let mut fact = |k: &str, v: String| {
        let _ = write!(h, "<dt>{k}</dt><dd>{v}</dd>");
    };
    if let Some(e) = &p.entry {
        let lane = match (e.lane, e.lane_position) {
            (Some(l), Some(n)) => format!(", lane {l} #{n}"),
            _ => String::new(),
        };
        fact(
            "in the queue",
            format!(
                "#{}{lane} {} waits for {}",
                e.position,
                stage_badge(e.stage),
                esc(&e.waiting_for)
            ),
        );
    }
    fact("priority", t.priority.to_string());
    fact("attempt", t.attempt.to_string());
    if let Some(a) = &t.agent {
        fact("executor", esc(a).to_string());
    }
    if let Some(until) = t.lease_expires_at.filter(|_| t.state.holds_lease()) {
        fact(
            "lease ends",
            format!("<span data-until=\"{until}\">{}</span>", time(until)),
        );
    }
    fact("branch", format!("<code>{}</code>", esc(&t.branch)));
    if let Some(w) = &t.worktree {
        fact("worktree", format!("<code>{}</code>", esc(w)));
    }
    let list = |items: Vec<String>| {
        if items.is_empty() {
            "—".to_owned()
        } else {
            items.join(", ")
        }
    };
    fact(
        "scope",
        list(
            t.scope
                .iter()
                .map(|s| format!("<code>{}</code>", esc(s)))
                .collect(),
        ),
    );
    fact(
        "subsystems",
        list(
            t.subsystems
                .iter()
                .map(|s| esc(s.as_str()).to_string())
                .collect(),
        ),
    );
    if let Some(pr) = &d.pull_request {
        let link = match safe_url(&pr.url) {
            Some(url) => format!(
                "<a href=\"{}\" rel=\"noopener noreferrer\">#{} on GitHub</a>",
                esc(url),
                pr.number
            ),
            None => format!("#{}", pr.number),
        };
        fact("pull request", link);
    }
    if !t.after.is_empty() {
        fact(
            "after",
            list(
                t.after
                    .iter()
                    .map(|a| format!("<a href=\"/tasks/{a}\">{a}</a>"))
                    .collect(),
            ),
        );
    }
    if !t.blocked_by.is_empty() && !t.state.is_final() {
        fact(
            "blocked by",
            list(
                t.blocked_by
                    .iter()
                    .map(|b| format!("<a href=\"/tasks/{id}\">{id}</a> ({})", b.state, id = b.id))
                    .collect(),
            ),
        );
    }
    if let Some(r) = &t.review {
        fact(
            "review",
            format!(
                "held by {}, until <span data-until=\"{}\">{}</span>",
                esc(&r.reviewer.to_string()),
                r.lease_expires_at,
                time(r.lease_expires_at)
            ),
        );
    }
    for (role, who) in d.roles.lines() {
        fact(role, esc(&who).to_string());
    }
    h.push_str("</dl>");
    actions(&mut h, p, viewer);

    if !d.checkpoints.is_empty() {
        h.push_str("<section class=\"card attention\"><h2>Waiting for a person</h2><ul>");
        for c in &d.checkpoints {
            let _ = write!(h, "<li>{}</li>", esc(c));
        }
        h.push_str("</ul></section>");
    }
    if !d.conflicts.is_empty() {
        h.push_str("<section class=\"card attention\"><h2>Conflict warnings</h2><ul>");
        for c in &d.conflicts {
            let with = if c.with == "base" {
                "the base".to_owned()
            } else {
                format!("<a href=\"/tasks/{w}\">{w}</a>", w = esc(&c.with))
            };
            let agent = c
                .agent
                .as_deref()
                .map(|a| format!(" ({})", esc(a)))
                .unwrap_or_default();
            let _ = write!(h, "<li>collides with {with}{agent} in ");
            paths(&mut h, &c.paths);
            h.push_str("</li>");
        }
        h.push_str("</ul></section>");
    }
    if !t.body.trim().is_empty() || !t.accept.is_empty() {
        h.push_str("<section class=\"card\"><h2>Request</h2>");
        if !t.body.trim().is_empty() {
            let _ = write!(h, "<p class=\"body\">{}</p>", esc(t.body.trim()));
        }
        if !t.accept.is_empty() {
            h.push_str("<h3>Done when</h3><ul>");
            for a in &t.accept {
                let _ = write!(h, "<li>{}</li>", esc(a));
            }
            h.push_str("</ul>");
        }
        h.push_str("</section>");
    }
    evidence(&mut h, p);
    logs(&mut h, p);
    h.push_str("<section class=\"card\"><h2>Timeline</h2><ol class=\"timeline\">");
    // Told in order (a line names whom work went back to), shown newest first.
    let mut story = crate::story::Story::new();
    let told: Vec<String> = d.timeline.iter().map(|e| story.line(e)).collect();
    for (e, line) in d.timeline.iter().zip(told).rev() {
        let _ = write!(
            h,
            "<li><time datetime=\"{at}\" title=\"{at}\">{}</time><span class=\"line\">{}</span>",
            time(e.at),
            esc(&line),
            at = e.at
        );
        if let Some(s) = e.state {
            let _ = write!(h, " {}", state_badge(s));
        }
        h.push_str("</li>");
    }
    h.push_str("</ol></section>\n");
    h
}

fn actions(h: &mut String, p: &TaskPage, viewer: &Viewer) {
    let Some(csrf) = viewer.csrf() else { return };
    let t = &p.detail.task;
    let approve = t.state == TaskState::AwaitingApproval;
    let reject = matches!(
        t.state,
        TaskState::AwaitingApproval | TaskState::Queued | TaskState::AwaitingReview
    );
    if !approve && !reject {
        return;
    }
    h.push_str("<section class=\"actions\">");
    if approve {
        let _ = write!(
            h,
            "<form method=\"post\" action=\"/tasks/{}/approve\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button class=\"go\">Approve</button></form>",
            t.id,
            esc(csrf)
        );
    }
    if reject {
        let _ = write!(
            h,
            "<form method=\"post\" action=\"/tasks/{}/reject\" class=\"inline\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
             <input name=\"reason\" required maxlength=\"4096\" placeholder=\"what to change\" aria-label=\"Why reject\">\
             <button class=\"stop\">Reject</button></form>",
            t.id,
            esc(csrf)
        );
    }
    h.push_str("</section>");
}

/// The evidence worth a look without reading the timeline: the last verify, the last
/// conflict, what was out of scope, what flaked.
fn evidence(h: &mut String, p: &TaskPage) {
    let timeline = &p.detail.timeline;
    let mut parts = String::new();
    let last_verify = timeline.iter().rev().find(|e| match &e.what {
        Evidence::VerifyPassed(_) | Evidence::VerifyFailed(_) => true,
        Evidence::CandidateFailed(c) => matches!(*c.failure, Evidence::VerifyFailed(_)),
        _ => false,
    });
    if let Some(e) = last_verify {
        let _ = write!(parts, "<h3>Last verify {}</h3>", ago(e.at));
        let what = match &e.what {
            Evidence::CandidateFailed(c) => c.failure.as_ref(),
            other => other,
        };
        match what {
            Evidence::VerifyPassed(v) => match &v.by {
                Verification::Commands { commands } => {
                    let _ = write!(parts, "<p>passed on <code>{}</code></p>", short(&v.onto));
                    finished_list(&mut parts, commands);
                }
                Verification::Checks { checks } => {
                    parts.push_str("<ul>");
                    for c in checks {
                        let _ = write!(
                            parts,
                            "<li><b>{}</b>: {}</li>",
                            esc(&c.name),
                            esc(&c.conclusion)
                        );
                    }
                    parts.push_str("</ul>");
                }
            },
            Evidence::VerifyFailed(v) => match &v.failure {
                VerifyFailure::Command {
                    failed,
                    passed,
                    retried,
                } => {
                    let _ = write!(parts, "<p>failed on <code>{}</code></p>", short(&v.onto));
                    finished_list(&mut parts, passed);
                    finished_list(&mut parts, retried);
                    finished_list(&mut parts, std::slice::from_ref(failed));
                    tail(&mut parts, "the end of its log", &failed.tail, true);
                }
                VerifyFailure::Check { check } => {
                    let _ = write!(
                        parts,
                        "<p><b>{}</b>: {} — {}</p>",
                        esc(&check.name),
                        esc(&check.conclusion),
                        esc(&check.summary)
                    );
                }
                VerifyFailure::TimedOut { reason, .. } => {
                    let _ = write!(parts, "<p>{}</p>", esc(reason));
                }
            },
            _ => {}
        }
    }
    if let Some((e, c)) = timeline.iter().rev().find_map(|e| match &e.what {
        Evidence::Conflict(c) => Some((e, c)),
        _ => None,
    }) {
        let _ = write!(parts, "<h3>Last conflict {}</h3>", ago(e.at));
        match c {
            Conflict::Paths {
                paths: ps, hint, ..
            } => {
                parts.push_str("<p>");
                paths(&mut parts, ps);
                let _ = write!(parts, "</p><p><small>{}</small></p>", esc(hint));
            }
            Conflict::Unreplayable { reason, .. } => {
                let _ = write!(parts, "<p>{}</p>", esc(reason));
            }
        }
    }
    if let Some(s) = timeline.iter().rev().find_map(|e| match &e.what {
        Evidence::Submitted(s) => Some(s),
        _ => None,
    }) && !s.out_of_scope.is_empty()
    {
        parts.push_str("<h3>Outside its scope</h3><ul>");
        for o in &s.out_of_scope {
            let owner = o.owner.as_ref().map_or("unowned", |s| s.as_str());
            let _ = write!(
                parts,
                "<li><code>{}</code> ({})</li>",
                esc(&o.path),
                esc(owner)
            );
        }
        parts.push_str("</ul>");
    }
    if !parts.is_empty() {
        h.push_str("<section class=\"card\"><h2>Evidence</h2>");
        h.push_str(&parts);
        h.push_str("</section>");
    }
}

fn finished_list(h: &mut String, runs: &[Finished]) {
    if runs.is_empty() {
        return;
    }
    h.push_str("<ul class=\"commands\">");
    for f in runs {
        let (class, label) = if f.succeeded() {
            ("st-passed", "passed".to_owned())
        } else {
            ("st-failed", outcome(f.outcome))
        };
        let _ = write!(
            h,
            "<li><span class=\"badge {class}\">{}</span> <code>{}</code> in {}</li>",
            esc(&label),
            esc(&f.command),
            duration(f.duration_ms)
        );
    }
    h.push_str("</ul>");
}

fn tail(h: &mut String, summary: &str, lines: &[String], open: bool) {
    if lines.is_empty() {
        return;
    }
    let _ = write!(
        h,
        "<details{}><summary>{}</summary><pre class=\"log\">",
        if open { " open" } else { "" },
        esc(summary)
    );
    for l in lines {
        let _ = writeln!(h, "{}", esc(l));
    }
    h.push_str("</pre></details>");
}

/// The tails of every verify log on record, newest first, and the one being written.
fn logs(h: &mut String, p: &TaskPage) {
    let mut parts = String::new();
    if let Some(live) = &p.live_log {
        let _ = write!(
            parts,
            "<h3>Running now: <code>{}</code></h3>",
            esc(&live.name)
        );
        if live.tail.is_empty() {
            parts.push_str("<p class=\"empty\">No output yet.</p>");
        } else {
            tail(&mut parts, "the end of the log so far", &live.tail, true);
        }
    }
    for e in p.detail.timeline.iter().rev() {
        let what = match &e.what {
            Evidence::CandidateFailed(c) => c.failure.as_ref(),
            other => other,
        };
        let runs: Vec<&Finished> = match what {
            Evidence::VerifyPassed(v) => match &v.by {
                Verification::Commands { commands } => commands.iter().collect(),
                Verification::Checks { .. } => Vec::new(),
            },
            Evidence::VerifyFailed(v) => match &v.failure {
                VerifyFailure::Command {
                    failed,
                    passed,
                    retried,
                } => passed.iter().chain(retried).chain([failed]).collect(),
                _ => Vec::new(),
            },
            Evidence::Flaked(f) => f.failed.iter().collect(),
            Evidence::SetupFailed(f) => vec![f],
            _ => Vec::new(),
        };
        for f in runs {
            let label = format!(
                "{} {}: {} ({}, {})",
                time(e.at),
                e.kind().as_str(),
                f.command,
                if f.succeeded() {
                    "passed".to_owned()
                } else {
                    outcome(f.outcome)
                },
                duration(f.duration_ms)
            );
            tail(&mut parts, &label, &f.tail, false);
        }
    }
    if !parts.is_empty() {
        h.push_str("<section class=\"card\"><h2>Verify logs</h2>");
        h.push_str(&parts);
        h.push_str("</section>");
    }
}

fn paths(h: &mut String, paths: &[String]) {
    for (i, p) in paths.iter().enumerate() {
        if i > 0 {
            h.push_str(", ");
        }
        let _ = write!(h, "<code>{}</code>", esc(p));
    }
}

// ---- small parts -----------------------------------------------------------------

/// The live part's first line: the server's time, which the page's script measures
/// its clock against. Alone on its line, so that an update can be told apart from the
/// last one by the rest.
fn stamp(h: &mut String, now: Timestamp) {
    let _ = writeln!(h, "<div class=\"stamp\" data-now=\"{now}\"></div>");
}

/// The live part without its time stamp: what tells whether anything changed.
pub(super) fn without_stamp(live: &str) -> &str {
    live.split_once('\n').map_or(live, |(_, rest)| rest)
}

/// A state's badge: its colour and its name, so it reads without the colour too.
pub(super) fn state_badge(state: TaskState) -> String {
    format!(
        "<span class=\"badge st-{}\">{}</span>",
        state.as_str(),
        state.as_str().replace('_', " ")
    )
}

fn stage_badge(stage: Stage) -> String {
    let name = match stage {
        Stage::AwaitingApproval => "awaiting_approval",
        Stage::AwaitingReview => "awaiting_review",
        Stage::Waiting => "waiting",
        Stage::Building => "building",
        Stage::Verifying => "verifying",
        Stage::Passed => "passed",
        Stage::Failed => "failed",
        Stage::Landing => "landing",
    };
    format!(
        "<span class=\"badge st-{name}\">{}</span>",
        name.replace('_', " ")
    )
}

/// A moment, shown relative to now by the page's script ("3m ago"); without it, as UTC.
fn ago(at: Timestamp) -> String {
    format!(
        "<time datetime=\"{at}\" data-ago title=\"{at}\">{}</time>",
        time(at)
    )
}

/// `14:02:03` (UTC): a timeline's column.
fn time(at: Timestamp) -> String {
    let s = at.to_string();
    match s.get(11..19) {
        Some(hms) => format!("{hms}Z"),
        None => s,
    }
}

/// `11 ms`, `1.2 s`, `1m 05s`, `2h 03m`.
pub(super) fn duration(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms} ms"),
        1000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m {:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h {:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

fn outcome(o: Outcome) -> String {
    match o {
        Outcome::Exited { code } => format!("exit {code}"),
        Outcome::Signaled { signal } => format!("signal {signal}"),
        Outcome::TimedOut => "timed out".to_owned(),
        Outcome::Cancelled => "cancelled".to_owned(),
    }
}

use crate::model::short_sha as short;

/// A link only to the web, never `javascript:` or a local file.
fn safe_url(url: &str) -> Option<&str> {
    (url.starts_with("https://") || url.starts_with("http://")).then_some(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{PullRequestLink, TaskDetail};
    use crate::model::evidence::{Merged, Rejected, VerifyFailed};
    use crate::model::{Actor, Roles, SubsystemName, Task};

    const HOSTILE: &str = "<script>alert('x')</script> & \"quotes\"";

    fn a_task(state: TaskState, title: &str) -> Task {
        Task {
            id: TaskId(3),
            title: title.into(),
            body: format!("why: {HOSTILE}"),
            accept: vec![HOSTILE.into()],
            scope: vec!["api".into()],
            subsystems: vec![SubsystemName::new("api").unwrap()],
            priority: 0,
            state,
            branch: "switchyard/t3-x".into(),
            worktree: None,
            agent: Some("cy".into()),
            lease_expires_at: None,
            attempt: 1,
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
            executor: None,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    fn finished(command: &str, code: i32, ms: u64, tail: &[&str]) -> Finished {
        Finished {
            command: command.into(),
            outcome: Outcome::Exited { code },
            duration_ms: ms,
            log: "/x/verify-1.log".into(),
            tail: tail.iter().map(|l| l.to_string()).collect(),
        }
    }

    fn event(at: i64, state: Option<TaskState>, by: Actor, what: Evidence) -> Event {
        Event {
            at: Timestamp(at),
            task: TaskId(3),
            by,
            state,
            what,
        }
    }

    fn verify_failed() -> Event {
        event(
            2_000,
            Some(TaskState::Returned),
            Actor::Daemon,
            Evidence::VerifyFailed(VerifyFailed {
                head: "abcdef0123456789".into(),
                onto: "0123456789abcdef".into(),
                attempt: Some(1),
                failure: VerifyFailure::Command {
                    failed: finished("./check.sh", 1, 11, &["found BROKEN", HOSTILE]),
                    passed: vec![],
                    retried: vec![],
                },
            }),
        )
    }

    fn a_page(state: TaskState, url: &str) -> TaskPage {
        TaskPage {
            now: Timestamp(5_000),
            detail: TaskDetail {
                task: a_task(state, HOSTILE),
                pull_request: Some(PullRequestLink {
                    number: 7,
                    url: url.into(),
                }),
                checkpoints: vec![format!("touches ci: {HOSTILE}")],
                roles: Roles::default(),
                conflicts: vec![],
                timeline: vec![
                    verify_failed(),
                    event(
                        3_000,
                        Some(TaskState::Returned),
                        Actor::Person("lead".into()),
                        Evidence::Rejected(Rejected {
                            reason: HOSTILE.into(),
                        }),
                    ),
                ],
            },
            entry: None,
            live_log: Some(LiveLog {
                name: "verify-1-1.log".into(),
                tail: vec![HOSTILE.into()],
            }),
        }
    }

    /// The page's text, with every tag the renderer wrote taken out: what is left of a
    /// hostile string must be its escaped form only.
    fn assert_no_raw(html: &str) {
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains("'x'"), "a quote got through: {html}");
        assert!(
            html.contains(
                "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quotes&quot;"
            )
        );
    }

    #[test]
    fn what_people_wrote_is_escaped_everywhere() {
        let viewer = Viewer::Acting {
            name: HOSTILE.into(),
            csrf: "c0ffee".into(),
        };
        let html = task(
            &a_page(TaskState::AwaitingApproval, "https://github.com/o/r/pull/7"),
            &viewer,
        );
        assert_no_raw(&html);
        let o = Overview {
            now: Timestamp(5_000),
            counts: vec![(TaskState::Queued, 1)],
            stop: Some(Stop {
                since: Timestamp(1_000),
                by: Actor::Person(HOSTILE.into()),
                reason: HOSTILE.into(),
                only: None,
            }),
            paused: None,
            queue: vec![QueueEntry {
                id: TaskId(3),
                title: HOSTILE.into(),
                state: TaskState::Queued,
                position: 1,
                waiting_for: HOSTILE.into(),
                built_on: None,
                lane: Some(1),
                lane_position: Some(1),
                waits_for_lanes: vec![],
                stage: Stage::Waiting,
                elapsed_ms: 1_500,
                flakes: [(HOSTILE.to_owned(), 2)].into(),
            }],
            verifying: vec![VerifyNow {
                id: TaskId(3),
                title: HOSTILE.into(),
                lane: Some(1),
                started: Timestamp(1_000),
                commands: vec![HOSTILE.into()],
                expected: Some(Expected {
                    median_ms: 6_000,
                    runs: 3,
                }),
            }],
            slots: vec![Slots {
                subsystem: Some(HOSTILE.into()),
                cap: Some(1),
                holders: vec![Holder {
                    id: TaskId(3),
                    title: HOSTILE.into(),
                    state: TaskState::Claimed,
                    agent: Some(HOSTILE.into()),
                    claimed_at: Some(Timestamp(1_000)),
                    leased: Some((Timestamp(1_000), false)),
                    renewed_at: Some(Timestamp(3_000)),
                    lease_expires_at: Some(Timestamp(9_000)),
                }],
            }],
            came_back: vec![CameBack {
                id: TaskId(3),
                title: HOSTILE.into(),
                state: TaskState::Returned,
                agent: Some(HOSTILE.into()),
                event: verify_failed(),
            }],
        };
        let html = overview(&o, &viewer);
        assert_no_raw(&html);
        assert!(html.contains("4.0 s</span> elapsed"), "{html}");
        assert!(html.contains("about <b>6.0 s</b> expected"));
        assert!(html.contains("<progress max=\"6000\" value=\"4000\""));
        assert!(html.contains("1 of 1"));
        assert!(html.contains("last heartbeat"));
        let whole = super::page(HOSTILE, HOSTILE, Some("/live"), &viewer, &html);
        assert!(!whole.contains("<script>alert"));
        assert_eq!(
            whole.matches("<script").count(),
            1,
            "only the page's own script"
        );
    }

    #[test]
    fn a_task_page_shows_evidence_logs_and_the_story() {
        let html = task(
            &a_page(TaskState::AwaitingApproval, "https://github.com/o/r/pull/7"),
            &Viewer::ReadOnly,
        );
        for want in [
            "Waiting for a person",
            "verify failed on attempt 1: `./check.sh` exited 1 after 11 ms; the log ends:",
            "found BROKEN",
            "Running now: <code>verify-1-1.log</code>",
            "<a href=\"https://github.com/o/r/pull/7\" rel=\"noopener noreferrer\">#7 on GitHub</a>",
            "<span class=\"badge st-awaiting_approval\">awaiting approval</span>",
        ] {
            assert!(html.contains(want), "no {want:?} in {html}");
        }
        // Read-only: no forms at all.
        assert!(!html.contains("<form"), "{html}");
        let acting = Viewer::Acting {
            name: "lead".into(),
            csrf: "c0ffee".into(),
        };
        let html = task(
            &a_page(TaskState::AwaitingApproval, "javascript:alert(1)"),
            &acting,
        );
        assert!(html.contains("action=\"/tasks/t3/approve\""));
        assert!(html.contains("action=\"/tasks/t3/reject\""));
        assert!(html.contains("name=\"csrf\" value=\"c0ffee\""));
        assert!(!html.contains("javascript:"), "only web links: {html}");
        assert!(html.contains("<dd>#7</dd>"));
        // Nothing to decide on a merged task.
        let html = task(&a_page(TaskState::Merged, "https://x"), &acting);
        assert!(!html.contains("/approve") && !html.contains("/reject"));
    }

    #[test]
    fn every_state_and_stage_carries_its_name() {
        for s in TaskState::ALL {
            let badge = state_badge(s);
            assert!(badge.contains(&format!("st-{}", s.as_str())));
            assert!(badge.contains(&format!(">{}<", s.as_str().replace('_', " "))));
        }
        for stage in [
            Stage::Waiting,
            Stage::Verifying,
            Stage::Failed,
            Stage::AwaitingApproval,
        ] {
            let badge = stage_badge(stage);
            let label = badge.split('>').nth(1).unwrap().trim_end_matches("</span");
            assert!(!label.is_empty() && label.chars().all(|c| c.is_ascii_lowercase() || c == ' '));
        }
    }

    #[test]
    fn durations_and_lines_read_well() {
        assert_eq!(duration(11), "11 ms");
        assert_eq!(duration(1_234), "1.2 s");
        assert_eq!(duration(65_000), "1m 05s");
        assert_eq!(duration(7_380_000), "2h 03m");
        let merged = event(
            0,
            Some(TaskState::Merged),
            Actor::Daemon,
            Evidence::Merged(Merged {
                base: "main".into(),
                commit: "0123456789abcdef".into(),
            }),
        );
        assert!(crate::story::line(&merged).contains("0123456789"));
        let rejected = event(
            0,
            Some(TaskState::Returned),
            Actor::Person("lead".into()),
            Evidence::Rejected(Rejected {
                reason: "too big".into(),
            }),
        );
        assert!(crate::story::line(&rejected).contains("too big"));
        assert_eq!(time(Timestamp(1_700_000_000_000)), "22:13:20Z");
    }

    #[test]
    fn the_sign_in_form_asks_for_the_token_and_never_shows_one() {
        let html = login(Some("That is not the token."));
        assert!(html.contains("type=\"password\" name=\"token\""));
        assert!(html.contains("role=\"alert\">That is not the token.</p>"));
        assert!(!html.contains("value="));
    }
}
