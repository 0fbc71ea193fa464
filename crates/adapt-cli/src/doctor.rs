//! `adapt doctor`: is the runtime there, what does it run on, how much memory, which models.

use adapt_api::{find_models, Adapt};
use anyhow::Result;
use clap::Args;

use crate::args::BUNDLED_MODEL;
use crate::output::human_bytes;

#[derive(Args)]
pub struct DoctorArgs {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &DoctorArgs) -> Result<()> {
    let adapt = Adapt::start()?;
    let device = adapt.device()?;
    let dir = adapt.models_dir(None);
    let models = find_models(&dir);
    let data_dir = adapt.data_dir().map(|d| d.root().to_path_buf());
    let (hub, hub_models) = adapt.hub_models();
    if args.json {
        let report = serde_json::json!({
            "device": device,
            "data_dir": data_dir.as_ref().ok(),
            "models_dir": dir,
            "models": models,
            "hub_cache": hub,
            "hub_models": hub_models,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!("MLX runtime     {} (loaded)", device.mlx_version);
    println!("Backend         {}", device.backend);
    if let Some(c) = &device.choice {
        let asked = c.asked.name();
        match (c.fell_back, c.asked) {
            (true, _) => println!(
                "Device          CPU (asked {asked}; fell back: {})",
                c.reason
            ),
            (_, adapt_api::DevicePreference::Cpu) => println!("Device          CPU (asked cpu)"),
            _ => println!("Device          GPU (asked {asked}; {})", c.reason),
        }
    }
    for (key, value) in &device.gpu {
        // Sizes are bytes; the names say which ("memory_size", "total_memory", …).
        let shown = match value.parse::<u64>() {
            Ok(n) if key.contains("memory") || key.contains("size") => human_bytes(n),
            _ => value.clone(),
        };
        println!("  GPU {key:<11} {shown}");
    }
    println!(
        "CPU             {} ({} cores)",
        device.cpu, device.cpu_cores
    );
    println!(
        "Memory          {} total, {} available",
        human_bytes(device.total_memory),
        human_bytes(device.available_memory)
    );
    println!(
        "MLX memory      {} active, {} peak, {} cached",
        human_bytes(device.mlx_active_memory),
        human_bytes(device.mlx_peak_memory),
        human_bytes(device.mlx_cache_memory)
    );
    match &data_dir {
        Ok(root) => println!("Data directory  {}", root.display()),
        Err(e) => println!("Data directory  unusable [{}]: {}", e.code, e.message),
    }
    println!("Models cache    {}", dir.display());
    if models.is_empty() {
        println!(
            "                no .gguf models found; scripts/setup.sh installs {BUNDLED_MODEL}"
        );
    }
    for m in &models {
        let name = m.path.file_name().unwrap_or_default().to_string_lossy();
        match &m.architecture {
            Ok(arch) => println!("  {name}  {arch}  {}", human_bytes(m.bytes)),
            Err(e) => println!("  {name}  unreadable: {e}"),
        }
    }
    if let Some(hub) = &hub {
        println!(
            "Hugging Face    {} ({} models)",
            hub.display(),
            hub_models.len()
        );
    }
    for m in &hub_models {
        println!("  {}  {}  {}", m.repo_id, m.format, human_bytes(m.bytes));
    }
    Ok(())
}
