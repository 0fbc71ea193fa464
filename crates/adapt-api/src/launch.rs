//! Starting a group of processes that train together (`adapt launch`): one command per rank —
//! on this machine over loopback, or on other machines over ssh from MLX's hostfile format —
//! each with MLX's environment contract set (`MLX_RANK`, `MLX_HOSTFILE` for the ring;
//! `MLX_WORLD_SIZE`, `NCCL_HOST_IP`, `NCCL_PORT` for NCCL), their output lines handed back
//! with their rank, and every rank stopped when one fails.
//!
//! A rank runs the same shell script locally (`bash -c`) and remotely (`ssh host`), as
//! `mlx.launch` does: change to the working folder, write the ring's hostfile into a temporary
//! file, export the variables, and `exec` the program.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use adapt_engine::distributed::{loopback_hostfile, DistBackend, Membership, BACKEND_VAR};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ErrorCode};

/// The first port of the ring on other machines (`mlx.launch`'s default).
pub const DEFAULT_PORT: u16 = 32323;

/// This process's rank and its group's size, when it was started as a rank (from MLX's
/// environment contract; nothing is joined yet).
pub fn this_rank() -> Result<Option<(usize, usize)>, ApiError> {
    let membership = Membership::from_vars(|k| std::env::var(k).ok()).map_err(ApiError::from)?;
    Ok(membership.map(|m| (m.rank, m.size)))
}

/// The `ssh` of a hostfile entry that is this machine: its rank runs here, without ssh.
pub const THIS_MACHINE: &str = "localhost";

/// One machine of a hostfile, in MLX's format (`mlx.launch --hostfile`):
/// `{"ssh": "name", "ips": ["10.0.0.2"]}`, plus Adapt's optional `adapt` (the program's
/// path on that machine; `adapt` on its PATH otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Host {
    pub ssh: String,
    #[serde(default)]
    pub ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapt: Option<String>,
}

/// Reads a hostfile: a JSON list of [`Host`]s, one per rank in rank order.
pub fn read_hosts(path: &Path) -> Result<Vec<Host>, ApiError> {
    let bad = |what: String| {
        ApiError::new(
            ErrorCode::LaunchBadHosts,
            format!(
                "{}: {what}; a hostfile is a JSON list like \
                 [{{\"ssh\": \"mac-1.local\", \"ips\": [\"10.0.0.1\"]}}, …], one entry per rank",
                path.display()
            ),
        )
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let hosts: Vec<serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a JSON list ({e})")))?;
    if hosts.is_empty() {
        return Err(bad("no hosts".into()));
    }
    hosts
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let host: Host = serde_json::from_value(v).map_err(|e| {
                bad(format!(
                    "entry {i}: {e} (\"ssh\" is a string, \"ips\" a list)"
                ))
            })?;
            check_host(i, &host).map_err(bad)?;
            Ok(host)
        })
        .collect()
}

/// What is wrong with entry `i` of a hostfile, if anything.
pub(crate) fn check_host(i: usize, host: &Host) -> Result<(), String> {
    if host.ssh.trim().is_empty() {
        return Err(format!("entry {i}: \"ssh\" is empty"));
    }
    if host.ssh.starts_with('-') || host.ssh.contains(char::is_whitespace) {
        return Err(format!(
            "entry {i}: \"{}\" is not a host name for ssh",
            host.ssh
        ));
    }
    if let Some(ip) = host
        .ips
        .iter()
        .find(|ip| ip.trim().is_empty() || ip.contains(':') || ip.contains(char::is_whitespace))
    {
        return Err(format!(
            "entry {i}: \"{ip}\" is not an address (give the IP alone; ports are chosen)"
        ));
    }
    Ok(())
}

/// What to start: `processes` ranks here, or one per host of `hosts`.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub processes: Option<usize>,
    pub hosts: Option<Vec<Host>>,
    pub backend: DistBackend,
    /// First port for the ring (other machines) or NCCL's port.
    pub port: u16,
    /// The program on this machine (local ranks).
    pub program: PathBuf,
    /// Its arguments (`train …`).
    pub args: Vec<String>,
    /// The working folder the ranks change to when it exists there.
    pub cwd: PathBuf,
}

/// How one rank is started: a script run by `bash -c` here or by `ssh` on its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RankCommand {
    pub rank: usize,
    /// The machine (`None`: this one).
    pub host: Option<String>,
    pub script: String,
}

