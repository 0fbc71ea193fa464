//! Build-time check only (see `build.rs`): on Linux, refuses to build the engine until
//! `scripts/setup.sh` has prepared the MLX runtime, and says so. It has no code to call.
