//! `adapt jobs list|cancel`: long work (training, downloads, dataset preparation,
//! conversion) as the store records it, whichever process runs it.

use adapt_api::jobs::CancelOutcome;
use adapt_api::{Adapt, JobRecord, JobStatus};
use anyhow::Result;
use clap::{Args, Subcommand};

use crate::output::utc;

#[derive(Args)]
pub struct JobsArgs {
    #[command(subcommand)]
    command: JobsCommand,
}

#[derive(Subcommand)]
enum JobsCommand {
    /// List jobs, newest first; interrupted ones can be resumed.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop a job: a running one at its next check, a queued or interrupted one at once.
    Cancel {
        /// The job's id (from `adapt jobs list`).
        id: i64,
    },
}

pub fn run(args: &JobsArgs) -> Result<()> {
    let adapt = Adapt::start()?;
    match args.command {
        JobsCommand::List { json } => list(&adapt, json),
        JobsCommand::Cancel { id } => cancel(&adapt, id),
    }
}

fn list(adapt: &Adapt, json: bool) -> Result<()> {
    let jobs = adapt.jobs()?;
    if json {
        println!("{}", serde_json::to_string_pretty(&jobs)?);
        return Ok(());
    }
    if jobs.is_empty() {
        println!("No jobs yet.");
        return Ok(());
    }
    println!(
        "{:>4}  {:<15}  {:<11}  {:<19}  {:>13}  MESSAGE",
        "ID", "KIND", "STATUS", "CREATED (UTC)", "PROGRESS"
    );
    for j in &jobs {
        println!(
            "{:>4}  {:<15}  {:<11}  {:<19}  {:>13}  {}",
            j.id,
            j.kind,
            j.status,
            utc(j.created_at),
            progress(j),
            message(j)
        );
    }
    let interrupted = jobs
        .iter()
        .filter(|j| j.status == JobStatus::Interrupted)
        .count();
    if interrupted > 0 {
        println!(
            "{interrupted} interrupted (their process stopped); they can be resumed, or \
             removed with `adapt jobs cancel ID`."
        );
    }
    // Training runs resume from their last checkpoint; say how.
    let mut runs: Vec<i64> = jobs
        .iter()
        .filter(|j| j.status == JobStatus::Interrupted && j.kind == "train")
        .filter_map(|j| j.run_id)
        .collect();
    runs.dedup();
    for run in runs {
        println!("  resume training run {run} with: adapt train --resume {run}");
    }
    Ok(())
}

fn progress(j: &JobRecord) -> String {
    match j.progress_total {
        Some(total) => format!("{}/{total}", j.progress_done),
        None if j.progress_done > 0 => j.progress_done.to_string(),
        None => "-".into(),
    }
}

fn message(j: &JobRecord) -> String {
    match (&j.error_code, &j.error_message) {
        (Some(code), Some(message)) => format!("[{code}] {message}"),
        _ if j.cancel_requested => format!("{} (stopping)", j.message),
        _ => j.message.clone(),
    }
}

fn cancel(adapt: &Adapt, id: i64) -> Result<()> {
    match adapt.cancel_job(id)? {
        CancelOutcome::Requested => println!("Job {id} is stopping (cancel requested)."),
        CancelOutcome::Cancelled => println!("Job {id} cancelled."),
        CancelOutcome::AlreadyFinished(status) => {
            println!("Job {id} had already ended ({status}); nothing to cancel.")
        }
    }
    Ok(())
}
