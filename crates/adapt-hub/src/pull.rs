//! Pulling a repository into a hub-cache-layout folder: plan, disk-space check, per-file
//! download with resume and verification, then the snapshot links and the ref.
//!
//! Layout (the one `huggingface_hub` writes, so its tools and ours read each other's):
//!
//! ```text
//! <cache>/models--ORG--NAME/blobs/<sha256 or git oid>             verified file contents
//! <cache>/models--ORG--NAME/blobs/<sha256 or git oid>.incomplete  a partial download
//! <cache>/models--ORG--NAME/snapshots/<commit>/<file>             link to ../../blobs/<…>
//! <cache>/models--ORG--NAME/refs/<revision>                       the commit it points at
//! ```
//!
//! A file is fetched into `<blob>.incomplete`; a later attempt (after a dropped connection,
//! a cancel or a killed process) asks for `Range: bytes=<partial size>-` and appends. Once the
//! size is reached the whole file is hashed — sha256 for LFS files, compared with the Hub's
//! `lfs.sha256` and the `X-Linked-Etag` header; the git blob hash for the others, compared with
//! the `ETag` / `blobId` — and only then renamed to its blob name. A file that fails
//! verification is deleted and fetched once more from zero. Snapshot links and the ref are
//! written after every file is verified, so a snapshot folder is always complete.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use sha1::Digest as _;

use crate::client::HubClient;
use crate::repo::{safe_relative, select_files, shards_from_index, RepoSpec, Sibling};
use crate::repo::{RepoInfo, SAFETENSORS_INDEX};
use crate::HubError;

/// What to pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PullRequest {
    pub spec: RepoSpec,
    /// One file to fetch alone (a GGUF file, typically); `None`: the model folder's files.
    pub file: Option<String>,
}

/// Where a pull is, reported per file and in total.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PullProgress {
    /// The file being fetched or verified.
    pub file: String,
    /// 1-based position of `file` among `file_count`.
    pub file_index: usize,
    pub file_count: usize,
    /// Bytes of `file` on disk.
    pub file_done: u64,
    pub file_total: u64,
    /// Bytes of all files on disk (including those present before this pull).
    pub done: u64,
    pub total: u64,
    /// Bytes fetched by this pull so far.
    pub fetched: u64,
    /// Download speed over this pull (fetched bytes per second).
    pub bytes_per_second: f64,
    /// Seconds left at that speed, once it is known.
    pub eta_seconds: Option<f64>,
    pub stage: Stage,
}

/// What a pull is doing with the current file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum Stage {
    Downloading,
    Verifying,
    Done,
}

/// One file of a finished pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PulledFile {
    pub name: String,
    pub bytes: u64,
    /// Bytes fetched for it by this pull (0 when it was already there).
    pub fetched: u64,
    /// Where this pull started fetching it (the size of a partial download it resumed).
    pub resumed_from: u64,
}

/// A finished pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Pulled {
    pub repo: String,
    pub revision: String,
    pub commit: String,
    /// The snapshot folder: load the model from here.
    pub snapshot: PathBuf,
    pub files: Vec<PulledFile>,
    /// Bytes fetched over the network by this pull.
    pub fetched: u64,
    pub bytes: u64,
}

/// How many times a dropped connection is resumed within one pull before giving up.
const RETRIES: u32 = 4;
/// Progress is reported at most this often (and at every file's start and end).
const REPORT_EVERY: Duration = Duration::from_millis(100);
const CHUNK: usize = 64 * 1024;

/// The planned download of one file.
struct Planned {
    sibling: Sibling,
    blob: String,
    size: u64,
}

struct Run<'a> {
    client: &'a HubClient,
    spec: &'a RepoSpec,
    commit: String,
    blobs: PathBuf,
    on_progress: &'a mut dyn FnMut(&PullProgress),
    cancelled: &'a dyn Fn() -> bool,
    started: Instant,
    last_report: Option<Instant>,
    fetched: u64,
    /// Bytes on disk of the files before the current one.
    done_before: u64,
    total: u64,
    file_count: usize,
}

