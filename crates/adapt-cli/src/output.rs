//! Terminal output shared by the commands: loading with progress, streamed text, stats lines,
//! errors, Ctrl-C that stops a generation rather than the program, and how sizes, counts and
//! times are written.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use adapt_api::{Adapt, ApiError, Generation, GenerationEvent, ModelInfo};
use anyhow::Result;

use crate::args::ModelArg;

/// Starts the engine for a command that computes; when `auto` put it on the CPU, says so and
/// why, once.
pub fn start() -> Result<Adapt> {
    let adapt = Adapt::start()?;
    let device = adapt.device_choice();
    if device.fell_back {
        eprintln!("Running on the CPU: {}.", device.reason);
    }
    Ok(adapt)
}

/// Starts the engine and loads `model`, telling the person what is happening.
pub fn start_with_model(model: &ModelArg) -> Result<Adapt> {
    start_with_adapter(model, None)
}

/// Starts the engine and loads `model` with `adapter` (a run id or an adapter folder).
pub fn start_with_adapter(model: &ModelArg, adapter: Option<&str>) -> Result<Adapt> {
    let adapt = start()?;
    let path = model.path(&adapt);
    let info = match adapter {
        None => load(&adapt, &path)?,
        Some(spec) => {
            let dir = adapt.resolve_adapter(spec)?;
            eprintln!(
                "Loading {} with the adapter in {} …",
                path.display(),
                dir.display()
            );
            adapt.load_model_with_adapter(&path, Some(&dir))?
        }
    };
    eprintln!(
        "{} · {} · {} parameters · {} file, held as {} · {} in memory · loaded in {:.1} s",
        info.name,
        info.architecture,
        human_count(info.n_params as f64),
        info.file_quantization,
        info.loaded_as,
        human_bytes(info.bytes as u64),
        info.load_seconds
    );
    Ok(adapt)
}

pub fn load(adapt: &Adapt, model: &Path) -> Result<ModelInfo, ApiError> {
    eprintln!("Loading {} …", model.display());
    adapt.load_model(model)
}

/// Ctrl-C: during a generation it stops the generation; otherwise it ends the program.
pub struct CtrlC {
    generating: &'static AtomicBool,
    pressed: &'static AtomicBool,
}

static GENERATING: AtomicBool = AtomicBool::new(false);
static PRESSED: AtomicBool = AtomicBool::new(false);
static INSTALLED: OnceLock<()> = OnceLock::new();

impl CtrlC {
    pub fn install() -> CtrlC {
        INSTALLED.get_or_init(|| {
            // If a handler cannot be installed, Ctrl-C keeps its default: ending the program.
            let _ = ctrlc::set_handler(|| {
                if GENERATING.load(Ordering::SeqCst) {
                    PRESSED.store(true, Ordering::SeqCst);
                } else {
                    eprintln!();
                    std::process::exit(130);
                }
            });
        });
        CtrlC {
            generating: &GENERATING,
            pressed: &PRESSED,
        }
    }

    /// Marks the start of a generation.
    pub fn arm(&self) {
        self.pressed.store(false, Ordering::SeqCst);
        self.generating.store(true, Ordering::SeqCst);
    }

    pub fn disarm(&self) {
        self.generating.store(false, Ordering::SeqCst);
    }

    pub fn pressed(&self) -> bool {
        self.pressed.load(Ordering::SeqCst)
    }
}

/// Prints streamed text to stdout and long prefills as progress on stderr.
#[derive(Default)]
pub struct Stream {
    prefill_started: Option<Instant>,
    showed_progress: bool,
    ends_with_newline: bool,
}

