# Named by .cargo/config.toml as CMAKE_TOOLCHAIN_FILE for builds in this repository. It matters
# only when cargo runs mlx-sys's own build script (CMake builds MLX): on macOS it does nothing;
# on Linux that script cannot work, and it runs only when scripts/setup.sh has not prepared the
# MLX runtime (the generated .cargo/mlx-linux.toml replaces the script), so say what to run.
if(CMAKE_HOST_SYSTEM_NAME STREQUAL "Linux")
  message(FATAL_ERROR
    "\nThe MLX runtime for Linux is not prepared on this machine.\n"
    "Run `scripts/setup.sh` in the repository root (it installs MLX's CPU runtime and writes "
    ".cargo/mlx-linux.toml), then build again.\n")
endif()