impl HubClient {
    /// Pulls `request` into `cache` (a hub-cache-layout folder), reporting progress and
    /// stopping with [`HubError::Cancelled`] when `cancelled` says so (partial files are kept
    /// for the next pull to resume).
    pub fn pull(
        &self,
        request: &PullRequest,
        cache: &Path,
        on_progress: &mut dyn FnMut(&PullProgress),
        cancelled: &dyn Fn() -> bool,
    ) -> Result<Pulled, HubError> {
        let spec = &request.spec;
        let info = self.repo_info(spec)?;
        check_commit(&info)?;
        let repo_dir = cache.join(spec.cache_folder());
        let blobs = repo_dir.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(|e| HubError::io(&blobs, e))?;
        let mut run = Run {
            client: self,
            spec,
            commit: info.sha.clone(),
            blobs,
            on_progress,
            cancelled,
            started: Instant::now(),
            last_report: None,
            fetched: 0,
            done_before: 0,
            total: 0,
            file_count: 0,
        };
        let mut files = select_files(&info, request.file.as_deref())?;
        // The index of a sharded checkpoint names the shards: fetch it first (it is small).
        let mut early: Option<PulledFile> = None;
        if let Some(index) = files.iter().find(|s| s.rfilename == SAFETENSORS_INDEX) {
            let index = plan(&info, index.clone())?;
            run.total = index.size;
            run.file_count = 1;
            let (done, path) = run.fetch(&index, 1)?;
            let bytes = std::fs::read(&path).map_err(|e| HubError::io(&path, e))?;
            files.extend(shards_from_index(&info, &bytes)?);
            early = Some(done);
        }
        let planned: Vec<Planned> = files
            .into_iter()
            .map(|s| plan(&info, s))
            .collect::<Result<_, _>>()?;
        run.total = planned.iter().map(|p| p.size).sum();
        run.file_count = planned.len();
        check_space(&run.blobs, &planned)?;
        let mut results = Vec::new();
        for (i, p) in planned.iter().enumerate() {
            let file = match early.take_if(|e| e.name == p.sibling.rfilename) {
                Some(done) => done,
                None => run.fetch(p, i + 1)?.0,
            };
            results.push(file);
            run.done_before += p.size;
        }
        let snapshot = repo_dir.join("snapshots").join(&info.sha);
        for p in &planned {
            link(&snapshot, &p.sibling.rfilename, &p.blob)?;
        }
        if spec.revision != info.sha {
            let reference = repo_dir.join("refs").join(&spec.revision);
            if let Some(parent) = reference.parent() {
                std::fs::create_dir_all(parent).map_err(|e| HubError::io(parent, e))?;
            }
            std::fs::write(&reference, &info.sha).map_err(|e| HubError::io(&reference, e))?;
        }
        results.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Pulled {
            repo: spec.repo.clone(),
            revision: spec.revision.clone(),
            commit: info.sha.clone(),
            snapshot,
            fetched: results.iter().map(|f| f.fetched).sum(),
            bytes: results.iter().map(|f| f.bytes).sum(),
            files: results,
        })
    }
}

fn check_commit(info: &RepoInfo) -> Result<(), HubError> {
    let ok = !info.sha.is_empty() && info.sha.chars().all(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(HubError::BadResponse {
            what: "the repository info".into(),
            detail: format!("`{}` is not a commit id", info.sha),
        })
    }
}

