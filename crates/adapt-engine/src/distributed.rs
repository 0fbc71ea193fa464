//! A group of processes training together on MLX's own distributed engine (`mx.distributed`):
//! a small safe wrapper over mlx-c's distributed API — join with a backend name, rank, size,
//! `all_sum`, `all_gather`, a barrier and a broadcast from rank 0 built on `all_sum`.
//!
//! Adapt writes no transport: the ring backend (TCP over Ethernet or Thunderbolt), MPI, JACCL
//! and NCCL are MLX's, configured through MLX's environment contract, which [`Membership`]
//! reads and checks first so that a bad set-up gets a message naming the variable:
//! - ring: `MLX_RANK` and `MLX_HOSTFILE` (a JSON list, one entry per rank, of that rank's
//!   `"ip:port"` addresses);
//! - NCCL: `MLX_RANK`, `MLX_WORLD_SIZE`, `NCCL_HOST_IP` and `NCCL_PORT`.
//!
//! MLX keeps one group per process; [`world`] joins it once, when the process was started as a
//! rank (`adapt launch` sets the variables), and is `None` otherwise.

use std::ffi::CString;
use std::path::PathBuf;
use std::sync::OnceLock;

use mlx_rs::error::Exception;
use mlx_rs::{Array, Stream};

/// Everything joining or talking to a group can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DistributedError {
    /// The environment that says which rank this process is, is incomplete or wrong.
    #[error("distributed set-up: {0}")]
    Config(String),
    /// MLX could not start the backend (unavailable, or the peers never connected).
    #[error("cannot join the group over MLX's {backend} backend: {message}")]
    Init { backend: String, message: String },
    /// A collective failed: a peer stopped or the network went away.
    #[error(
        "rank {rank} of {size} lost its peers ({message}); the run stays resumable from its \
         newest checkpoint: start the group again with --resume"
    )]
    PeerLost {
        rank: usize,
        size: usize,
        message: String,
    },
    /// The ranks disagree about the run (batch size, data, configuration).
    #[error("{0}")]
    Mismatch(String),
}

impl DistributedError {
    /// A stable, machine-readable code for this error.
    pub fn code(&self) -> &'static str {
        match self {
            DistributedError::Config(_) => "distributed.config",
            DistributedError::Init { .. } => "distributed.init",
            DistributedError::PeerLost { .. } => "distributed.peer_lost",
            DistributedError::Mismatch(_) => "distributed.mismatch",
        }
    }
}

type Result<T, E = DistributedError> = std::result::Result<T, E>;

/// One of MLX's distributed backends, by the name MLX knows it by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DistBackend {
    /// Whichever MLX finds available.
    Any,
    /// TCP between hosts (Ethernet, Thunderbolt), MLX's default.
    Ring,
    Mpi,
    /// RDMA over Thunderbolt 5.
    Jaccl,
    /// NVIDIA GPUs.
    Nccl,
}

impl DistBackend {
    /// The name mlx-c's `mlx_distributed_init` takes.
    pub fn name(self) -> &'static str {
        match self {
            DistBackend::Any => "any",
            DistBackend::Ring => "ring",
            DistBackend::Mpi => "mpi",
            DistBackend::Jaccl => "jaccl",
            DistBackend::Nccl => "nccl",
        }
    }

    /// The backend named `name` (as `mlx.launch --backend` spells it).
    pub fn parse(name: &str) -> Result<DistBackend> {
        Ok(match name {
            "any" => DistBackend::Any,
            "ring" => DistBackend::Ring,
            "mpi" => DistBackend::Mpi,
            "jaccl" => DistBackend::Jaccl,
            "nccl" => DistBackend::Nccl,
            other => {
                return Err(DistributedError::Config(format!(
                    "unknown backend '{other}'; use ring, nccl, mpi, jaccl or any"
                )))
            }
        })
    }

    /// Whether this libmlx was built with the backend.
    pub fn available(self) -> bool {
        let name = CString::new(self.name()).unwrap_or_default();
        // SAFETY: a valid NUL-terminated string; the call only reads it.
        unsafe { mlx_sys::mlx_distributed_is_available(name.as_ptr()) }
    }
}

/// The variable that names a process's backend (`ring` unless set; `adapt launch` sets it).
pub const BACKEND_VAR: &str = "ADAPT_DIST_BACKEND";

/// Which rank this process is, from MLX's environment contract, checked before MLX reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub backend: DistBackend,
    pub rank: usize,
    pub size: usize,
    /// The ring's hostfile.
    pub hostfile: Option<PathBuf>,
}

