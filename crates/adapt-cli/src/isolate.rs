//! `adapt isolate bench`: the topic-isolation experiment — one shared cache, no cache, one
//! cache per labelled topic and one per routed topic, on the same model and conversations —
//! printed as a table (or JSON).

use std::path::PathBuf;

use adapt_api::{IsolationOptions, IsolationReport, TopicSettings};
use anyhow::Result;
use clap::{Args, Subcommand};

use crate::args::ModelArg;
use crate::output::{self, human_bytes};

#[derive(Args)]
pub struct IsolateArgs {
    #[command(subcommand)]
    what: IsolateCommand,
}

#[derive(Subcommand)]
enum IsolateCommand {
    /// Run the four conditions over a conversation set (JSONL: id, system, turns with their
    /// topic, questions with the expected answer; `examples/topics/` has one) and report
    /// tokens prefilled, cache sizes, time to first token, routing accuracy and answer
    /// quality per condition.
    Bench(IsolateBenchArgs),
}

#[derive(Args)]
pub struct IsolateBenchArgs {
    #[command(flatten)]
    model: ModelArg,
    /// The conversation set (JSON Lines).
    #[arg(long)]
    data: PathBuf,
    /// The least similarity for a message to join a topic (routing, condition 4).
    #[arg(long, default_value_t = TopicSettings::default().threshold)]
    threshold: f32,
    /// The block whose hidden states route messages (1 = the first; default: the last).
    #[arg(long)]
    layer: Option<usize>,
    /// Most tokens of each greedy answer.
    #[arg(long, default_value_t = 16)]
    max_tokens: usize,
    /// Only the first N conversations.
    #[arg(long)]
    limit: Option<usize>,
    /// Print the report as JSON (with every question's replies).
    #[arg(long)]
    json: bool,
}

pub fn run(args: &IsolateArgs) -> Result<()> {
    let IsolateCommand::Bench(args) = &args.what;
    let adapt = output::start_with_model(&args.model)?;
    let options = IsolationOptions {
        settings: TopicSettings {
            layer: args.layer,
            threshold: args.threshold,
        },
        max_tokens: args.max_tokens,
    };
    let started = std::time::Instant::now();
    let report = adapt.isolate_bench(&args.data, options, args.limit, |(done, total)| {
        eprint!(
            "\r{done}/{total} conversations · {:.0} s",
            started.elapsed().as_secs_f64()
        );
        if done == total {
            eprintln!();
        }
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &IsolationReport) {
    let first = r.conditions.first();
    println!(
        "{} conversations, {} questions · routing: layer {}, threshold {:.2}",
        first.map_or(0, |f| f.conversations),
        first.map_or(0, |f| f.questions),
        r.layer,
        r.threshold
    );
    println!(
        "{:<24} {:>10} {:>7} {:>13} {:>10} {:>10} {:>9} {:>12} {:>8} {:>8}",
        "condition",
        "prefilled",
        "caches",
        "cache tokens",
        "cache",
        "TTFT",
        "routing",
        "answer LL",
        "exact",
        "contains"
    );
    for f in &r.conditions {
        let routing = f
            .routing_accuracy
            .map_or("-".to_string(), |a| format!("{:.0}%", a * 100.0));
        println!(
            "{:<24} {:>10} {:>7.1} {:>13.0} {:>10} {:>8.1}ms {:>9} {:>12.2} {:>7.0}% {:>7.0}%",
            f.condition.map_or("", |c| c.label()),
            f.prefilled_tokens,
            f.caches,
            f.cache_tokens,
            human_bytes(f.cache_bytes as u64),
            f.ttft_median * 1e3,
            routing,
            f.answer_logprob,
            f.exact_match * 100.0,
            f.contains_answer * 100.0
        );
    }
    println!(
        "(prefilled: history and questions, all conversations; caches, cache tokens and bytes: \
         per conversation once the history is in; TTFT: median over questions; answer LL: mean \
         log-likelihood of the expected answer, nats — higher is better)"
    );
}