fn plan(info: &RepoInfo, sibling: Sibling) -> Result<Planned, HubError> {
    if !safe_relative(&sibling.rfilename) {
        return Err(HubError::BadResponse {
            what: "the repository info".into(),
            detail: format!("unsafe file name `{}`", sibling.rfilename),
        });
    }
    let size = sibling
        .expected_size()
        .ok_or_else(|| HubError::BadResponse {
            what: format!("the repository info for {}", sibling.rfilename),
            detail: "no file size (the Hub answers sizes when asked with blobs=true)".into(),
        })?;
    let blob = sibling.blob_name(&info.sha);
    if !blob.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(HubError::BadResponse {
            what: format!("the repository info for {}", sibling.rfilename),
            detail: format!("unusable blob id `{blob}`"),
        });
    }
    Ok(Planned {
        sibling,
        blob,
        size,
    })
}

/// Refuses to start when the bytes still to fetch do not fit on the disk.
fn check_space(blobs: &Path, planned: &[Planned]) -> Result<(), HubError> {
    let needed: u64 = planned
        .iter()
        .map(|p| {
            if blobs.join(&p.blob).is_file() {
                return 0;
            }
            let partial = std::fs::metadata(incomplete(blobs, &p.blob)).map_or(0, |m| m.len());
            p.size.saturating_sub(partial)
        })
        .sum();
    let available = fs4::available_space(blobs).map_err(|e| HubError::io(blobs, e))?;
    if needed > available {
        return Err(HubError::DiskFull {
            path: blobs.to_path_buf(),
            needed,
            available,
        });
    }
    Ok(())
}

fn incomplete(blobs: &Path, blob: &str) -> PathBuf {
    blobs.join(format!("{blob}.incomplete"))
}

