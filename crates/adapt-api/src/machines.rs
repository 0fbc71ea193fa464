//! The machines a group trains on, and whether each is ready: this one (rank 0) and the hosts
//! added to it, kept as a hostfile in MLX's format (`<data dir>/machines/hosts.json`, which
//! `adapt launch --hosts` reads too; this machine is the entry whose `ssh` is `localhost`).
//!
//! A check runs the machine's own `adapt` — over ssh with the options `adapt launch` uses, or
//! directly for this machine — asking for its [`MachineReport`] (version, memory, whether the
//! model and data paths are there), and turns each failure into a [`MachineCheck`] problem
//! that says what to do.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::adapt::Adapt;
use crate::error::{ApiError, ErrorCode};
pub use crate::launch::THIS_MACHINE;
use crate::launch::{check_host, read_hosts, Host};

/// The hidden `adapt` subcommand that prints a [`MachineReport`] as JSON.
pub const REPORT_COMMAND: &str = "machine-report";

/// How long a check waits for a machine's answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// What a machine's `adapt` says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MachineReport {
    /// Adapt's version there.
    pub version: String,
    /// MLX's backend there (`metal`, `cpu`, `cuda`).
    pub backend: String,
    /// Bytes.
    pub total_memory: u64,
    /// Bytes.
    pub available_memory: u64,
    /// Each asked path and whether it exists there.
    pub paths: Vec<PathPresence>,
}

/// Whether a path exists on a machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PathPresence {
    pub path: String,
    pub present: bool,
}

/// One machine's check: reachable, its report, and what stands in the way of training there.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct MachineCheck {
    pub ssh: String,
    /// Ready to train: reachable, the same Adapt, the model and data there.
    pub ok: bool,
    /// The machine answered (over ssh, or this machine's `adapt` ran).
    pub reachable: bool,
    pub report: Option<MachineReport>,
    /// Each problem with what to do about it.
    pub problems: Vec<String>,
}

impl Adapt {
    /// This machine's report: Adapt's version, the backend, memory, and which of `paths`
    /// exist here.
    pub fn machine_report(&self, paths: &[PathBuf]) -> Result<MachineReport, ApiError> {
        let device = self.device()?;
        Ok(MachineReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            backend: format!("{:?}", device.backend).to_lowercase(),
            total_memory: device.total_memory,
            available_memory: device.available_memory,
            paths: paths
                .iter()
                .map(|p| PathPresence {
                    path: p.display().to_string(),
                    present: p.exists(),
                })
                .collect(),
        })
    }

    /// The hostfile of the app's machines.
    pub fn machines_file(&self) -> Result<PathBuf, ApiError> {
        Ok(self.data_dir()?.root().join("machines").join("hosts.json"))
    }

    /// The machines kept: this one first, then the added hosts (this one alone when none
    /// were saved).
    pub fn machines(&self) -> Result<Vec<Host>, ApiError> {
        let file = self.machines_file()?;
        if !file.exists() {
            return Ok(vec![this_machine(Vec::new())]);
        }
        let hosts = read_hosts(&file)?;
        check_machines(&hosts, &file)?;
        Ok(hosts)
    }

    /// Checks and keeps `hosts` (this machine first) as the app's hostfile.
    pub fn save_machines(&self, hosts: &[Host]) -> Result<(), ApiError> {
        let file = self.machines_file()?;
        check_machines(hosts, &file)?;
        for (i, h) in hosts.iter().enumerate() {
            check_host(i, h).map_err(|m| {
                ApiError::new(
                    ErrorCode::LaunchBadHosts,
                    format!("{}: {m}", file.display()),
                )
            })?;
        }
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(|e| ApiError::io("create", dir, e))?;
        }
        let text = serde_json::to_string_pretty(hosts).map_err(|e| {
            ApiError::new(ErrorCode::ApiInternal, format!("cannot write hosts: {e}"))
        })?;
        std::fs::write(&file, text).map_err(|e| ApiError::io("write", &file, e))
    }
}

/// The `adapt` command-line program that starts a group's ranks: beside `beside` (the app's
/// own executable's folder), else on the PATH.
pub fn find_adapt_program(beside: Option<&Path>) -> Result<PathBuf, ApiError> {
    let name = format!("adapt{}", std::env::consts::EXE_SUFFIX);
    let path = std::env::var_os("PATH").unwrap_or_default();
    beside
        .map(Path::to_path_buf)
        .into_iter()
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(&name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::LaunchNoProgram,
                format!(
                    "Adapt's command-line program `{name}` is neither beside the app{} nor on \
                     the PATH; training on several machines starts it on each one: install it \
                     (see the README) and start the app again",
                    beside.map_or(String::new(), |d| format!(" ({})", d.display()))
                ),
            )
        })
}

/// This machine's entry, with the addresses the others reach it at.
pub fn this_machine(ips: Vec<String>) -> Host {
    Host {
        ssh: THIS_MACHINE.to_string(),
        ips,
        adapt: None,
    }
}

