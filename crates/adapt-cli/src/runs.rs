//! `adapt runs list|show`: training runs as the store records them — status, timestamps,
//! configuration, metrics and checkpoints.

use adapt_api::{Adapt, RunRecord};
use anyhow::Result;
use clap::{Args, Subcommand};

use crate::args::{ListArgs, ShowArgs};
use crate::output::{human_bytes, utc};

#[derive(Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    command: RunsCommand,
}

#[derive(Subcommand)]
enum RunsCommand {
    /// List training runs, newest first.
    List(ListArgs),
    /// Show one run: configuration, metrics and checkpoints.
    Show(ShowArgs),
}

pub fn run(args: &RunsArgs) -> Result<()> {
    let adapt = Adapt::start()?;
    match &args.command {
        RunsCommand::List(a) => list(&adapt, a.json),
        RunsCommand::Show(a) => show(&adapt, a.id, a.json),
    }
}

fn list(adapt: &Adapt, json: bool) -> Result<()> {
    let runs = adapt.runs()?;
    if crate::output::listed_plainly(&runs, json, "No training runs yet.")? {
        return Ok(());
    }
    println!(
        "{:>4}  {:<11}  {:<19}  NAME",
        "ID", "STATUS", "CREATED (UTC)"
    );
    for r in &runs {
        println!(
            "{:>4}  {:<11}  {:<19}  {}",
            r.id,
            r.status,
            utc(r.created_at),
            r.name
        );
    }
    Ok(())
}

fn show(adapt: &Adapt, id: i64, json: bool) -> Result<()> {
    let details = adapt.run(id)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&details)?);
        return Ok(());
    }
    let RunRecord {
        name,
        status,
        config,
        created_at,
        started_at,
        finished_at,
        error,
        ..
    } = &details.run;
    println!("Run {id}  {name}");
    println!("Status      {status}");
    if let Some(error) = error {
        println!("Error       {error}");
    }
    println!("Created     {}", utc(*created_at));
    println!("Started     {}", started_at.map_or("-".into(), utc));
    println!("Finished    {}", finished_at.map_or("-".into(), utc));
    println!("Config      {config}");
    println!("Metrics     {} steps", details.metrics.len());
    if !details.metrics.is_empty() {
        println!(
            "  {:>7}  {:>7}  {:>10}  {:>10}  {:>9}  {:>9}  PEAK",
            "STEP", "EPOCH", "TRAIN", "VAL", "LR", "TOK/S"
        );
        let skip = details.metrics.len().saturating_sub(10);
        for m in &details.metrics[skip..] {
            let loss = |l: Option<f64>| l.map_or("-".into(), |l| format!("{l:.4}"));
            println!(
                "  {:>7}  {:>7.2}  {:>10}  {:>10}  {:>9.2e}  {:>9.1}  {}",
                m.step,
                m.epoch,
                loss(m.train_loss),
                loss(m.val_loss),
                m.learning_rate,
                m.tokens_per_second,
                human_bytes(m.peak_memory)
            );
        }
    }
    for c in &details.checkpoints {
        println!("Checkpoint  step {}  {}", c.step, c.path.display());
    }
    for j in &details.jobs {
        println!("Job         {}  {}  {}", j.id, j.kind, j.status);
    }
    Ok(())
}