impl Run<'_> {
    fn report(&mut self, p: &Planned, index: usize, file_done: u64, stage: Stage, force: bool) {
        let now = Instant::now();
        if !force && self.last_report.is_some_and(|t| now - t < REPORT_EVERY) {
            return;
        }
        self.last_report = Some(now);
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = if elapsed > 0.0 {
            self.fetched as f64 / elapsed
        } else {
            0.0
        };
        let done = self.done_before + file_done;
        let left = self.total.saturating_sub(done) as f64;
        // The rate settles after a second; before that an ETA would jump about.
        let eta = (rate > 0.0 && self.fetched > 0 && elapsed >= 1.0).then(|| left / rate);
        (self.on_progress)(&PullProgress {
            file: p.sibling.rfilename.clone(),
            file_index: index,
            file_count: self.file_count,
            file_done,
            file_total: p.size,
            done,
            total: self.total,
            fetched: self.fetched,
            bytes_per_second: rate,
            eta_seconds: eta,
            stage,
        });
    }

    /// Makes `blobs/<blob>` hold the verified file; returns what was done and its path.
    fn fetch(&mut self, p: &Planned, index: usize) -> Result<(PulledFile, PathBuf), HubError> {
        let name = &p.sibling.rfilename;
        let done_path = self.blobs.join(&p.blob);
        let part = incomplete(&self.blobs, &p.blob);
        let mut result = PulledFile {
            name: name.clone(),
            bytes: p.size,
            fetched: 0,
            resumed_from: 0,
        };
        if done_path.is_file() {
            self.report(p, index, p.size, Stage::Verifying, true);
            match verify(&done_path, p, None) {
                Ok(()) => {
                    self.report(p, index, p.size, Stage::Done, true);
                    return Ok((result, done_path));
                }
                // A damaged blob (a disk error, an edit by hand): fetch it again.
                Err(_) => remove(&done_path)?,
            }
        }
        let mut failures = 0;
        let mut drops = 0;
        let mut first = true;
        loop {
            if (self.cancelled)() {
                return Err(HubError::Cancelled);
            }
            let mut have = std::fs::metadata(&part).map_or(0, |m| m.len());
            if have > p.size {
                remove(&part)?;
                have = 0;
            }
            if first {
                result.resumed_from = have;
                first = false;
            }
            let mut etag = None;
            if have < p.size {
                match self.download(p, index, &part, have) {
                    Ok(e) => etag = e,
                    Err(HubError::Interrupted { .. }) if drops < RETRIES => {
                        drops += 1;
                        std::thread::sleep(Duration::from_millis(200 * u64::from(drops)));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let now = std::fs::metadata(&part).map_or(0, |m| m.len());
            result.fetched += now.saturating_sub(have);
            if now < p.size {
                // The body ended early without an error: ask again for the rest.
                if drops < RETRIES {
                    drops += 1;
                    continue;
                }
                return Err(HubError::Interrupted {
                    file: name.clone(),
                    detail: format!("got {now} of {} bytes", p.size),
                });
            }
            self.report(p, index, p.size, Stage::Verifying, true);
            match verify(&part, p, etag.as_deref()) {
                Ok(()) => {
                    std::fs::rename(&part, &done_path).map_err(|e| HubError::io(&done_path, e))?;
                    self.report(p, index, p.size, Stage::Done, true);
                    return Ok((result, done_path));
                }
                Err(detail) => {
                    remove(&part)?;
                    failures += 1;
                    if failures >= 2 {
                        return Err(HubError::ChecksumMismatch {
                            file: name.clone(),
                            detail,
                        });
                    }
                }
            }
        }
    }

    /// Appends the rest of the file (from `have`) to `part`; returns the etag the Hub gave.
    fn download(
        &mut self,
        p: &Planned,
        index: usize,
        part: &Path,
        have: u64,
    ) -> Result<Option<String>, HubError> {
        let name = &p.sibling.rfilename;
        let (headers, mut body) = self.client.open_file(self.spec, &self.commit, name, have)?;
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(part)
            .map_err(|e| HubError::io(part, e))?;
        let mut on_disk = have;
        if headers.start != have {
            // The server ignored the range (or started elsewhere): start over from its start.
            if headers.start != 0 {
                return Err(HubError::BadResponse {
                    what: name.clone(),
                    detail: format!("asked for bytes from {have}, got from {}", headers.start),
                });
            }
            file.set_len(0).map_err(|e| HubError::io(part, e))?;
            on_disk = 0;
        }
        if let Some(size) = headers.size {
            if size != p.size {
                return Err(HubError::BadResponse {
                    what: name.clone(),
                    detail: format!("the Hub said {} bytes, the download {size}", p.size),
                });
            }
        }
        self.report(p, index, on_disk, Stage::Downloading, true);
        let mut buf = vec![0u8; CHUNK];
        loop {
            if (self.cancelled)() {
                file.flush().map_err(|e| HubError::io(part, e))?;
                return Err(HubError::Cancelled);
            }
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    file.flush().map_err(|e| HubError::io(part, e))?;
                    return Err(HubError::Interrupted {
                        file: name.clone(),
                        detail: e.to_string(),
                    });
                }
            };
            // Never write past the expected size (a server sending too much).
            let n = n.min((p.size - on_disk) as usize);
            file.write_all(&buf[..n])
                .map_err(|e| HubError::io(part, e))?;
            on_disk += n as u64;
            self.fetched += n as u64;
            self.report(p, index, on_disk, Stage::Downloading, false);
            if on_disk >= p.size {
                break;
            }
        }
        file.flush().map_err(|e| HubError::io(part, e))?;
        file.sync_all().map_err(|e| HubError::io(part, e))?;
        Ok(headers.etag)
    }
}

fn remove(path: &Path) -> Result<(), HubError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(HubError::io(path, e)),
        _ => Ok(()),
    }
}