impl RankCommand {
    fn command(&self) -> Command {
        match &self.host {
            None => {
                let mut c = Command::new("bash");
                c.arg("-c").arg(&self.script);
                c
            }
            Some(host) => {
                let mut c = Command::new("ssh");
                // A terminal so the remote program ends when the connection does.
                c.args(["-tt", "-o", "LogLevel=QUIET", "-o", "BatchMode=yes"])
                    .arg(host)
                    .arg(&self.script);
                c
            }
        }
    }
}

/// The commands that start every rank of `spec`.
pub fn plan(spec: &LaunchSpec) -> Result<Vec<RankCommand>, ApiError> {
    let bad = |m: String| ApiError::new(ErrorCode::LaunchBadHosts, m);
    let local = |n: usize| -> Vec<(Option<String>, Vec<String>, String)> {
        let program = spec.program.display().to_string();
        (0..n)
            .map(|_| (None, vec!["127.0.0.1".to_string()], program.clone()))
            .collect()
    };
    let machines = match (&spec.hosts, spec.processes) {
        (Some(hosts), _) => hosts
            .iter()
            .map(|h| match h.ssh == THIS_MACHINE {
                true => {
                    let here = spec.program.display().to_string();
                    (None, h.ips.clone(), h.adapt.clone().unwrap_or(here))
                }
                false => {
                    let program = h.adapt.clone().unwrap_or_else(|| "adapt".into());
                    (Some(h.ssh.clone()), h.ips.clone(), program)
                }
            })
            .collect(),
        (None, Some(n)) if n >= 1 => local(n),
        (None, _) => {
            return Err(bad(
                "give -n N (ranks on this machine) or --hosts FILE".into()
            ))
        }
    };
    let size = machines.len();
    let common = group_env(spec, &machines)?;
    Ok(machines
        .into_iter()
        .enumerate()
        .map(|(rank, (host, _, program))| {
            let mut env = common.clone();
            env.push(("MLX_RANK".into(), rank.to_string()));
            env.push((BACKEND_VAR.into(), spec.backend.name().into()));
            if spec.backend == DistBackend::Nccl && host.is_none() {
                env.push(("CUDA_VISIBLE_DEVICES".into(), (rank % size).to_string()));
            }
            let script = script(&spec.cwd, &env, &program, &spec.args);
            RankCommand { rank, host, script }
        })
        .collect())
}

/// What every rank gets: the ring's hostfile (its content; each rank writes it to a file) or
/// NCCL's address. A `(name, value)` whose name starts with `@` is a file to write.
fn group_env(
    spec: &LaunchSpec,
    machines: &[(Option<String>, Vec<String>, String)],
) -> Result<Vec<(String, String)>, ApiError> {
    let size = machines.len();
    let local = spec.hosts.is_none();
    let no_ip = |i: usize| {
        ApiError::new(
            ErrorCode::LaunchBadHosts,
            format!(
                "host {i} has no \"ips\"; the {} backend needs its address",
                spec.backend.name()
            ),
        )
    };
    match spec.backend {
        DistBackend::Nccl => {
            let ip = machines[0].1.first().ok_or_else(|| no_ip(0))?;
            let port = match local {
                true => free_port()?,
                false => spec.port,
            };
            Ok(vec![
                ("NCCL_HOST_IP".into(), ip.clone()),
                ("NCCL_PORT".into(), port.to_string()),
                ("MLX_WORLD_SIZE".into(), size.to_string()),
            ])
        }
        _ => {
            let hostfile = match local {
                true => {
                    loopback_hostfile(size).map_err(|e| spawn_error("the loopback ports", e))?
                }
                false => {
                    let mut port = spec.port;
                    let mut ranks = Vec::new();
                    for (i, (_, ips, _)) in machines.iter().enumerate() {
                        if ips.is_empty() {
                            return Err(no_ip(i));
                        }
                        let mut addresses = Vec::new();
                        for ip in ips {
                            addresses.push(format!("{ip}:{port}"));
                            port = port.wrapping_add(1);
                        }
                        ranks.push(addresses);
                    }
                    serde_json::to_string(&ranks).unwrap_or_default()
                }
            };
            Ok(vec![("@MLX_HOSTFILE".into(), hostfile)])
        }
    }
}

fn free_port() -> Result<u16, ApiError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| spawn_error("a free port", e))
}

fn spawn_error(what: &str, e: std::io::Error) -> ApiError {
    ApiError::new(ErrorCode::LaunchSpawn, format!("cannot start {what}: {e}"))
}

