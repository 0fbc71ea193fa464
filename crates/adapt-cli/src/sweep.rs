//! `adapt sweep`: a hyperparameter search on one loaded model (a space file over the training
//! flags), `adapt sweep --resume N`, and `adapt sweep list|show`.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use adapt_api::{
    read_sweep_file, Adapt, SweepDetails, SweepProgress, SweepRequest, TrainEvent, TrainProgress,
    TrialRecord,
};
use anyhow::Result;
use clap::{Args, Subcommand};

use crate::args::{ListArgs, ShowArgs};
use crate::output::{utc, CtrlC};
use crate::train::TrainSettings;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SweepArgs {
    #[command(subcommand)]
    command: Option<SweepCommand>,
    /// The search: a YAML or JSON file with `space` (setting → {log_uniform|uniform|int:
    /// [lo, hi]} or {choice: [..]}) and optionally fixed, trials, max_minutes, seed,
    /// startup_trials, rungs and reduction.
    #[arg(long, required_unless_present = "resume")]
    space: Option<PathBuf>,
    /// Go on with sweep N where it stopped.
    #[arg(long, value_name = "N", conflicts_with_all = ["space", "data", "config"])]
    resume: Option<i64>,
    /// Trials in all (overrides the file).
    #[arg(long)]
    trials: Option<u64>,
    /// Start no trial after this many minutes of training (overrides the file).
    #[arg(long)]
    max_minutes: Option<f64>,
    /// Print events as JSON lines.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    settings: TrainSettings,
}

#[derive(Subcommand)]
enum SweepCommand {
    /// List sweeps, newest first.
    List(ListArgs),
    /// Show a sweep's trials ranked: values, best validation loss, steps and why each stopped.
    Show(ShowArgs),
}

pub fn run(args: &SweepArgs) -> Result<()> {
    let adapt = crate::output::start()?;
    match &args.command {
        Some(SweepCommand::List(a)) => list(&adapt, a.json),
        Some(SweepCommand::Show(a)) => show(&adapt.sweep_details(a.id)?, a.json),
        None => sweep(&adapt, args),
    }
}

fn sweep(adapt: &Adapt, args: &SweepArgs) -> Result<()> {
    let (tx, rx) = mpsc::channel();
    let on_progress = move |p: &SweepProgress| {
        let _ = tx.send(p.clone());
    };
    let job = match (args.resume, &args.space) {
        (Some(id), _) => {
            eprintln!("Resuming sweep {id} where it stopped …");
            adapt.resume_sweep(id, on_progress)?
        }
        (None, Some(space)) => {
            let request = args.settings.request(adapt)?;
            if let Some(dir) = &request.adapter_path {
                return Err(anyhow::anyhow!(
                    "--adapter-path {}: a sweep keeps each trial's adapter in its run and lists \
                     the best one as \"NAME (best)\"; leave the flag out and use that run",
                    dir.display()
                ));
            }
            let mut spec = read_sweep_file(space, &request.config)?;
            spec.trials = args.trials.unwrap_or(spec.trials);
            spec.max_minutes = args.max_minutes.or(spec.max_minutes);
            let name = request.name.clone();
            adapt.start_sweep(
                SweepRequest {
                    request,
                    spec,
                    name,
                },
                on_progress,
            )?
        }
        (None, None) => anyhow::bail!("--space FILE is required (or --resume N)"),
    };
    let id = job.sweep_id();
    eprintln!(
        "Sweep {id}; Ctrl-C stops after a checkpoint (resume with: adapt sweep --resume {id})."
    );
    let ctrl_c = CtrlC::install();
    ctrl_c.arm();
    let mut asked = false;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(p) => show_progress(&p, args.json),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if ctrl_c.pressed() && !asked {
            asked = true;
            eprintln!("Stopping: saving a checkpoint after this step …");
            job.cancel();
        }
    }
    ctrl_c.disarm();
    let best = job.wait()?;
    let details = adapt.sweep_details(id)?;
    if args.json {
        println!("{}", serde_json::to_string(&details)?);
        return Ok(());
    }
    show(&details, false)?;
    match best.and_then(|b| b.run_id) {
        Some(run) => println!(
            "Best: run {run}. Try it: adapt chat --adapter {run}   ·   fuse it: adapt fuse --adapter {run} --out DIR"
        ),
        None if asked => println!("Stopped; resume with: adapt sweep --resume {id}"),
        None => println!("No trial completed."),
    }
    Ok(())
}

