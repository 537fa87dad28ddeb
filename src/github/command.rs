//! Comment commands: `/switchyard approve`, `reject <reason>`, `retry`, `cancel`,
//! `priority N`. A command is a line of its own outside code blocks and quotes, so
//! quoting someone's command or showing one in a fence does nothing.

/// A command a comment asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Approve,
    Reject { reason: String },
    Retry,
    Cancel,
    Priority(i64),
}

/// A `/switchyard` line that is not a valid command: what to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadCommand(pub String);

const PREFIX: &str = "/switchyard";

pub const USAGE: &str = "`/switchyard approve`, `/switchyard reject <reason>`, `/switchyard retry`, `/switchyard cancel`, `/switchyard priority <N>`";

/// The commands in a comment body, in order.
pub fn parse(body: &str) -> Vec<Result<Command, BadCommand>> {
    let mut out = Vec::new();
    let mut fence: Option<(char, usize)> = None;
    for line in body.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        // Fenced code blocks: ``` or ~~~ (three or more), closed by a fence at least as
        // long of the same character.
        let fence_char = trimmed.chars().next().filter(|c| *c == '`' || *c == '~');
        if let Some(c) = fence_char {
            let run = trimmed.chars().take_while(|x| *x == c).count();
            if run >= 3 && indent < 4 {
                match fence {
                    None => fence = Some((c, run)),
                    Some((open, len))
                        if open == c && run >= len && trimmed[run..].trim().is_empty() =>
                    {
                        fence = None
                    }
                    Some(_) => {}
                }
                continue;
            }
        }
        if fence.is_some() || indent >= 4 || trimmed.starts_with('>') {
            continue; // Code or a quote.
        }
        let Some(rest) = trimmed.strip_prefix(PREFIX) else {
            continue;
        };
        if !(rest.is_empty() || rest.starts_with(char::is_whitespace)) {
            continue; // `/switchyardish`
        }
        out.push(command(rest.trim()));
    }
    out
}

fn command(text: &str) -> Result<Command, BadCommand> {
    let (verb, args) = match text.split_once(char::is_whitespace) {
        Some((v, a)) => (v, a.trim()),
        None => (text, ""),
    };
    let no_args = |c: Command| {
        if args.is_empty() {
            Ok(c)
        } else {
            Err(BadCommand(format!("`{verb}` takes no arguments")))
        }
    };
    match verb.to_ascii_lowercase().as_str() {
        "approve" => no_args(Command::Approve),
        "retry" => no_args(Command::Retry),
        "cancel" => no_args(Command::Cancel),
        "reject" if args.is_empty() => Err(BadCommand(
            "`reject` needs a reason for the executor: `/switchyard reject <reason>`".into(),
        )),
        "reject" => Ok(Command::Reject {
            reason: args.to_owned(),
        }),
        "priority" => match args.parse::<i64>() {
            Ok(n) if crate::model::PRIORITY.contains(&n) => Ok(Command::Priority(n)),
            _ => Err(BadCommand(format!(
                "`priority` needs a whole number from -1000 to 1000, like `/switchyard priority 5`; got {:?}",
                args
            ))),
        },
        "" => Err(BadCommand(format!("which command? Known: {USAGE}"))),
        other => Err(BadCommand(format!(
            "unknown command `{}`; known: {USAGE}",
            other.chars().take(40).collect::<String>()
        ))),
    }
}

impl Command {
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Approve => "approve",
            Command::Reject { .. } => "reject",
            Command::Retry => "retry",
            Command::Cancel => "cancel",
            Command::Priority(_) => "priority",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_on_their_own_lines_are_found() {
        let body = "Looks good.\n/switchyard approve\n  /switchyard priority -3\n/switchyard reject  needs a test \n";
        assert_eq!(
            parse(body),
            vec![
                Ok(Command::Approve),
                Ok(Command::Priority(-3)),
                Ok(Command::Reject {
                    reason: "needs a test".into()
                }),
            ]
        );
        assert_eq!(
            parse("/switchyard retry\r\n/switchyard CANCEL"),
            vec![Ok(Command::Retry), Ok(Command::Cancel)]
        );
    }

    #[test]
    fn code_blocks_quotes_and_inline_mentions_are_ignored() {
        let body = "```\n/switchyard approve\n```\n~~~~md\n/switchyard cancel\n~~~\n/switchyard cancel\n~~~~\n> /switchyard approve\n    /switchyard approve\nrun `/switchyard approve` to approve\n/switchyardx approve\n";
        assert_eq!(parse(body), vec![]);
    }

    #[test]
    fn bad_arguments_are_explained() {
        let bad = |t: &str| match &parse(t)[..] {
            [Err(BadCommand(m))] => m.clone(),
            other => panic!("{t:?} gave {other:?}"),
        };
        assert!(bad("/switchyard reject").contains("needs a reason"));
        assert!(bad("/switchyard priority high").contains("whole number"));
        assert!(bad("/switchyard priority 99999").contains("whole number"));
        assert!(bad("/switchyard approve now").contains("takes no arguments"));
        assert!(bad("/switchyard merge").contains("unknown command `merge`"));
        assert!(bad("/switchyard").contains("which command"));
    }
}