/// `s` quoted for a POSIX shell.
pub(crate) fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The shell script of one rank.
fn script(cwd: &Path, env: &[(String, String)], program: &str, args: &[String]) -> String {
    let mut s = format!("cd {} 2>/dev/null; ", quote(&cwd.display().to_string()));
    for (name, value) in env {
        match name.strip_prefix('@') {
            Some(file_var) => s.push_str(&format!(
                "f=$(mktemp) && printf '%s' {} > \"$f\" && export {file_var}=\"$f\"; ",
                quote(value)
            )),
            None => s.push_str(&format!("export {name}={}; ", quote(value))),
        }
    }
    s.push_str("exec ");
    s.push_str(&quote(program));
    for a in args {
        s.push(' ');
        s.push_str(&quote(a));
    }
    s
}

/// How a rank ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RankExit {
    pub rank: usize,
    pub code: Option<i32>,
    /// Stopped by the launcher because another rank failed.
    pub stopped: bool,
}

/// Starts every rank, hands each output line to `on_line` with its rank, and waits. When a
/// rank fails, the others are stopped and the error names it.
/// `on_start` hears each rank's process id (for a remote rank, its ssh's).
pub fn run(
    commands: &[RankCommand],
    on_start: impl Fn(usize, u32),
    on_line: impl Fn(usize, &str) + Send + Sync + 'static,
) -> Result<Vec<RankExit>, ApiError> {
    let on_line = Arc::new(on_line);
    let mut children: Vec<Child> = Vec::new();
    let mut readers = Vec::new();
    for c in commands {
        let spawned = c
            .command()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                stop_all(&mut children);
                return Err(spawn_error(&format!("rank {}", c.rank), e));
            }
        };
        let out: Vec<Box<dyn Read + Send>> = vec![
            Box::new(child.stdout.take().expect("piped")),
            Box::new(child.stderr.take().expect("piped")),
        ];
        for stream in out {
            let (rank, on_line) = (c.rank, on_line.clone());
            readers.push(std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    on_line(rank, &line);
                }
            }));
        }
        on_start(c.rank, child.id());
        children.push(child);
    }
    let exits = watch(&mut children);
    for r in readers {
        let _ = r.join();
    }
    // Ranks that died first, then those that failed after them (losing their peers).
    let mut failed: Vec<&RankExit> = exits
        .iter()
        .filter(|e| !e.stopped && e.code != Some(0))
        .collect();
    if failed.is_empty() {
        return Ok(exits);
    }
    failed.sort_by_key(|e| e.code.is_some());
    let what: Vec<String> = failed
        .iter()
        .map(|e| match e.code {
            Some(code) => format!("rank {} exited with status {code}", e.rank),
            None => format!("rank {} was killed", e.rank),
        })
        .collect();
    Err(ApiError::new(
        ErrorCode::LaunchRankFailed,
        format!(
            "{}; the other ranks were stopped. The run keeps rank 0's newest checkpoint: \
             launch the group again with `train --resume RUN`",
            what.join(", ")
        ),
    ))
}

/// How long the other ranks get, after one failed, to end on their own (they notice the lost
/// peer and record how their run ended) before they are killed.
const GRACE: Duration = Duration::from_secs(5);