impl Membership {
    /// The membership `var` describes, `None` when no rank variable is set (a process of its
    /// own).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Membership>> {
        let Some(rank) = var("MLX_RANK") else {
            return Ok(None);
        };
        let rank: usize = rank.trim().parse().map_err(|_| {
            DistributedError::Config(format!(
                "MLX_RANK='{rank}' is not a rank; it must be 0, 1, …"
            ))
        })?;
        let backend = match var(BACKEND_VAR) {
            Some(name) => DistBackend::parse(name.trim())?,
            None if var("NCCL_HOST_IP").is_some() => DistBackend::Nccl,
            None => DistBackend::Ring,
        };
        let (size, hostfile) = match backend {
            DistBackend::Ring | DistBackend::Jaccl | DistBackend::Any => {
                let path = var("MLX_HOSTFILE").map(PathBuf::from).ok_or_else(|| {
                    DistributedError::Config(
                        "MLX_RANK is set but MLX_HOSTFILE is not; the ring backend needs the \
                         hostfile that lists every rank's address (adapt launch writes it)"
                            .into(),
                    )
                })?;
                (hostfile_ranks(&path)?, Some(path))
            }
            DistBackend::Nccl => {
                for name in ["NCCL_HOST_IP", "NCCL_PORT"] {
                    if var(name).is_none() {
                        return Err(DistributedError::Config(format!(
                            "{name} is not set; NCCL needs NCCL_HOST_IP, NCCL_PORT, MLX_RANK \
                             and MLX_WORLD_SIZE"
                        )));
                    }
                }
                (world_size(var("MLX_WORLD_SIZE"))?, None)
            }
            DistBackend::Mpi => (world_size(var("MLX_WORLD_SIZE"))?, None),
        };
        if rank >= size {
            return Err(DistributedError::Config(format!(
                "MLX_RANK={rank} but the group has {size} ranks (0 to {})",
                size - 1
            )));
        }
        Ok(Some(Membership {
            backend,
            rank,
            size,
            hostfile,
        }))
    }
}

fn world_size(value: Option<String>) -> Result<usize> {
    value
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            DistributedError::Config("MLX_WORLD_SIZE must be set to the number of ranks".into())
        })
}

/// Ranks in a ring hostfile: a JSON list with one list of `"ip:port"` strings per rank.
pub fn hostfile_ranks(path: &std::path::Path) -> Result<usize> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DistributedError::Config(format!("MLX_HOSTFILE {}: {e}", path.display())))?;
    let bad = |what: String| {
        DistributedError::Config(format!(
            "MLX_HOSTFILE {}: {what}; expected a JSON list with one list of \"ip:port\" \
             strings per rank, e.g. [[\"10.0.0.1:5000\"], [\"10.0.0.2:5000\"]]",
            path.display()
        ))
    };
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("not JSON ({e})")))?;
    let ranks = json.as_array().ok_or_else(|| bad("not a list".into()))?;
    for (i, rank) in ranks.iter().enumerate() {
        let addresses = rank
            .as_array()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| bad(format!("entry {i} is not a non-empty list")))?;
        for a in addresses {
            let ok = a.as_str().is_some_and(|s| {
                s.rsplit_once(':')
                    .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
            });
            if !ok {
                return Err(bad(format!("entry {i} has {a}, which is not \"ip:port\"")));
            }
        }
    }
    if ranks.is_empty() {
        return Err(bad("no ranks".into()));
    }
    Ok(ranks.len())
}

/// A group of processes: this process's rank among `size`.
pub struct Group {
    raw: mlx_sys::mlx_distributed_group,
    rank: usize,
    size: usize,
}

// SAFETY: the group is an immutable handle to MLX's communicator; the engine uses it from the
// engine thread only, and MLX's backends serialize their own sends and receives.
unsafe impl Send for Group {}
unsafe impl Sync for Group {}