/// The app's hostfile has this machine first and only there.
fn check_machines(hosts: &[Host], file: &Path) -> Result<(), ApiError> {
    let bad = |m: String| {
        ApiError::new(
            ErrorCode::LaunchBadHosts,
            format!("{}: {m}", file.display()),
        )
    };
    if hosts.first().is_none_or(|h| h.ssh != THIS_MACHINE) {
        return Err(bad(format!(
            "entry 0 must be this machine (\"ssh\": \"{THIS_MACHINE}\"), which runs rank 0"
        )));
    }
    if let Some(i) = hosts.iter().skip(1).position(|h| h.ssh == THIS_MACHINE) {
        return Err(bad(format!(
            "entry {}: this machine is listed twice",
            i + 1
        )));
    }
    Ok(())
}

/// Checks `host`: runs its `adapt` (for [`THIS_MACHINE`], the program found beside `beside`
/// or on the PATH; over ssh otherwise) asking whether `paths` (the model and the data) are
/// there.
pub fn check_machine(host: &Host, beside: Option<&Path>, paths: &[PathBuf]) -> MachineCheck {
    let local = host.ssh == THIS_MACHINE;
    let program = match (local, &host.adapt) {
        (true, None) => match find_adapt_program(beside) {
            Ok(p) => p,
            Err(e) => return unready(host, false, e.message),
        },
        (_, Some(p)) => PathBuf::from(p),
        (false, None) => PathBuf::from("adapt"),
    };
    let program = program.as_path();
    let remote_program = host.adapt.clone().unwrap_or_else(|| "adapt".into());
    let mut args = vec![REPORT_COMMAND.to_string()];
    args.extend(paths.iter().map(|p| p.display().to_string()));
    let mut command = match local {
        true => {
            let mut c = Command::new(program);
            c.args(&args);
            c
        }
        false => {
            let mut c = Command::new("ssh");
            let line: Vec<String> = std::iter::once(remote_program.clone())
                .chain(args)
                .map(|a| crate::launch::quote(&a))
                .collect();
            c.args(["-o", "LogLevel=QUIET", "-o", "BatchMode=yes"])
                .args(["-o", "ConnectTimeout=10"])
                .arg(&host.ssh)
                .arg(line.join(" "));
            c
        }
    };
    let outcome = run_with_timeout(&mut command, CHECK_TIMEOUT);
    judge(host, local, program, &remote_program, outcome)
}

fn unready(host: &Host, reachable: bool, problem: String) -> MachineCheck {
    MachineCheck {
        ssh: host.ssh.clone(),
        ok: false,
        reachable,
        report: None,
        problems: vec![problem],
    }
}

/// What a check's process did: its exit code (`None`: killed or timed out) and output, or
/// why it could not start.
type Ran = Result<(Option<i32>, String, String), std::io::Error>;

fn run_with_timeout(command: &mut Command, limit: Duration) -> Ran {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut pipes = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ];
    let readers: Vec<_> = pipes
        .iter_mut()
        .map(|p| {
            let mut pipe = p.take();
            std::thread::spawn(move || {
                let mut text = String::new();
                if let Some(pipe) = pipe.as_mut() {
                    let _ = pipe.read_to_string(&mut text);
                }
                text
            })
        })
        .collect();
    let started = Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait()? {
            break status.code();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut texts = readers.into_iter().map(|r| r.join().unwrap_or_default());
    let (out, err) = (
        texts.next().unwrap_or_default(),
        texts.next().unwrap_or_default(),
    );
    Ok((code, out, err))
}

/// A check's result from what its process did.
fn judge(host: &Host, local: bool, program: &Path, remote_program: &str, ran: Ran) -> MachineCheck {
    let mut check = MachineCheck {
        ssh: host.ssh.clone(),
        ok: false,
        reachable: false,
        report: None,
        problems: Vec::new(),
    };
    let name = &host.ssh;
    let last_line = |err: &str| err.trim().lines().last().unwrap_or("").to_string();
    match ran {
        Err(e) if local => check.problems.push(format!(
            "cannot run Adapt's command-line program {} here ({e}); install the `adapt` \
             command (it ships beside the app) or put it on the PATH",
            program.display()
        )),
        Err(e) => check.problems.push(format!(
            "cannot run ssh ({e}); install OpenSSH's client to train on other machines"
        )),
        Ok((None, _, _)) => check.problems.push(format!(
            "{name} did not answer within {} s; check that it is on and on the network",
            CHECK_TIMEOUT.as_secs()
        )),
        Ok((Some(255), _, err)) if !local => check.problems.push(format!(
            "cannot reach {name} over ssh ({}); turn on Remote Login there (System Settings → \
             General → Sharing) and set up key login from this machine: `ssh-copy-id {name}`, \
             then `ssh {name}` must log in without a password",
            last_line(&err)
        )),
        Ok((Some(127), _, _)) => {
            check.reachable = true;
            check.problems.push(format!(
                "Adapt is not installed on {name} (`{remote_program}` was not found); install \
                 it there, or set the host's \"adapt\" to the program's full path"
            ));
        }
        Ok((Some(code), out, err)) => {
            check.reachable = true;
            match serde_json::from_str::<MachineReport>(out.trim()) {
                Ok(report) if code == 0 => {
                    check.problems = report_problems(name, &report);
                    check.report = Some(report);
                }
                _ => check.problems.push(format!(
                    "Adapt on {name} could not report (status {code}: {}); install the same \
                     version of Adapt as here ({})",
                    last_line(&err),
                    env!("CARGO_PKG_VERSION")
                )),
            }
        }
    }
    check.ok = check.problems.is_empty();
    check
}

