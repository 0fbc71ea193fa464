//! `adapt models pull|list|inspect|import|rm`: the model library, and downloads from the
//! Hugging Face Hub with a progress bar (per file and in total; Ctrl-C stops, and pulling
//! again resumes).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use adapt_api::{
    Adapt, ApiError, ErrorCode, Estimate, FitOptions, JobEvent, ModelDetails, ModelSource,
    PullEvent, PullProgress, PullStage,
};
use anyhow::Result;
use clap::{Args, Subcommand};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::output::{human_bytes, human_count, CtrlC};

#[derive(Args)]
pub struct ModelsArgs {
    #[command(subcommand)]
    command: ModelsCommand,
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Download a model from the Hugging Face Hub (HF_ENDPOINT, HF_TOKEN); a partial download
    /// left by a stop or a crash is resumed.
    Pull {
        /// ORG/NAME, optionally @REVISION (a branch, tag or commit).
        repo: String,
        /// Fetch this one file (a GGUF file, for instance) instead of the model folder.
        #[arg(long)]
        file: Option<String>,
    },
    /// List the models: ours, then those in the Hugging Face cache.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one model (by name or path): format, shape, files, and whether it fits in memory.
    Inspect {
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Chat context length for the memory estimate.
        #[arg(long, default_value_t = 4096)]
        context: u64,
        /// Training batch size for the estimate.
        #[arg(long, default_value_t = 4)]
        batch: u64,
        /// Training sequence length for the estimate.
        #[arg(long, default_value_t = 512)]
        seq_len: u64,
        /// LoRA rank for the estimate.
        #[arg(long, default_value_t = 8)]
        lora_rank: u64,
    },
    /// Copy a model folder (config.json + safetensors) or a GGUF file into the models cache.
    Import { path: PathBuf },
    /// Delete a model Adapt imported, pulled or converted: the files it wrote, after showing
    /// them and asking (never the Hugging Face cache, nor a file you put in the models cache).
    Rm {
        name: String,
        /// Delete without asking (needed when stdin is not a terminal).
        #[arg(long, short)]
        yes: bool,
    },
}

pub fn run(args: &ModelsArgs) -> Result<()> {
    let adapt = Adapt::start()?;
    match &args.command {
        ModelsCommand::Pull { repo, file } => pull(&adapt, repo, file.as_deref()),
        ModelsCommand::List { json } => list(&adapt, *json),
        ModelsCommand::Inspect {
            name,
            json,
            context,
            batch,
            seq_len,
            lora_rank,
        } => {
            let options = FitOptions {
                context: *context,
                batch: *batch,
                seq_len: *seq_len,
                lora_rank: *lora_rank,
                ..FitOptions::default()
            };
            inspect(&adapt, name, *json, &options)
        }
        ModelsCommand::Import { path } => {
            let m = adapt.import_model(path)?;
            println!(
                "Imported {} into {} ({}).",
                m.name,
                m.path.display(),
                human_bytes(m.description.bytes)
            );
            if let Some(why) = &m.description.not_runnable {
                println!("Note: it cannot run yet: {why}.");
            }
            Ok(())
        }
        ModelsCommand::Rm { name, yes } => remove(&adapt, name, *yes),
    }
}

/// Shows what deleting `name` removes, asks unless `yes`, then deletes exactly that.
fn remove(adapt: &Adapt, name: &str, yes: bool) -> Result<()> {
    let plan = adapt.removal_plan(name)?;
    println!(
        "Deleting {} ({}) removes {} file(s), {}:",
        plan.name,
        plan.origin,
        plan.files.len(),
        human_bytes(plan.bytes)
    );
    const SHOWN: usize = 20;
    for f in plan.files.iter().take(SHOWN) {
        println!("  {}  {}", f.path.display(), human_bytes(f.bytes));
    }
    if plan.files.len() > SHOWN {
        println!("  … and {} more", plan.files.len() - SHOWN);
    }
    if !plan.kept.is_empty() {
        println!("Kept (Adapt did not write them):");
        for p in &plan.kept {
            println!("  {}", p.display());
        }
    }
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    if !confirmed(yes, interactive, &mut stdin.lock(), &mut std::io::stdout())? {
        println!("Nothing deleted.");
        return Ok(());
    }
    let done = adapt.remove_model(name, &plan.confirmation)?;
    println!(
        "Deleted {} ({} file(s), {}).",
        done.name,
        done.files.len(),
        human_bytes(done.bytes)
    );
    Ok(())
}