/// Checks the file at `path` against what the Hub says: size, then the sha256 of an LFS file
/// (and the `X-Linked-Etag` it came with) or the git blob hash of another file. `Err` says
/// what differs.
fn verify(path: &Path, p: &Planned, etag: Option<&str>) -> Result<(), String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len != p.size {
        return Err(format!("{len} bytes instead of {}", p.size));
    }
    let mut file = File::open(path).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 1 << 20];
    fn each_chunk(file: &mut File, buf: &mut [u8], mut f: impl FnMut(&[u8])) -> Result<(), String> {
        loop {
            let n = file.read(buf).map_err(|e| e.to_string())?;
            if n == 0 {
                return Ok(());
            }
            f(&buf[..n]);
        }
    }
    match &p.sibling.lfs {
        Some(lfs) => {
            let mut hasher = sha2::Sha256::new();
            each_chunk(&mut file, &mut buf, |chunk| hasher.update(chunk))?;
            let got = crate::hex(&hasher.finalize());
            let expected = lfs.sha256.to_ascii_lowercase();
            if got != expected {
                return Err(format!("sha256 {got}, expected {expected}"));
            }
            if let Some(etag) = etag.filter(|e| e.len() == 64 && *e != expected) {
                return Err(format!("sha256 {got}, but the Hub's etag says {etag}"));
            }
        }
        None => {
            let expected = p.sibling.blob_id.clone().or(etag.map(str::to_string));
            // Only a 40-hex-digit id is a git blob hash we can check.
            let Some(expected) = expected.filter(|e| e.len() == 40) else {
                return Ok(());
            };
            let mut hasher = sha1::Sha1::new();
            hasher.update(format!("blob {len}\0").as_bytes());
            each_chunk(&mut file, &mut buf, |chunk| hasher.update(chunk))?;
            let got = crate::hex(&hasher.finalize());
            if got != expected.to_ascii_lowercase() {
                return Err(format!("git blob hash {got}, expected {expected}"));
            }
        }
    }
    Ok(())
}

/// Links `snapshot/<file>` to its blob (replacing whatever is there).
fn link(snapshot: &Path, file: &str, blob: &str) -> Result<(), HubError> {
    let at = snapshot.join(file);
    let parent = at.parent().unwrap_or(snapshot);
    std::fs::create_dir_all(parent).map_err(|e| HubError::io(parent, e))?;
    let depth = Path::new(file).components().count() - 1;
    let mut target = PathBuf::new();
    for _ in 0..depth + 2 {
        target.push("..");
    }
    target.push("blobs");
    target.push(blob);
    if std::fs::symlink_metadata(&at).is_ok() {
        remove(&at)?;
    }
    make_link(&target, &at).map_err(|e| HubError::io(&at, e))
}

#[cfg(unix)]
fn make_link(target: &Path, at: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, at)
}

/// Where symbolic links are not available, the snapshot gets a copy.
#[cfg(not(unix))]
fn make_link(target: &Path, at: &Path) -> std::io::Result<()> {
    let source = at.parent().unwrap_or(Path::new(".")).join(target);
    std::fs::copy(source, at).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(blob: &str, size: u64) -> Planned {
        Planned {
            sibling: Sibling {
                rfilename: "model.safetensors".into(),
                blob_id: None,
                size: Some(size),
                lfs: None,
            },
            blob: blob.into(),
            size,
        }
    }

    #[test]
    fn a_download_larger_than_the_free_space_is_refused_before_it_starts() {
        let dir = tempfile::tempdir().unwrap();
        let e = check_space(dir.path(), &[planned("big", u64::MAX / 2)]).unwrap_err();
        assert_eq!(e.code(), "hub.disk_full");
        assert!(e.to_string().contains("free some space"), "{e}");
        // What is already on disk (complete or partial) is not needed again.
        std::fs::write(dir.path().join("done"), [0u8; 10]).unwrap();
        std::fs::write(dir.path().join("part.incomplete"), [0u8; 10]).unwrap();
        check_space(dir.path(), &[planned("done", u64::MAX / 2)]).unwrap();
        check_space(dir.path(), &[planned("part", 10)]).unwrap();
    }

    #[test]
    fn snapshot_links_point_into_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(blobs.join("abc"), "x").unwrap();
        let snapshot = dir.path().join("snapshots/c1");
        link(&snapshot, "sub/file.json", "abc").unwrap();
        link(&snapshot, "sub/file.json", "abc").unwrap();
        assert_eq!(
            std::fs::read_to_string(snapshot.join("sub/file.json")).unwrap(),
            "x"
        );
    }
}