/// What in a machine's report stands in the way: another version, a missing model or data.
fn report_problems(name: &str, report: &MachineReport) -> Vec<String> {
    let mut problems = Vec::new();
    let here = env!("CARGO_PKG_VERSION");
    if report.version != here {
        problems.push(format!(
            "{name} runs Adapt {} and this machine {here}; install the same version on every \
             machine",
            report.version
        ));
    }
    for p in report.paths.iter().filter(|p| !p.present) {
        problems.push(format!(
            "{} is not on {name}; copy it there to the same path (e.g. `rsync -a {} {name}:{}`)",
            p.path, p.path, p.path
        ));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(ssh: &str) -> Host {
        Host {
            ssh: ssh.into(),
            ips: vec!["10.0.0.2".into()],
            adapt: None,
        }
    }

    fn report(version: &str, present: bool) -> MachineReport {
        MachineReport {
            version: version.into(),
            backend: "metal".into(),
            total_memory: 64 << 30,
            available_memory: 40 << 30,
            paths: vec![
                PathPresence {
                    path: "/m/model.gguf".into(),
                    present: true,
                },
                PathPresence {
                    path: "/d/train.jsonl".into(),
                    present,
                },
            ],
        }
    }

    fn judged(ran: Ran) -> MachineCheck {
        judge(&host("mac-b"), false, Path::new("adapt"), "adapt", ran)
    }

    #[test]
    fn each_failure_says_what_to_do() {
        let unreachable = judged(Ok((Some(255), String::new(), "Permission denied".into())));
        assert!(!unreachable.reachable && !unreachable.ok);
        assert!(unreachable.problems[0].contains("ssh-copy-id mac-b"));
        assert!(unreachable.problems[0].contains("Permission denied"));
        let missing = judged(Ok((Some(127), String::new(), String::new())));
        assert!(missing.reachable && missing.problems[0].contains("not installed on mac-b"));
        let old = judged(Ok((
            Some(2),
            String::new(),
            "unrecognized subcommand".into(),
        )));
        assert!(old.problems[0].contains("same version"), "{old:?}");
        let silent = judged(Ok((None, String::new(), String::new())));
        assert!(silent.problems[0].contains("did not answer"));
    }

    #[test]
    fn a_report_is_judged_on_version_and_paths() {
        let here = env!("CARGO_PKG_VERSION");
        let text = |r: &MachineReport| serde_json::to_string(r).unwrap();
        let good = judged(Ok((Some(0), text(&report(here, true)), String::new())));
        assert!(good.ok && good.problems.is_empty(), "{good:?}");
        assert_eq!(good.report.unwrap().available_memory, 40 << 30);
        let bad = judged(Ok((Some(0), text(&report("0.0.1", false)), String::new())));
        assert!(!bad.ok);
        assert!(bad.problems[0].contains("runs Adapt 0.0.1"));
        assert!(bad.problems[1].starts_with("/d/train.jsonl is not on mac-b"));
    }

    #[test]
    fn the_program_is_found_beside_the_app_or_said_missing() {
        let dir = tempfile::tempdir().unwrap();
        let program = dir
            .path()
            .join(format!("adapt{}", std::env::consts::EXE_SUFFIX));
        std::fs::write(&program, "").unwrap();
        assert_eq!(find_adapt_program(Some(dir.path())).unwrap(), program);
        let empty = tempfile::tempdir().unwrap();
        if let Err(e) = find_adapt_program(Some(empty.path())) {
            assert_eq!(e.code, ErrorCode::LaunchNoProgram);
            assert!(e.message.contains("install it"), "{e:?}");
        }
    }

    #[test]
    fn the_app_keeps_this_machine_first() {
        let file = Path::new("/x/hosts.json");
        assert!(check_machines(&[this_machine(vec![]), host("mac-b")], file).is_ok());
        let e = check_machines(&[host("mac-b")], file).unwrap_err();
        assert!(e.message.contains("entry 0 must be this machine"), "{e:?}");
        let twice = [this_machine(vec![]), this_machine(vec![])];
        assert!(check_machines(&twice, file)
            .unwrap_err()
            .message
            .contains("listed twice"));
    }
}
