//! `adapt serve`: the local OpenAI-compatible server, until Ctrl-C (or SIGTERM); a line per
//! request on stderr; on the way out the prompt cache is written to disk, so the next start
//! answers its first requests from it.

use std::sync::Arc;

use adapt_api::{ServedRequest, ServerSettings};
use adapt_server::Server;
use anyhow::Result;
use clap::Args;

use crate::args::{CacheBudgetArgs, ModelArg};
use crate::output::{human_bytes, human_count};

#[derive(Args)]
pub struct ServeArgs {
    #[command(flatten)]
    model: ModelArg,
    /// The adapter requests get when they name no model: a run id or an adapter folder.
    /// Every adapter trained on the model is served too, by name (GET /v1/models).
    #[arg(long)]
    adapter: Option<String>,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// 0 picks a free port.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The key clients must send (`Authorization: Bearer KEY`). Required beyond loopback:
    /// without one, a key is generated, kept in the data folder and printed.
    #[arg(long, env = "ADAPT_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Requests accepted at once: one runs, the rest wait in order; more are refused (429).
    #[arg(long, default_value_t = 16)]
    max_concurrency: usize,
    /// The most tokens one request may generate (also the default).
    #[arg(long, default_value_t = 4096)]
    max_tokens: usize,
    #[command(flatten)]
    budgets: CacheBudgetArgs,
    /// No line per request.
    #[arg(long)]
    quiet: bool,
}

pub fn run(args: &ServeArgs) -> Result<()> {
    let adapt = Arc::new(crate::output::start()?);
    let settings = ServerSettings {
        model: args.model.model.clone(),
        adapter: args.adapter.clone(),
        host: args.host.clone(),
        port: args.port,
        api_key: args.api_key.clone(),
        max_concurrency: args.max_concurrency,
        max_tokens: args.max_tokens,
        cache_memory_mb: args.budgets.cache_memory_mb,
    };
    settings.check()?;
    args.budgets.apply(&adapt)?;
    let key = adapt.server_key(&settings)?;
    let path = args.model.path(&adapt);
    eprintln!("Loading {} …", path.display());
    let served = adapt.start_serving(&path, args.adapter.as_deref())?;
    let restored = &served.restored;
    if restored.caches > 0 {
        eprintln!(
            "Prompt cache: {} sequences ({} tokens, {}) back from disk",
            restored.caches,
            human_count(restored.tokens as f64),
            human_bytes(restored.bytes)
        );
    }
    let quiet = args.quiet;
    let log = Arc::new(move |r: ServedRequest| {
        if !quiet {
            print_request(&r);
        }
    });
    let server = Server::start(adapt.clone(), served, &settings, key, log)?;
    println!("Serving on http://{}/v1", server.addr());
    println!("Model: {}", server.default_model());
    match server.key() {
        Some(key) if args.api_key.is_none() => println!("API key: {key}"),
        Some(_) => println!("API key: the one given"),
        None => println!("API key: none (loopback only)"),
    }
    let (tx, stop) = std::sync::mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })?;
    let _ = stop.recv();
    eprintln!("Stopping …");
    let saved = server.stop()?;
    eprintln!(
        "Prompt cache: {} sequences ({} tokens, {}) kept on disk for the next start",
        saved.caches,
        human_count(saved.tokens as f64),
        human_bytes(saved.bytes)
    );
    Ok(())
}

/// One line for a request, on stderr.
fn print_request(r: &ServedRequest) {
    let model = if r.model.is_empty() { "-" } else { &r.model };
    match &r.error {
        Some(e) => eprintln!("{} {} {model} · {e}", r.status, r.endpoint),
        None => eprintln!(
            "{} {} {model}{} · {} tokens in ({} cached) · {} out · first token {:.2} s · {:.1} tok/s",
            r.status,
            r.endpoint,
            if r.stream { " (stream)" } else { "" },
            r.prompt_tokens,
            r.cached_tokens,
            r.completion_tokens,
            r.time_to_first_token,
            r.tokens_per_second
        ),
    }
}