impl Group {
    /// Joins the process group over `backend` (MLX reads its environment contract). With
    /// `strict` false and no group configured, MLX gives a group of one.
    pub fn init(backend: DistBackend, strict: bool) -> Result<Group> {
        let name = CString::new(backend.name()).unwrap_or_default();
        let init_error = |message: &str| DistributedError::Init {
            backend: backend.name().into(),
            message: message.into(),
        };
        if backend != DistBackend::Any && !backend.available() {
            return Err(init_error("this MLX was built without it"));
        }
        // SAFETY: `raw` starts empty and `mlx_distributed_init` sets it; it is freed in Drop
        // (or here when init fails).
        unsafe {
            let mut raw = mlx_sys::mlx_distributed_group_new();
            if mlx_sys::mlx_distributed_init(&mut raw, strict, name.as_ptr()) != 0 {
                mlx_sys::mlx_distributed_group_free(raw);
                return Err(init_error(
                    "MLX could not start it; check that every rank runs and that the \
                     addresses in the hostfile are reachable",
                ));
            }
            let rank = mlx_sys::mlx_distributed_group_rank(raw).max(0) as usize;
            let size = mlx_sys::mlx_distributed_group_size(raw).max(1) as usize;
            Ok(Group { raw, rank, size })
        }
    }

    /// Joins as `membership` says.
    pub fn join(membership: &Membership) -> Result<Group> {
        let group = Group::init(membership.backend, true)?;
        if group.rank != membership.rank || group.size != membership.size {
            return Err(DistributedError::Mismatch(format!(
                "MLX joined rank {} of {} but the environment says rank {} of {}",
                group.rank, group.size, membership.rank, membership.size
            )));
        }
        Ok(group)
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Whether this process is rank 0 (the one that writes files).
    pub fn is_leader(&self) -> bool {
        self.rank == 0
    }

    /// The element-wise sum of `x` over every rank (lazy: the exchange runs at `eval`).
    pub fn all_sum(&self, x: &Array) -> Result<Array> {
        self.collective(x, "all_sum", mlx_sys::mlx_distributed_all_sum)
    }

    /// Every rank's `x` concatenated along the first axis, in rank order (lazy).
    pub fn all_gather(&self, x: &Array) -> Result<Array> {
        self.collective(x, "all_gather", mlx_sys::mlx_distributed_all_gather)
    }

    /// Rank 0's `x` on every rank: the others contribute zeros to a sum.
    pub fn broadcast(&self, x: &Array) -> Result<Array> {
        let mine = match self.is_leader() {
            true => x.clone(),
            false => mlx_rs::ops::zeros_like(x).map_err(|e| self.lost(e))?,
        };
        self.all_sum(&mine)
    }

    /// Rank 0's `bytes` on every rank (the others' are ignored).
    pub fn share_bytes(&self, bytes: &[u8]) -> Result<Vec<u8>> {
        let len = self.broadcast(&Array::from_f32(bytes.len() as f32))?;
        self.eval([&len])?;
        let len = len.item_cast::<f32>() as usize;
        let mine: Vec<f32> = match self.is_leader() {
            true => bytes.iter().map(|&b| f32::from(b)).collect(),
            false => vec![0.0; len],
        };
        let shared = self.broadcast(&Array::from_slice(&mine, &[len as i32]))?;
        self.eval([&shared])?;
        Ok(shared.as_slice::<f32>().iter().map(|&b| b as u8).collect())
    }

    /// Evaluates `arrays`; a failure here is a lost peer (the collectives run now).
    pub fn eval<'a>(&self, arrays: impl IntoIterator<Item = &'a Array>) -> Result<()> {
        mlx_rs::transforms::eval(arrays).map_err(|e| self.lost(e))
    }

    /// Waits until every rank reaches this point.
    pub fn barrier(&self) -> Result<()> {
        let sum = self.all_sum(&Array::from_f32(1.0))?;
        self.eval([&sum])?;
        match sum.item_cast::<f32>() as usize == self.size {
            true => Ok(()),
            false => Err(DistributedError::Mismatch(
                "the barrier counted the wrong number of ranks".into(),
            )),
        }
    }

    /// The error for a collective that failed.
    pub fn lost(&self, e: Exception) -> DistributedError {
        DistributedError::PeerLost {
            rank: self.rank,
            size: self.size,
            message: e.what().to_string(),
        }
    }