/// Waits for every child; once one fails, stops the rest.
fn watch(children: &mut [Child]) -> Vec<RankExit> {
    let mut exits: Vec<Option<RankExit>> = vec![None; children.len()];
    let mut failed_at: Option<std::time::Instant> = None;
    loop {
        for (rank, child) in children.iter_mut().enumerate() {
            if exits[rank].is_some() {
                continue;
            }
            if let Ok(Some(status)) = child.try_wait() {
                if !status.success() {
                    failed_at.get_or_insert_with(std::time::Instant::now);
                }
                exits[rank] = Some(RankExit {
                    rank,
                    code: status.code(),
                    stopped: false,
                });
            }
        }
        if failed_at.is_some_and(|t| t.elapsed() >= GRACE) {
            for (rank, child) in children.iter_mut().enumerate() {
                if exits[rank].is_none() {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    exits[rank] = Some(RankExit {
                        rank,
                        code: status.and_then(|s| s.code()),
                        stopped: true,
                    });
                }
            }
        }
        if exits.iter().all(Option::is_some) {
            return exits.into_iter().flatten().collect();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop_all(children: &mut [Child]) {
    for c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(processes: Option<usize>, hosts: Option<Vec<Host>>) -> LaunchSpec {
        LaunchSpec {
            processes,
            hosts,
            backend: DistBackend::Ring,
            port: DEFAULT_PORT,
            program: PathBuf::from("/opt/adapt's/adapt"),
            args: vec!["train".into(), "--data".into(), "a b.jsonl".into()],
            cwd: PathBuf::from("/work"),
        }
    }

    #[test]
    fn local_ranks_get_a_loopback_ring() {
        let commands = plan(&spec(Some(2), None)).unwrap();
        assert_eq!(commands.len(), 2);
        assert!(commands.iter().all(|c| c.host.is_none()));
        assert!(commands[1].script.contains("export MLX_RANK='1'"));
        assert!(commands[0].script.contains("127.0.0.1:"));
        assert!(commands[0]
            .script
            .ends_with(r"exec '/opt/adapt'\''s/adapt' 'train' '--data' 'a b.jsonl'"));
    }

    #[test]
    fn hosts_get_ports_in_mlx_order_and_run_over_ssh() {
        let hosts = vec![
            Host {
                ssh: "mac-a".into(),
                ips: vec!["10.0.0.1".into()],
                adapt: None,
            },
            Host {
                ssh: "mac-b".into(),
                ips: vec!["10.0.0.2".into()],
                adapt: Some("/Applications/Adapt.app/Contents/MacOS/adapt".into()),
            },
        ];
        let commands = plan(&spec(None, Some(hosts))).unwrap();
        assert_eq!(commands[1].host.as_deref(), Some("mac-b"));
        let ring = r#"[["10.0.0.1:32323"],["10.0.0.2:32324"]]"#;
        assert!(commands[0].script.contains(ring), "{}", commands[0].script);
        assert!(commands[0].script.contains("exec 'adapt' 'train'"));
        assert!(commands[1].script.contains("/Applications/Adapt.app"));
        // This machine's entry runs here, with this program.
        let mut hosts = vec![Host {
            ssh: THIS_MACHINE.into(),
            ips: vec!["10.0.0.9".into()],
            adapt: None,
        }];
        hosts.push(commands_host("mac-b"));
        let commands = plan(&spec(None, Some(hosts))).unwrap();
        assert_eq!(commands[0].host, None);
        assert!(commands[0]
            .script
            .contains(r"exec '/opt/adapt'\''s/adapt' 'train'"));
        assert!(commands[0].script.contains("10.0.0.9:32323"));
        assert_eq!(commands[1].host.as_deref(), Some("mac-b"));
    }

    fn commands_host(ssh: &str) -> Host {
        Host {
            ssh: ssh.into(),
            ips: vec!["10.0.0.2".into()],
            adapt: None,
        }
    }

    #[test]
    fn bad_hostfiles_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("[]", "no hosts"),
            ("{}", "not a JSON list"),
            (r#"[{"ips": ["1.2.3.4"]}]"#, "entry 0"),
            (r#"[{"ssh": "a", "ips": ["1.2.3.4:5"]}]"#, "not an address"),
            (
                r#"[{"ssh": "-oProxyCommand=x", "ips": []}]"#,
                "not a host name",
            ),
        ];
        for (text, expected) in cases {
            let path = dir.path().join("hosts.json");
            std::fs::write(&path, text).unwrap();
            let e = read_hosts(&path).unwrap_err();
            assert_eq!(e.code, ErrorCode::LaunchBadHosts);
            assert!(
                e.message.contains(expected) && e.message.contains("hosts.json"),
                "{e:?}"
            );
        }
        let e = plan(&spec(None, None)).unwrap_err();
        assert!(e.message.contains("-n N"), "{e:?}");
    }

    #[test]
    fn a_failing_rank_stops_the_others() {
        let mut commands = plan(&spec(Some(2), None)).unwrap();
        commands[0].script = "echo up; exec sleep 30".into();
        commands[1].script = "echo $MLX_RANK; exit 3".into();
        commands[1].script = format!("export MLX_RANK=1; {}", commands[1].script);
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = lines.clone();
        let started = std::time::Instant::now();
        let e = run(
            &commands,
            |_, _| {},
            move |r, l| seen.lock().unwrap().push(format!("{r}:{l}")),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(20));
        assert_eq!(e.code, ErrorCode::LaunchRankFailed);
        assert!(e.message.contains("rank 1 exited with status 3"), "{e:?}");
        assert!(lines.lock().unwrap().contains(&"1:1".to_string()));
    }
}
