//! `adapt chat`: a conversation in the terminal. Each turn reuses the KV cache of the turns
//! before it, so only the new message is processed; a stats line after each reply shows it.
//! Slash commands save, reopen, fork and inspect conversations.

use std::io::{BufRead, IsTerminal, Write};

use adapt_api::{
    Adapt, ApiError, ChatId, ChatOptions, ErrorCode, SavedChat, TopicChoice, TopicSettings,
};
use anyhow::Result;
use clap::Args;

use crate::args::{CacheBudgetArgs, ModelArg, SamplingArgs};
use crate::output;

#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelArg,
    /// An adapter to chat with: a run id (`adapt runs list`) or an adapter folder (ours or
    /// mlx-lm's).
    /// `--adapter-path DIR` (mlx-lm's name) is the same.
    #[arg(long, visible_alias = "adapter-path")]
    adapter: Option<String>,
    /// A system message that opens the conversation.
    #[arg(long)]
    system: Option<String>,
    /// Keep the KV cache in 8 or 4 bits (less memory and smaller files, slightly different
    /// answers).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["4", "8"]))]
    kv_bits: Option<String>,
    #[command(flatten)]
    budgets: CacheBudgetArgs,
    /// Keep one KV cache per topic: each message goes to the topic it fits by meaning (or
    /// `@N message` to topic N, `@new message` to a new one) and is answered from that
    /// topic's turns alone; `/topics` lists them.
    #[arg(long)]
    topics: bool,
    /// With --topics: the least similarity (cosine, -1 to 1) for a message to join a topic;
    /// below it for every topic, it opens a new one.
    #[arg(long, default_value_t = adapt_api::TopicSettings::default().threshold, requires = "topics")]
    topic_threshold: f32,
    /// With --topics: the block whose hidden states route messages (1 = the first; default:
    /// the last).
    #[arg(long, requires = "topics")]
    topic_layer: Option<usize>,
    /// Do not print the stats line after each reply.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
}

const HELP: &str = "Type a message and press Enter; Ctrl-C stops a reply. Commands:
  /save [NAME]   save the conversation with its cache (kept in step from then on)
  /open NAME     reopen a saved conversation       /list      saved conversations
  /fork N        continue from turn N in a new conversation (its cache reused)
  /retry         a new reply to the last message   /system TEXT  change the system message
  /adapter PATH  chat with an adapter (run id or folder; 'none' for the base model)
  /stats         cache and context figures         /reset     start over
  /topics [on|off]  the topics (one cache each); @N MESSAGE or @new MESSAGE picks one
  /move TURN N|new  move turn TURN (its message and reply) to topic N or a new one
  /exit          quit (Ctrl-D too); a saved conversation's cache is written on the way out";

/// The conversation in progress.
struct Session<'a> {
    adapt: Adapt,
    args: &'a ChatArgs,
    chat: ChatId,
    options: ChatOptions,
}

pub fn run(args: &ChatArgs) -> Result<()> {
    let adapt = output::start_with_adapter(&args.model, args.adapter.as_deref())?;
    args.budgets.apply(&adapt)?;
    let options = ChatOptions {
        kv_bits: args.kv_bits.as_deref().and_then(|b| b.parse().ok()),
        ..ChatOptions::default()
    };
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!("{HELP}");
    }
    let ctrl_c = output::CtrlC::install();
    let params = args.sampling.params();
    let chat = adapt.new_chat_with(opening(args.system.as_deref()), options.clone())?;
    if args.topics {
        adapt.set_topics(chat, Some(topic_settings(args)))?;
    }
    let mut s = Session {
        adapt,
        args,
        chat,
        options,
    };
    let mut out = output::Stream::default();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            eprint!(">>> ");
            let _ = std::io::stderr().flush();
        }
        let Some(line) = lines.next() else { break };
        let line = line?;
        let message = line.trim();
        if message.is_empty() {
            continue;
        }
        if matches!(message, "/exit" | "/quit") {
            break;
        }
        let retry = message == "/retry";
        if message.starts_with('/') && !retry {
            if let Err(e) = s.command(message) {
                eprintln!("error [{}]: {}", e.code, e.message);
            }
            continue;
        }
        ctrl_c.arm();
        let result = if retry {
            s.adapt
                .regenerate(s.chat, &params, |e| out.event(e, &ctrl_c))
        } else {
            let (choice, message) = topic_choice(message);
            s.adapt
                .chat_in(s.chat, message, choice, &params, |e| out.event(e, &ctrl_c))
        };
        ctrl_c.disarm();
        out.finish();
        match result {
            Ok(generation) if !args.quiet => output::print_stats(&generation),
            Ok(_) => {}
            // A failed turn leaves the conversation as it was; say why and go on.
            Err(e) => eprintln!("error [{}]: {}", e.code, e.message),
        }
    }
    if let Some(saved) = s.adapt.close_chat(s.chat)? {
        report("saved", &saved);
    }
    Ok(())
}

