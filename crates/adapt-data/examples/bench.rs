//! The import benchmark without the CLI: `cargo run --release -p adapt-data --example bench --
//! MODEL.gguf [ROWS]` generates a Titanic CSV, prepares it (templates + chat template +
//! tokenizer + cache write) and prepares it again from the cache.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = args.next().ok_or("usage: bench MODEL.gguf [ROWS]")?;
    let rows: usize = args.next().map_or(Ok(50_000), |r| r.parse())?;
    let model = adapt_data::TextModel::from_gguf(std::path::Path::new(&model))?;
    let dir = tempfile::tempdir()?;
    let r = adapt_data::sample::bench(&model, rows, dir.path())?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    Ok(())
}
