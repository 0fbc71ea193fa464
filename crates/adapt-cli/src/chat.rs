//! `adapt chat`: a conversation in the terminal. Each turn reuses the KV cache of the turns
//! before it, so only the new message is processed; a stats line after each reply shows it.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;
use clap::Args;

use crate::output;
use crate::{ModelArg, SamplingArgs};

#[derive(Args)]
pub struct ChatArgs {
    #[command(flatten)]
    model: ModelArg,
    /// An adapter to chat with: a run id (`adapt runs list`) or an adapter folder (ours or
    /// mlx-lm's).
    #[arg(long)]
    adapter: Option<String>,
    /// A system message that opens the conversation.
    #[arg(long)]
    system: Option<String>,
    /// Do not print the stats line after each reply.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
}

pub fn run(args: &ChatArgs) -> Result<()> {
    let adapt = output::start_with_adapter(&args.model, args.adapter.as_deref())?;
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!("Type a message and press Enter. /reset starts over, /save NAME and /open NAME keep a conversation with its cache, /exit (or Ctrl-D) quits; Ctrl-C stops a reply.");
    }
    let ctrl_c = output::CtrlC::install();
    let params = args.sampling.params();
    let mut chat = adapt.new_chat(args.system.as_deref())?;
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
        match message {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                adapt.close_chat(chat)?;
                chat = adapt.new_chat(args.system.as_deref())?;
                eprintln!("(new conversation)");
                continue;
            }
            _ => {}
        }
        if let Some((command, name)) = message
            .split_once(' ')
            .filter(|(c, _)| matches!(*c, "/save" | "/open"))
        {
            let name = name.trim();
            let result = if command == "/save" {
                adapt.save_chat(chat, name).map(|s| ("saved", s))
            } else {
                adapt.open_chat(name).map(|(opened, s)| {
                    let _ = adapt.close_chat(chat);
                    chat = opened;
                    ("opened", s)
                })
            };
            match result {
                Ok((what, s)) => eprintln!(
                    "({what} '{name}': {} messages, {} cached tokens, {} on disk)",
                    s.messages,
                    s.cached_tokens,
                    output::human_bytes(s.bytes)
                ),
                Err(e) => eprintln!("error [{}]: {}", e.code, e.message),
            }
            continue;
        }
        ctrl_c.arm();
        let result = adapt.chat(chat, message, &params, |e| out.event(e, &ctrl_c));
        ctrl_c.disarm();
        out.finish();
        match result {
            Ok(generation) if !args.quiet => output::print_stats(&generation),
            Ok(_) => {}
            // A failed turn leaves the conversation as it was; say why and go on.
            Err(e) => eprintln!("error [{}]: {}", e.code, e.message),
        }
    }
    Ok(())
}