fn show_progress(p: &SweepProgress, json: bool) {
    if json {
        println!("{}", serde_json::to_string(p).unwrap_or_default());
        return;
    }
    match p {
        SweepProgress::Setup(TrainProgress::Prepared {
            train,
            valid,
            cached,
        }) => eprintln!(
            "Data: {train} training and {valid} validation examples{}",
            if *cached { " (cached)" } else { "" }
        ),
        SweepProgress::Setup(TrainProgress::Loading) => eprintln!("Loading the model once …"),
        SweepProgress::TrialStarted {
            number,
            run_id,
            params,
            resumed,
        } => eprintln!(
            "Trial {number} (run {run_id}){}: {}",
            if *resumed { ", resumed" } else { "" },
            values(params)
        ),
        SweepProgress::Trial {
            number,
            event: TrainEvent::Evaluated { step, val_loss, .. },
        } => eprintln!("  trial {number} step {step}: validation loss {val_loss:.4}"),
        SweepProgress::TrialEnded(t) => eprintln!(
            "  trial {}: {} — {}",
            t.number,
            state(t),
            t.reason.as_deref().unwrap_or("")
        ),
        _ => {}
    }
}

/// A trial's values as `name=value` pairs.
fn values(params: &serde_json::Value) -> String {
    let Some(map) = params.as_object() else {
        return params.to_string();
    };
    map.iter()
        .map(|(k, v)| match v.as_f64() {
            Some(x) if v.is_f64() => format!("{k}={x:.3e}"),
            _ => format!("{k}={v}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn state(t: &TrialRecord) -> String {
    serde_json::to_value(t.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn list(adapt: &Adapt, json: bool) -> Result<()> {
    let sweeps = adapt.sweeps()?;
    if crate::output::listed_plainly(&sweeps, json, "No sweeps yet.")? {
        return Ok(());
    }
    println!(
        "{:>4}  {:<11}  {:<19}  {:>8}  NAME",
        "ID", "STATUS", "CREATED (UTC)", "BEST RUN"
    );
    for s in &sweeps {
        println!(
            "{:>4}  {:<11}  {:<19}  {:>8}  {}",
            s.id,
            s.status,
            utc(s.created_at),
            s.best_run_id.map(|r| r.to_string()).unwrap_or("-".into()),
            s.name
        );
    }
    Ok(())
}

fn show(d: &SweepDetails, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(d)?);
        return Ok(());
    }
    let s = &d.sweep;
    println!("Sweep {} · {} · {}", s.id, s.name, s.status);
    if let Some(e) = &s.error {
        println!("Error: {e}");
    }
    if !d.rungs.is_empty() {
        let rungs: Vec<String> = d.rungs.iter().map(u64::to_string).collect();
        println!("Rungs at steps {}", rungs.join(", "));
    }
    println!(
        "{:>4}  {:>5}  {:<9}  {:>8}  {:>5}  {:>6}  {:<40}  WHY IT STOPPED",
        "RANK", "TRIAL", "STATE", "BEST VAL", "STEPS", "SECS", "VALUES"
    );
    for (rank, t) in d.trials.iter().enumerate() {
        let params: serde_json::Value = serde_json::from_str(&t.params).unwrap_or_default();
        let best = t.best_val_loss.map_or("-".into(), |v| format!("{v:.4}"));
        let mark = if t.run_id.is_some() && t.run_id == s.best_run_id {
            " (best)"
        } else {
            ""
        };
        println!(
            "{:>4}  {:>5}  {:<9}  {:>8}  {:>5}  {:>6.1}  {:<40}  {}{mark}",
            rank + 1,
            t.number,
            state(t),
            best,
            t.steps,
            t.seconds,
            values(&params),
            t.reason.as_deref().unwrap_or("")
        );
    }
    Ok(())
}