impl Stream {
    /// Handles one event; returns `false` to cancel the generation.
    pub fn event(&mut self, event: GenerationEvent, ctrl_c: &CtrlC) -> bool {
        match event {
            GenerationEvent::Prefill { done, total } => {
                let started = *self.prefill_started.get_or_insert_with(Instant::now);
                if done < total && started.elapsed().as_secs_f32() > 1.0 {
                    eprint!("\rprocessing prompt: {done}/{total} tokens");
                    self.showed_progress = true;
                } else if done == total && self.showed_progress {
                    eprint!("\r\x1b[K");
                }
            }
            GenerationEvent::Routed(r) => eprintln!("{}", routing_line(&r)),
            GenerationEvent::Text(text) => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(text.as_bytes());
                let _ = out.flush();
                self.ends_with_newline = text.ends_with('\n');
            }
        }
        !ctrl_c.pressed()
    }

    /// Ends the streamed text with a newline.
    pub fn finish(&mut self) {
        if !self.ends_with_newline {
            println!();
        }
        *self = Stream::default();
    }
}

/// Where a message went: `[topic 2 "bike chain slipping" · new: best 0.12 < 0.25]`.
pub fn routing_line(r: &adapt_api::Routing) -> String {
    let how = match (r.opened, r.picked, r.similarities.first()) {
        (true, true, _) => "new, as asked".to_string(),
        (true, false, None) => "new: the first topic".to_string(),
        (true, false, Some(best)) => format!(
            "new: closest is topic {} at {:.2} < {:.2}",
            best.topic, best.similarity, r.threshold
        ),
        (false, true, _) => "as asked".to_string(),
        (false, false, _) => {
            let others: Vec<String> = r
                .similarities
                .iter()
                .filter(|s| s.topic != r.topic)
                .map(|s| format!("{} {:.2}", s.topic, s.similarity))
                .collect();
            let mine = r
                .similarities
                .iter()
                .find(|s| s.topic == r.topic)
                .map_or(0.0, |s| s.similarity);
            match others.is_empty() {
                true => format!("similarity {mine:.2}"),
                false => format!("similarity {mine:.2}; others {}", others.join(", ")),
            }
        }
    };
    format!("[topic {} \"{}\" · {how}]", r.topic, r.name)
}

/// One line of figures for a response, on stderr.
pub fn print_stats(g: &Generation) {
    let s = &g.stats;
    let stop = g.stop_reason.map(|r| r.to_string()).unwrap_or_default();
    let left_out = match s.left_out_messages {
        0 => String::new(),
        n => format!(" · context full: the {n} oldest messages are left out"),
    };
    eprintln!(
        "[prompt {} tokens ({} reused, {} new) · first token {:.2} s · prefill {:.1} tok/s · \
         {} tokens at {:.1} tok/s · cache {} tokens, {} · peak {} · {}{left_out}]",
        s.prompt_tokens,
        s.reused_tokens,
        s.prefilled_tokens,
        s.time_to_first_token,
        s.prefill_tokens_per_second,
        s.generated_tokens,
        s.decode_tokens_per_second,
        s.cache_tokens,
        human_bytes(s.cache_bytes),
        human_bytes(s.peak_memory),
        stop
    );
}

/// Prints an error with its code and causes.
pub fn print_error(e: &anyhow::Error) {
    match e.downcast_ref::<ApiError>() {
        Some(api) => eprintln!("error [{}]: {}", api.code, api.message),
        None => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
        }
    }
}

pub fn human_bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        n if n >= 1e9 => format!("{:.2} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.0} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.0} kB", n / 1e3),
        n => format!("{n} B"),
    }
}

pub fn human_count(n: f64) -> String {
    match n {
        n if n >= 1e9 => format!("{:.1}B", n / 1e9),
        n if n >= 1e6 => format!("{:.0}M", n / 1e6),
        n => format!("{n}"),
    }
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

/// For a list command: prints `items` as JSON when asked, or `empty` when there are none.
/// Whether that said everything (no table to print).
pub fn listed_plainly<T: serde::Serialize>(items: &[T], json: bool, empty: &str) -> Result<bool> {
    if json {
        println!("{}", serde_json::to_string_pretty(items)?);
    } else if items.is_empty() {
        println!("{empty}");
    }
    Ok(json || items.is_empty())
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
