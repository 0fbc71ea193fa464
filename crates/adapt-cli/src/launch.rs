//! `adapt launch`: a group of `adapt` processes training together over MLX's distributed
//! engine — N on this machine (loopback ring) or one per host of an MLX hostfile over ssh —
//! with each line of their output prefixed by its rank; `--check` asks every host instead
//! whether it is ready (reachable, the same Adapt, the model and data there).

use std::io::Write;
use std::path::PathBuf;

use adapt_api::launch::{plan, read_hosts, run, Host, LaunchSpec, DEFAULT_PORT};
use adapt_api::machines::check_machine;
use adapt_api::{Adapt, DistBackend};
use anyhow::{anyhow, Result};
use clap::Args;

use crate::output::human_bytes;

#[derive(Args)]
pub struct LaunchArgs {
    /// Processes to start on this machine (over loopback).
    #[arg(short = 'n', long, conflicts_with = "hosts")]
    processes: Option<usize>,
    /// MLX's hostfile: a JSON list of {"ssh": "host", "ips": ["10.0.0.2"]}, one per rank; each
    /// may add "adapt": the program's path there.
    #[arg(long)]
    hosts: Option<PathBuf>,
    /// MLX's distributed backend: ring, nccl, mpi, jaccl or any.
    #[arg(long, default_value = "ring")]
    backend: String,
    /// First ring port on other machines (NCCL's port).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Check every host instead of starting: reachable over ssh, the same Adapt, and the
    /// command's --model, --data and --valid (those that exist here) at the same paths there.
    #[arg(long, requires = "hosts")]
    check: bool,
    /// The adapt command every rank runs, e.g. `-- train --model M --data D`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

pub fn run_launch(args: &LaunchArgs) -> Result<()> {
    let hosts = args.hosts.as_deref().map(read_hosts).transpose()?;
    if let (true, Some(hosts)) = (args.check, &hosts) {
        return check_hosts(hosts, &args.command);
    }
    let spec = LaunchSpec {
        processes: args.processes,
        hosts,
        backend: DistBackend::parse(&args.backend).map_err(adapt_api::ApiError::from)?,
        port: args.port,
        program: std::env::current_exe()?,
        args: args.command.clone(),
        cwd: std::env::current_dir()?,
    };
    let commands = plan(&spec)?;
    eprintln!(
        "Starting {} ranks over MLX's {} backend: adapt {}",
        commands.len(),
        args.backend,
        args.command.join(" ")
    );
    let on_start = |rank: usize, pid: u32| eprintln!("Rank {rank} started (process {pid}).");
    let exits = run(&commands, on_start, |rank, line| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "[{rank}] {line}");
    })?;
    eprintln!("All {} ranks finished.", exits.len());
    Ok(())
}

/// Checks each host for the paths of `command`; fails when one is not ready.
fn check_hosts(hosts: &[Host], command: &[String]) -> Result<()> {
    let program = std::env::current_exe()?;
    let paths = paths_of(command)?;
    let beside = program.parent();
    let mut ready = 0;
    for host in hosts {
        let check = check_machine(host, beside, &paths);
        match &check.report {
            Some(r) => println!(
                "{}: Adapt {}, {} backend, {} of {} memory available",
                host.ssh,
                r.version,
                r.backend,
                human_bytes(r.available_memory),
                human_bytes(r.total_memory)
            ),
            None if check.reachable => println!("{}: reachable, no report", host.ssh),
            None => println!("{}: not reachable", host.ssh),
        }
        for p in &check.problems {
            println!("  problem: {p}");
        }
        ready += usize::from(check.ok);
    }
    match ready == hosts.len() {
        true => {
            println!("All {} machines are ready.", hosts.len());
            Ok(())
        }
        false => Err(anyhow!(
            "{} of {} machines are not ready",
            hosts.len() - ready,
            hosts.len()
        )),
    }
}

/// The values of `--model`, `--data` and `--valid` in `command` that exist here, absolute.
fn paths_of(command: &[String]) -> Result<Vec<PathBuf>> {
    let cwd = std::env::current_dir()?;
    let mut paths = Vec::new();
    let mut words = command.iter();
    while let Some(word) = words.next() {
        let value = match word.split_once('=') {
            Some((flag, value)) => [flag, value].map(str::to_string),
            None => [
                word.clone(),
                words.clone().next().cloned().unwrap_or_default(),
            ],
        };
        if ["--model", "--data", "--valid"].contains(&value[0].as_str()) {
            let path = cwd.join(&value[1]);
            if !value[1].is_empty() && path.exists() {
                paths.push(path);
            }
        }
    }
    Ok(paths)
}

#[derive(Args)]
pub struct MachineReportArgs {
    /// Paths to look for (the model, the data).
    paths: Vec<PathBuf>,
}

/// Prints this machine's report as JSON.
pub fn machine_report(args: &MachineReportArgs) -> Result<()> {
    let adapt = Adapt::start()?;
    let report = adapt.machine_report(&args.paths)?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