/// Whether to go ahead: `--yes`, else the person's answer on a terminal; without a terminal
/// there is no one to ask, which is an error rather than a silent yes or no.
fn confirmed(
    yes: bool,
    interactive: bool,
    input: &mut dyn std::io::BufRead,
    output: &mut dyn std::io::Write,
) -> Result<bool> {
    if yes {
        return Ok(true);
    }
    if !interactive {
        return Err(ApiError::new(
            ErrorCode::CliNotConfirmed,
            "stdin is not a terminal, so there is no one to ask: pass --yes to delete these \
             files",
        )
        .into());
    }
    write!(output, "Delete them? [y/N] ")?;
    output.flush()?;
    let mut answer = String::new();
    input.read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// Progress on stderr: bars on a terminal, else a line per file and about one a second.
struct Bars {
    total: ProgressBar,
    file: ProgressBar,
    _multi: MultiProgress,
    terminal: bool,
    last_line: Option<Instant>,
    last_file: usize,
}

impl Bars {
    fn new() -> Bars {
        let terminal = std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let file = multi.add(ProgressBar::new(0));
        file.set_style(
            ProgressStyle::with_template(
                "{prefix:>7} {wide_msg} {bytes:>10}/{total_bytes:<10} [{bar:25}]",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let total = multi.add(ProgressBar::new(0));
        total.set_style(
            ProgressStyle::with_template("  total {bytes:>10}/{total_bytes:<10} [{bar:25}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Bars {
            total,
            file,
            _multi: multi,
            terminal,
            last_line: None,
            last_file: 0,
        }
    }

    fn update(&mut self, p: &PullProgress) {
        let rate = format!("{}/s", human_bytes(p.bytes_per_second as u64));
        let eta = p.eta_seconds.map_or("-".into(), |s| format!("{s:.0} s"));
        self.total.set_length(p.total);
        self.total.set_position(p.done);
        self.total.set_message(format!("{rate} · ETA {eta}"));
        self.file.set_length(p.file_total);
        self.file.set_position(p.file_done);
        self.file
            .set_prefix(format!("[{}/{}]", p.file_index, p.file_count));
        let stage = match p.stage {
            PullStage::Downloading => "",
            PullStage::Verifying => " (verifying)",
            PullStage::Done => " ✓",
        };
        self.file.set_message(format!("{}{stage}", p.file));
        if self.terminal {
            return;
        }
        let new_file = p.file_index != self.last_file;
        let due = self
            .last_line
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
        if new_file || due || p.stage == PullStage::Done {
            self.last_file = p.file_index;
            self.last_line = Some(Instant::now());
            eprintln!(
                "[{}/{}] {}{stage}  {}/{}  · total {}/{}  · {rate}  · ETA {eta}",
                p.file_index,
                p.file_count,
                p.file,
                human_bytes(p.file_done),
                human_bytes(p.file_total),
                human_bytes(p.done),
                human_bytes(p.total),
            );
        }
    }

    fn finish(&self) {
        self.file.finish_and_clear();
        self.total.finish_and_clear();
    }
}

fn pull(adapt: &Adapt, repo: &str, file: Option<&str>) -> Result<()> {
    let bars = Arc::new(Mutex::new(Bars::new()));
    let reporter = bars.clone();
    eprintln!("Pulling {repo} …");
    let job = adapt.pull_model(repo, file, move |e| {
        if let PullEvent::Progress(p) = e {
            reporter.lock().unwrap_or_else(|e| e.into_inner()).update(p);
        }
    })?;
    let ctrl_c = CtrlC::install();
    ctrl_c.arm();
    let mut asked = false;
    loop {
        match job.events().recv_timeout(Duration::from_millis(100)) {
            Ok(JobEvent::Finished { .. }) | Err(RecvTimeoutError::Disconnected) => break,
            _ => {}
        }
        if ctrl_c.pressed() && !asked {
            asked = true;
            job.cancel();
        }
    }
    ctrl_c.disarm();
    bars.lock().unwrap_or_else(|e| e.into_inner()).finish();
    let pulled = job.wait()?;
    let already = pulled.bytes - pulled.fetched.min(pulled.bytes);
    println!(
        "Pulled {}@{} (commit {}): {} files, {} fetched, {} already here.",
        pulled.repo,
        pulled.revision,
        &pulled.commit[..pulled.commit.len().min(12)],
        pulled.files.len(),
        human_bytes(pulled.fetched),
        human_bytes(already)
    );
    for f in pulled.files.iter().filter(|f| f.resumed_from > 0) {
        println!(
            "  resumed {} from {} (fetched {})",
            f.name,
            human_bytes(f.resumed_from),
            human_bytes(f.fetched)
        );
    }
    println!("{}", pulled.snapshot.display());
    Ok(())
}

fn kind(m: &ModelDetails) -> String {
    let d = &m.model.description;
    d.quantization
        .clone()
        .or_else(|| d.dtype.clone())
        .unwrap_or_else(|| "-".into())
}

fn list(adapt: &Adapt, json: bool) -> Result<()> {
    let models = adapt.models();
    if json {
        println!("{}", serde_json::to_string_pretty(&models)?);
        return Ok(());
    }
    if models.is_empty() {
        println!(
            "No models yet. `adapt models pull ORG/NAME` downloads one; `adapt models import \
             PATH` adds a folder or GGUF file."
        );
        return Ok(());
    }
    println!(
        "{:<40}  {:<8}  {:<11}  {:<10}  {:>7}  {:<16}  {:>9}  {:<3}  {:<7}  {:<7}",
        "NAME", "SOURCE", "FORMAT", "ARCH", "PARAMS", "TYPE", "SIZE", "RUN", "CHAT", "TRAIN"
    );
    for m in &models {
        let d = &m.model.description;
        println!(
            "{:<40}  {:<8}  {:<11}  {:<10}  {:>7}  {:<16}  {:>9}  {:<3}  {:<7}  {:<7}",
            m.model.name,
            m.model.source,
            d.format,
            d.architecture.as_deref().unwrap_or("?"),
            d.parameters.map_or("?".into(), |n| human_count(n as f64)),
            kind(m),
            human_bytes(d.bytes),
            if d.runnable { "yes" } else { "no" },
            m.fit.chat.verdict,
            m.fit.train.verdict,
        );
    }
    let cannot: Vec<&ModelDetails> = models
        .iter()
        .filter(|m| !m.model.description.runnable)
        .collect();
    for m in cannot {
        println!(
            "{}: cannot run: {}",
            m.model.name,
            m.model.description.not_runnable.as_deref().unwrap_or("?")
        );
    }
    if let Some(m) = models.first() {
        println!(
            "Memory: {} total, {} available. CHAT / TRAIN: fits, tight (close other apps) or \
             too big; `adapt models inspect NAME` shows the estimates and their assumptions.",
            human_bytes(m.fit.memory.total),
            human_bytes(m.fit.memory.available),
        );
    }
    Ok(())
}

fn print_estimate(what: &str, e: &Estimate) {
    let parts: Vec<String> = e
        .parts
        .iter()
        .map(|(name, bytes)| format!("{name} {}", human_bytes(*bytes)))
        .collect();
    println!(
        "{what:<14}{} — {} ({})",
        human_bytes(e.bytes),
        e.verdict,
        parts.join(" + ")
    );
    for a in &e.assumptions {
        println!("{:<14}  assuming {a}", "");
    }
}

fn inspect(adapt: &Adapt, name: &str, json: bool, options: &FitOptions) -> Result<()> {
    let m = adapt.inspect_model(name, options)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&m)?);
        return Ok(());
    }
    let d = &m.model.description;
    println!("Name          {}", m.model.name);
    let source = match m.model.source {
        ModelSource::Library => "models cache",
        ModelSource::HuggingFaceCache => "Hugging Face cache (read in place, not deleted)",
        ModelSource::External => "a path outside the library",
    };
    println!("Source        {source}");
    println!("Path          {}", m.model.path.display());
    if let (Some(repo), Some(rev)) = (&m.model.repo_id, &m.model.revision) {
        println!("Repository    {repo} (commit {rev})");
    }
    println!("Format        {}", d.format);
    println!(
        "Architecture  {}",
        d.architecture.as_deref().unwrap_or("unknown")
    );
    if let Some(n) = d.parameters {
        println!("Parameters    {} ({n})", human_count(n as f64));
    }
    println!("Type          {}", kind(&m));
    if let Some(s) = &d.shape {
        println!(
            "Shape         {} layers, hidden {}, {} heads ({} KV), head dim {}, vocab {}{}",
            s.layers,
            s.hidden,
            s.heads,
            s.kv_heads,
            s.head_dim,
            s.vocab,
            s.context
                .map(|c| format!(", context {c}"))
                .unwrap_or_default()
        );
    }
    println!(
        "Size          {} ({} of weights, {} tensors)",
        human_bytes(d.bytes),
        human_bytes(d.weights_bytes),
        d.tensors
    );
    match &d.not_runnable {
        None => println!("Runs          yes"),
        Some(why) => println!("Runs          no: {why}"),
    }
    println!(
        "Memory        {} total, {} available",
        human_bytes(m.fit.memory.total),
        human_bytes(m.fit.memory.available)
    );
    print_estimate("Chat", &m.fit.chat);
    print_estimate("LoRA training", &m.fit.train);
    println!("Files");
    for f in &d.files {
        println!("  {:<48} {:>10}", f.name, human_bytes(f.bytes));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(yes: bool, interactive: bool, typed: &str) -> (Result<bool>, String) {
        let mut out = Vec::new();
        let got = confirmed(yes, interactive, &mut typed.as_bytes(), &mut out);
        (got, String::from_utf8(out).unwrap())
    }

    #[test]
    fn deleting_asks_on_a_terminal_and_refuses_without_one() {
        assert!(ask(true, false, "").0.unwrap());
        let (got, shown) = ask(false, true, "y\n");
        assert!(got.unwrap());
        assert_eq!(shown, "Delete them? [y/N] ");
        assert!(ask(false, true, "YES\n").0.unwrap());
        for no in ["\n", "n\n", "", "yes please\n"] {
            assert!(!ask(false, true, no).0.unwrap(), "{no:?}");
        }
        let e = ask(false, false, "y\n").0.unwrap_err();
        let api = e.downcast_ref::<ApiError>().unwrap();
        assert_eq!(api.code, ErrorCode::CliNotConfirmed);
        assert!(api.message.contains("--yes"));
    }
}
