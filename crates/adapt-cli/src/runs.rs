//! `adapt runs list|show`: training runs as the store records them — status, timestamps,
//! configuration, metrics and checkpoints.

use adapt_api::{Adapt, RunRecord};
use anyhow::Result;
use clap::{Args, Subcommand};

use crate::output::human_bytes;

#[derive(Args)]
pub struct RunsArgs {
    #[command(subcommand)]
    command: RunsCommand,
}

#[derive(Subcommand)]
enum RunsCommand {
    /// List training runs, newest first.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one run: configuration, metrics and checkpoints.
    Show {
        /// The run's id (from `adapt runs list`).
        id: i64,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: &RunsArgs) -> Result<()> {
    let adapt = Adapt::start()?;
    match args.command {
        RunsCommand::List { json } => list(&adapt, json),
        RunsCommand::Show { id, json } => show(&adapt, id, json),
    }
}

fn list(adapt: &Adapt, json: bool) -> Result<()> {
    let runs = adapt.runs()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return Ok(());
    }
    if runs.is_empty() {
        println!("No training runs yet.");
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

/// `YYYY-MM-DD HH:MM:SS` in UTC from milliseconds since the epoch.
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_dates() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(super::utc(1_767_225_599_000), "2025-12-31 23:59:59");
    }
}