    fn collective(
        &self,
        x: &Array,
        what: &str,
        op: unsafe extern "C" fn(
            *mut mlx_sys::mlx_array,
            mlx_sys::mlx_array,
            mlx_sys::mlx_distributed_group,
            mlx_sys::mlx_stream,
        ) -> i32,
    ) -> Result<Array> {
        let stream = Stream::new();
        // SAFETY: `res` starts as a new empty array that the call sets and the returned
        // `Array` owns; `x`, the group and the stream stay alive across the call.
        unsafe {
            let mut res = mlx_sys::mlx_array_new();
            if op(&mut res, x.as_ptr(), self.raw, stream.as_ptr()) != 0 {
                mlx_sys::mlx_array_free(res);
                return Err(self.lost(Exception::custom(format!("{what} failed"))));
            }
            Ok(Array::from_ptr(res))
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: `raw` was made by `mlx_distributed_group_new` and is freed once.
        unsafe {
            mlx_sys::mlx_distributed_group_free(self.raw);
        }
    }
}

/// A ring hostfile for `n` ranks on this machine (loopback), each on a port free now.
pub fn loopback_hostfile(n: usize) -> std::io::Result<String> {
    // Hold every listener until all ports are picked, so no two ranks get the same one.
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    let ranks = listeners
        .iter()
        .map(|l| Ok(vec![l.local_addr()?.to_string()]))
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok(serde_json::to_string(&ranks).unwrap_or_default())
}

static WORLD: OnceLock<Result<Option<Group>>> = OnceLock::new();

/// The group this process was started in (joined on the first call), `None` when it was not
/// started as a rank.
pub fn world() -> Result<Option<&'static Group>> {
    let joined = WORLD.get_or_init(|| {
        let membership = Membership::from_vars(|k| std::env::var(k).ok())?;
        membership.as_ref().map(Group::join).transpose()
    });
    match joined {
        Ok(group) => Ok(group.as_ref()),
        Err(e) => Err(e.clone()),
    }
}

/// Rank 0's `bytes` on every rank of this process's group (the others' are ignored); a
/// process of its own gets its `bytes` back.
pub fn share_from_rank0(bytes: Vec<u8>) -> Result<Vec<u8>> {
    match world()? {
        Some(group) if group.size() > 1 => group.share_bytes(&bytes),
        _ => Ok(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn no_rank_variable_is_a_process_of_its_own() {
        assert_eq!(Membership::from_vars(vars(&[])).unwrap(), None);
    }

    #[test]
    fn ring_membership_reads_the_hostfile() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.json");
        std::fs::write(&path, r#"[["127.0.0.1:5000"], ["127.0.0.1:5001"]]"#).unwrap();
        let p = path.to_str().unwrap();
        let m = Membership::from_vars(vars(&[("MLX_RANK", "1"), ("MLX_HOSTFILE", p)]))
            .unwrap()
            .unwrap();
        assert_eq!((m.backend, m.rank, m.size), (DistBackend::Ring, 1, 2));
        let e = Membership::from_vars(vars(&[("MLX_RANK", "2"), ("MLX_HOSTFILE", p)])).unwrap_err();
        assert!(e.to_string().contains("MLX_RANK=2"), "{e}");
    }

    #[test]
    fn bad_set_ups_name_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.json");
        std::fs::write(&path, r#"[["127.0.0.1"]]"#).unwrap();
        let p = path.to_str().unwrap();
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![("MLX_RANK", "x")], "MLX_RANK='x'"),
            (vec![("MLX_RANK", "0")], "MLX_HOSTFILE is not"),
            (
                vec![("MLX_RANK", "0"), ("MLX_HOSTFILE", p)],
                "not \"ip:port\"",
            ),
            (
                vec![("MLX_RANK", "0"), ("MLX_HOSTFILE", "/no/such/file")],
                "/no/such/file",
            ),
            (
                vec![("MLX_RANK", "0"), ("NCCL_HOST_IP", "10.0.0.1")],
                "NCCL_PORT",
            ),
            (
                vec![
                    ("MLX_RANK", "0"),
                    ("NCCL_HOST_IP", "10.0.0.1"),
                    ("NCCL_PORT", "1"),
                ],
                "MLX_WORLD_SIZE",
            ),
            (
                vec![("MLX_RANK", "0"), (BACKEND_VAR, "tcp")],
                "unknown backend",
            ),
        ];
        for (pairs, expected) in cases {
            let e = Membership::from_vars(vars(&pairs)).unwrap_err();
            assert!(e.to_string().contains(expected), "{pairs:?}: {e}");
            assert_eq!(e.code(), "distributed.config");
        }
    }

    #[test]
    fn a_group_of_one_sums_to_itself() {
        // Not strict, nothing configured: MLX gives a group of one.
        let group = Group::init(DistBackend::Any, false).unwrap();
        assert_eq!((group.rank(), group.size()), (0, 1));
        let x = Array::from_slice(&[1.0f32, 2.0], &[2]);
        let sum = group.all_sum(&x).unwrap();
        group.eval([&sum]).unwrap();
        assert_eq!(sum.as_slice::<f32>(), &[1.0, 2.0]);
        group.barrier().unwrap();
    }
}
