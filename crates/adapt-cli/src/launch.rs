//! `adapt launch`: a group of `adapt` processes training together over MLX's distributed
//! engine — N on this machine (loopback ring) or one per host of an MLX hostfile over ssh —
//! with each line of their output prefixed by its rank.

use std::io::Write;
use std::path::PathBuf;

use adapt_api::launch::{plan, read_hosts, run, LaunchSpec, DEFAULT_PORT};
use adapt_api::DistBackend;
use anyhow::Result;
use clap::Args;

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
    /// The adapt command every rank runs, e.g. `-- train --model M --data D`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

pub fn run_launch(args: &LaunchArgs) -> Result<()> {
    let hosts = args.hosts.as_deref().map(read_hosts).transpose()?;
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
