//! `adapt generate`: one reply to one prompt, printed as it streams.

use anyhow::Result;
use clap::Args;

use crate::args::{ModelArg, SamplingArgs};
use crate::output;

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArg,
    /// The prompt.
    #[arg(long, short)]
    prompt: String,
    /// An adapter to generate with: a run id (`adapt runs list`) or an adapter folder (ours
    /// or mlx-lm's).
    /// `--adapter-path DIR` (mlx-lm's name) is the same.
    #[arg(long, visible_alias = "adapter-path")]
    adapter: Option<String>,
    /// Send the prompt as is, without the model's chat template.
    #[arg(long)]
    raw: bool,
    #[command(flatten)]
    sampling: SamplingArgs,
}

/// Generates the reply and prints it with its stats.
pub fn run(args: &GenerateArgs) -> Result<()> {
    let adapt = output::start_with_adapter(&args.model, args.adapter.as_deref())?;
    let cancel = output::CtrlC::install();
    let mut out = output::Stream::default();
    let generation = adapt.generate(&args.prompt, args.raw, &args.sampling.params(), |event| {
        out.event(event, &cancel)
    })?;
    out.finish();
    output::print_stats(&generation);
    Ok(())
}