fn topic_settings(args: &ChatArgs) -> TopicSettings {
    TopicSettings {
        layer: args.topic_layer,
        threshold: args.topic_threshold,
    }
}

/// `@N message` (topic N), `@new message` (a new topic) or a message left to routing.
fn topic_choice(message: &str) -> (TopicChoice, &str) {
    let Some(rest) = message.strip_prefix('@') else {
        return (TopicChoice::Auto, message);
    };
    let (pick, text) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let choice = match pick {
        "new" => TopicChoice::New,
        n => match n.parse() {
            Ok(id) => TopicChoice::Topic(id),
            Err(_) => return (TopicChoice::Auto, message),
        },
    };
    (choice, text.trim())
}

fn opening(system: Option<&str>) -> Vec<adapt_api::ChatMessage> {
    system
        .map(|s| vec![adapt_api::ChatMessage::new("system", s)])
        .unwrap_or_default()
}

fn report(what: &str, s: &SavedChat) {
    let name = s
        .path
        .file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    eprintln!(
        "({what} '{name}': {} messages, {} cached tokens, {} on disk)",
        s.messages,
        s.cached_tokens,
        output::human_bytes(s.bytes)
    );
    if let Some(note) = &s.note {
        eprintln!("(note: {note})");
    }
}

impl Session<'_> {
    fn command(&mut self, line: &str) -> Result<(), ApiError> {
        let (command, arg) = line.split_once(' ').unwrap_or((line, ""));
        let arg = arg.trim();
        let adapt = &self.adapt;
        match command {
            "/reset" => {
                adapt.close_chat(self.chat)?;
                self.chat = adapt
                    .new_chat_with(opening(self.args.system.as_deref()), self.options.clone())?;
                if self.args.topics {
                    adapt.set_topics(self.chat, Some(topic_settings(self.args)))?;
                }
                eprintln!("(new conversation)");
            }
            "/save" => {
                let name = match (arg, adapt.chat_state(self.chat)?.name) {
                    ("", Some(name)) => name,
                    ("", None) => return Err(usage("/save NAME")),
                    (name, _) => name.to_string(),
                };
                report("saved", &adapt.save_chat(self.chat, &name)?);
            }
            "/open" if !arg.is_empty() => {
                let (opened, saved) = adapt.open_chat(arg)?;
                if let Some(previous) = adapt.close_chat(self.chat)? {
                    report("saved", &previous);
                }
                self.chat = opened;
                report("opened", &saved);
            }
            "/list" => {
                let chats = adapt.list_chats()?;
                if chats.is_empty() {
                    eprintln!("(no saved conversations: /save NAME keeps one)");
                }
                for c in chats {
                    let cache = match c.cache {
                        Some((tokens, bytes)) => {
                            format!("{tokens} cached tokens, {}", output::human_bytes(bytes))
                        }
                        None => "no cache (the history is processed again)".into(),
                    };
                    eprintln!("  {:<20} {:>3} messages · {cache}", c.name, c.messages);
                }
            }
            "/fork" => {
                let turns = arg.parse().map_err(|_| usage("/fork N (a turn number)"))?;
                let fork = adapt.fork_chat(self.chat, turns)?;
                if let Some(previous) = adapt.close_chat(self.chat)? {
                    report("saved", &previous);
                }
                self.chat = fork;
                let state = adapt.chat_state(fork)?;
                eprintln!(
                    "(forked at turn {turns}: {} messages, {} cached tokens reused; /save NAME \
                     keeps it)",
                    state.messages.len(),
                    state.cached_tokens
                );
            }
            "/system" => {
                adapt.set_system(self.chat, (!arg.is_empty()).then_some(arg))?;
                eprintln!(
                    "(system message {})",
                    if arg.is_empty() { "removed" } else { "set" }
                );
            }
            "/adapter" if !arg.is_empty() => self.switch_adapter(arg)?,
            "/stats" => {
                let s = adapt.chat_state(self.chat)?;
                let disk = s
                    .disk_bytes
                    .map(output::human_bytes)
                    .unwrap_or_else(|| "not saved".into());
                let kv = s
                    .kv_bits
                    .map(|b| format!("{b}-bit"))
                    .unwrap_or_else(|| "full precision".into());
                eprintln!(
                    "(conversation {}: {} messages · cache {} tokens, {} in memory{} ({kv}), \
                     {disk} on disk · {} messages left out of the context · all caches {} in \
                     memory, shared openings: {})",
                    s.name.as_deref().unwrap_or("unsaved"),
                    s.messages.len(),
                    s.cached_tokens,
                    output::human_bytes(s.cache_bytes),
                    if s.evicted { " (evicted)" } else { "" },
                    s.left_out_messages,
                    output::human_bytes(s.all_caches_bytes),
                    s.prefixes
                );
            }
            "/topics" => self.topics(arg)?,
            "/move" => self.move_turn(arg)?,
            "/help" => eprintln!("{HELP}"),
            _ => return Err(usage("a message, or one of the commands /help lists")),
        }
        Ok(())
    }

    /// `/topics [on|off]`: turns topics on or off, and lists them.
    fn topics(&mut self, arg: &str) -> Result<(), ApiError> {
        let adapt = &self.adapt;
        let state = match arg {
            "on" => adapt.set_topics(self.chat, Some(topic_settings(self.args)))?,
            "off" => adapt.set_topics(self.chat, None)?,
            "" => adapt.chat_state(self.chat)?,
            _ => return Err(usage("/topics [on|off]")),
        };
        print_topics(&state);
        Ok(())
    }

    /// `/move TURN N|new`: moves a turn (its message and reply) to another topic.
    fn move_turn(&mut self, arg: &str) -> Result<(), ApiError> {
        let (turn, to) = arg.split_once(' ').unwrap_or((arg, ""));
        let turn: usize = turn
            .parse()
            .ok()
            .filter(|&t| t > 0)
            .ok_or_else(|| usage("/move TURN N|new"))?;
        let to = match to.trim() {
            "new" => TopicChoice::New,
            n => TopicChoice::Topic(n.parse().map_err(|_| usage("/move TURN N|new"))?),
        };
        let state = self.adapt.chat_state(self.chat)?;
        let index = state
            .messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m.role == "user")
            .nth(turn - 1)
            .map(|(i, _)| i)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::CliUsage,
                    format!("there is no turn {turn} ({} turns)", state.turns),
                )
            })?;
        print_topics(&self.adapt.move_message(self.chat, index, to)?);
        Ok(())
    }

    /// Reloads the model with another adapter (or none) and carries the conversation over;
    /// its cache belongs to the old adapter, so the next turn processes the history again.
    fn switch_adapter(&mut self, arg: &str) -> Result<(), ApiError> {
        let adapter = (arg != "none").then_some(arg);
        let messages = self.adapt.chat_state(self.chat)?.messages;
        if let Some(previous) = self.adapt.close_chat(self.chat)? {
            report("saved", &previous);
        }
        let dir = adapter.map(|a| self.adapt.resolve_adapter(a)).transpose()?;
        let path = self.args.model.path(&self.adapt);
        let info = self.adapt.load_model_with_adapter(&path, dir.as_deref())?;
        self.chat = self.adapt.new_chat_with(messages, self.options.clone())?;
        eprintln!(
            "(now chatting with {}{}; the history will be processed again)",
            info.name,
            dir.map(|d| format!(" + adapter {}", d.display()))
                .unwrap_or_default()
        );
        Ok(())
    }
}

/// The topics and which turns each holds, on stderr.
fn print_topics(state: &adapt_api::ChatState) {
    let Some(view) = &state.topics else {
        eprintln!("(topics are off: /topics on keeps one cache per topic)");
        return;
    };
    if view.topics.is_empty() {
        eprintln!("(no topics yet: the first message opens one)");
    }
    for t in &view.topics {
        let turns: Vec<String> = state
            .messages
            .iter()
            .zip(&view.message_topics)
            .filter(|(m, _)| m.role == "user")
            .enumerate()
            .filter(|(_, (_, of))| **of == Some(t.id))
            .map(|(i, _)| (i + 1).to_string())
            .collect();
        eprintln!(
            "  topic {} \"{}\": {} turn{} ({}) · cache {} tokens, {}",
            t.id,
            t.name,
            t.turns,
            if t.turns == 1 { "" } else { "s" },
            turns.join(", "),
            t.cache_tokens,
            output::human_bytes(t.cache_bytes)
        );
    }
}

fn usage(what: &str) -> ApiError {
    if what.starts_with('a') {
        ApiError::new(ErrorCode::CliUsage, format!("expected {what}\n{HELP}"))
    } else {
        ApiError::new(ErrorCode::CliUsage, format!("usage: {what}"))
    }
}
