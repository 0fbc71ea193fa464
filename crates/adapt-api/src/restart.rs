//! Starting this program again on MLX's CPU runtime when the loaded runtime is MLX's CUDA
//! build and its GPU cannot be used (that build cannot compute without a device). The new
//! process finds the CPU runtime first in its library search path and carries the cause in
//! [`RESTARTED_ENV`], so its device choice says why it runs on the CPU, once.

use std::os::unix::process::CommandExt;
use std::process::Command;

use adapt_engine::runtime::{self, LIBRARY_PATH_ENV, RESTARTED_ENV};

use crate::error::{ApiError, ErrorCode};

/// Replaces this process with the same program and arguments on MLX's CPU runtime; returns
/// only when that cannot be done, with the cause and what to do.
pub(crate) fn on_cpu_runtime(cause: &str) -> ApiError {
    let refuse = |why: String| {
        ApiError::new(
            ErrorCode::DeviceGpuUnavailable,
            format!(
                "the GPU cannot be used: {cause}. This MLX runtime is the CUDA build, which takes \
                 all its memory (the CPU's too) from the CUDA driver, so Adapt starts again on \
                 MLX's CPU runtime, but {why}. Or fix the GPU (driver, CUDA_VISIBLE_DEVICES)"
            ),
        )
    };
    if std::env::var_os(RESTARTED_ENV).is_some() {
        return refuse(format!(
            "this process was already started again for that and loaded a CUDA runtime once more \
             ({LIBRARY_PATH_ENV} or the program's RUNPATH finds one first); set {} to MLX's CPU \
             runtime",
            runtime::CPU_RUNTIME_ENV
        ));
    }
    let found = match runtime::find_cpu_runtime() {
        Ok(found) => found,
        Err(why) => return refuse(why),
    };
    let program = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return refuse(format!("this program's own path is unknown ({e})")),
    };
    let mut args = std::env::args_os();
    let mut command = Command::new(&program);
    if let Some(name) = args.next() {
        command.arg0(name);
    }
    let error = command
        .args(args)
        .env(LIBRARY_PATH_ENV, &found.library_path)
        .env(RESTARTED_ENV, cause)
        .exec();
    refuse(format!(
        "starting {} again on the CPU runtime in {} failed: {error}",
        program.display(),
        found.dir.display()
    ))
}
