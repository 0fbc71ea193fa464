//! Pulls against a real HTTP server on 127.0.0.1 that behaves like the Hub: a full pull, a
//! dropped connection resumed, a cancelled pull resumed by the next one, corrupted files
//! detected and fetched again, and the Hub's errors.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use adapt_hub::test_util::{tiny_model_repo, Access, FakeFile, FakeHub, FakeRepo, Fault};
use adapt_hub::{HubClient, HubError, PullProgress, PullRequest, Pulled, RepoSpec};

const REPO: &str = "tiny/llama";
const SHARD1: &str = "model-00001-of-00002.safetensors";
const SHARD2: &str = "model-00002-of-00002.safetensors";
const WANTED: [&str; 6] = [
    "config.json",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer_config.json",
];

fn hub() -> FakeHub {
    let mut private = tiny_model_repo("tiny/private", 4096);
    private.access = Access::Private;
    let mut gated = tiny_model_repo("tiny/gated", 4096);
    gated.access = Access::Gated;
    let gguf = FakeRepo {
        id: "tiny/gguf".into(),
        commit: "0123456789abcdef0123456789abcdef01234567".into(),
        access: Access::Public,
        files: vec![
            FakeFile {
                name: "tiny.Q8_0.gguf".into(),
                bytes: vec![3; 5000],
                lfs: true,
            },
            FakeFile {
                name: "tiny.F16.gguf".into(),
                bytes: vec![4; 9000],
                lfs: true,
            },
        ],
    };
    FakeHub::start(vec![
        tiny_model_repo(REPO, 512 * 1024),
        private,
        gated,
        gguf,
    ])
}

fn request(spec: &str) -> PullRequest {
    PullRequest {
        spec: RepoSpec::parse(spec).unwrap(),
        file: None,
    }
}

fn pull_with(
    client: &HubClient,
    request: &PullRequest,
    cache: &Path,
    cancelled: &dyn Fn() -> bool,
) -> (Result<Pulled, HubError>, Vec<PullProgress>) {
    let mut events = Vec::new();
    let result = client.pull(request, cache, &mut |p| events.push(p.clone()), cancelled);
    (result, events)
}

fn pull(hub: &FakeHub, spec: &str, cache: &Path) -> Result<Pulled, HubError> {
    let client = HubClient::new(&hub.endpoint(), None);
    pull_with(&client, &request(spec), cache, &|| false).0
}

fn file_bytes(hub_repo: &FakeRepo, name: &str) -> Vec<u8> {
    hub_repo
        .files
        .iter()
        .find(|f| f.name == name)
        .unwrap()
        .bytes
        .clone()
}

fn repo_dir(cache: &Path) -> PathBuf {
    cache.join("models--tiny--llama")
}

fn incomplete_files(cache: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(repo_dir(cache).join("blobs"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "incomplete"))
        .collect()
}

#[test]
fn a_full_pull_fetches_the_model_files_into_the_hub_cache_layout() {
    let hub = hub();
    let cache = tempfile::tempdir().unwrap();
    let client = HubClient::new(&hub.endpoint(), None);
    let (result, events) = pull_with(&client, &request(REPO), cache.path(), &|| false);
    let pulled = result.unwrap();
    let repo = tiny_model_repo(REPO, 512 * 1024);

    let mut names: Vec<&str> = pulled.files.iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, WANTED);
    assert_eq!(pulled.commit, repo.commit);
    assert_eq!(pulled.fetched, pulled.bytes);
    assert_eq!(
        pulled.snapshot,
        repo_dir(cache.path()).join("snapshots").join(&repo.commit)
    );
    for name in WANTED {
        let at = pulled.snapshot.join(name);
        assert_eq!(
            std::fs::read(&at).unwrap(),
            file_bytes(&repo, name),
            "{name}"
        );
        let target = std::fs::read_link(&at).unwrap();
        assert!(target.starts_with("../../blobs"), "{}", target.display());
    }
    assert!(!pulled.snapshot.join("README.md").exists());
    assert!(!pulled.snapshot.join("pytorch_model.bin").exists());
    assert_eq!(
        std::fs::read_to_string(repo_dir(cache.path()).join("refs/main")).unwrap(),
        repo.commit
    );
    assert!(incomplete_files(cache.path()).is_empty());

    // LFS files came through the storage redirect; nothing was fetched twice.
    let log = hub.log();
    assert!(log
        .iter()
        .any(|s| s.status == 302 && s.file.as_deref() == Some(SHARD1)));
    for name in WANTED {
        assert_eq!(
            hub.bytes_served(name),
            file_bytes(&repo, name).len() as u64,
            "{name}"
        );
    }

    // Progress: per file and in total, ending with everything done.
    let last = events.last().unwrap();
    assert_eq!((last.done, last.total), (pulled.bytes, pulled.bytes));
    assert_eq!(last.file_count, 6);
    assert!(events
        .iter()
        .any(|e| e.file == SHARD1 && e.file_done < e.file_total));
    assert!(events.windows(2).all(|w| w[0].fetched <= w[1].fetched));

    // Pulling again fetches nothing.
    hub.clear_log();
    let again = pull(&hub, REPO, cache.path()).unwrap();
    assert_eq!(again.fetched, 0);
    assert!(hub
        .log()
        .iter()
        .all(|s| s.bytes == 0 || s.path.starts_with("/api/")));
}

#[test]
fn a_dropped_connection_resumes_from_the_bytes_already_there() {
    let hub = hub();
    let cache = tempfile::tempdir().unwrap();
    hub.add_fault(Fault::DropAfter {
        file: SHARD1.into(),
        bytes: 100_000,
    });
    let pulled = pull(&hub, REPO, cache.path()).unwrap();
    let repo = tiny_model_repo(REPO, 512 * 1024);
    let size = file_bytes(&repo, SHARD1).len() as u64;
    let storage: Vec<_> = hub
        .log()
        .into_iter()
        .filter(|s| s.file.as_deref() == Some(SHARD1) && s.path.starts_with("/storage/"))
        .collect();
    assert_eq!(storage.len(), 2, "{storage:?}");
    assert_eq!((storage[0].range_start, storage[0].bytes), (None, 100_000));
    assert_eq!(
        (storage[1].range_start, storage[1].bytes),
        (Some(100_000), size - 100_000)
    );
    assert_eq!(hub.bytes_served(SHARD1), size);
    assert_eq!(
        std::fs::read(pulled.snapshot.join(SHARD1)).unwrap(),
        file_bytes(&repo, SHARD1)
    );
}

#[test]
fn a_cancelled_pull_keeps_its_partial_file_and_the_next_pull_resumes_it() {
    let hub = hub();
    let cache = tempfile::tempdir().unwrap();
    let client = HubClient::new(&hub.endpoint(), None);
    let partial = |cache: &Path| {
        incomplete_files(cache)
            .first()
            .map_or(0, |p| std::fs::metadata(p).unwrap().len())
    };
    let (result, _) = pull_with(&client, &request(REPO), cache.path(), &|| {
        partial(cache.path()) >= 128 * 1024
    });
    let e = result.unwrap_err();
    assert_eq!(e.code(), "hub.cancelled", "{e}");
    assert!(e.to_string().contains("resume"), "{e}");
    let kept = partial(cache.path());
    assert!(kept >= 128 * 1024, "{kept}");
    assert!(!repo_dir(cache.path()).join("snapshots").exists());

    hub.clear_log();
    let pulled = pull(&hub, REPO, cache.path()).unwrap();
    let repo = tiny_model_repo(REPO, 512 * 1024);
    let size = file_bytes(&repo, SHARD1).len() as u64;
    let storage: Vec<_> = hub
        .log()
        .into_iter()
        .filter(|s| s.file.as_deref() == Some(SHARD1) && s.path.starts_with("/storage/"))
        .collect();
    assert_eq!(storage.len(), 1, "{storage:?}");
    assert_eq!(storage[0].range_start, Some(kept));
    assert_eq!(storage[0].bytes, size - kept);
    let shard = pulled.files.iter().find(|f| f.name == SHARD1).unwrap();
    assert_eq!((shard.resumed_from, shard.fetched), (kept, size - kept));
    // Files finished before the cancel were not fetched again.
    assert_eq!(hub.bytes_served("config.json"), 0);
    assert_eq!(
        std::fs::read(pulled.snapshot.join(SHARD1)).unwrap(),
        file_bytes(&repo, SHARD1)
    );
}

#[test]
fn a_corrupted_download_is_detected_and_fetched_again() {
    let hub = hub();
    let cache = tempfile::tempdir().unwrap();
    hub.add_fault(Fault::Corrupt {
        file: SHARD2.into(),
    });
    hub.add_fault(Fault::Corrupt {
        file: "config.json".into(),
    });
    let pulled = pull(&hub, REPO, cache.path()).unwrap();
    let repo = tiny_model_repo(REPO, 512 * 1024);
    for name in [SHARD2, "config.json"] {
        let len = file_bytes(&repo, name).len() as u64;
        assert_eq!(hub.bytes_served(name), 2 * len, "{name}");
        assert_eq!(
            std::fs::read(pulled.snapshot.join(name)).unwrap(),
            file_bytes(&repo, name)
        );
    }

    // A damaged blob already in the cache is found and replaced.
    let blob = std::fs::canonicalize(pulled.snapshot.join(SHARD1)).unwrap();
    let mut damaged = std::fs::read(&blob).unwrap();
    damaged[5000] ^= 1;
    std::fs::write(&blob, damaged).unwrap();
    hub.clear_log();
    let again = pull(&hub, REPO, cache.path()).unwrap();
    let len = file_bytes(&repo, SHARD1).len() as u64;
    assert_eq!(again.fetched, len);
    assert_eq!(std::fs::read(&blob).unwrap(), file_bytes(&repo, SHARD1));
}

#[test]
fn a_file_corrupted_every_time_fails_with_a_checksum_error() {
    let hub = hub();
    let cache = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        hub.add_fault(Fault::Corrupt {
            file: SHARD1.into(),
        });
    }
    let e = pull(&hub, REPO, cache.path()).unwrap_err();
    assert_eq!(e.code(), "hub.checksum_mismatch", "{e}");
    assert!(e.to_string().contains(SHARD1), "{e}");
    assert!(incomplete_files(cache.path()).is_empty());
}

#[test]
fn the_hubs_errors_have_codes_and_say_what_to_do() {
    let hub = hub();
    let cache = tempfile::tempdir().unwrap();
    let code = |spec: &str| {
        let e = pull(&hub, spec, cache.path()).unwrap_err();
        (e.code(), e.to_string())
    };
    let (c, m) = code("tiny/missing");
    assert_eq!(c, "hub.not_found");
    assert!(m.contains("repository tiny/missing"), "{m}");
    let (c, m) = code("tiny/llama@v9");
    assert_eq!(c, "hub.not_found");
    assert!(m.contains("revision v9"), "{m}");
    let (c, m) = code("tiny/private");
    assert_eq!(c, "hub.unauthorized");
    assert!(m.contains("HF_TOKEN"), "{m}");
    let (c, m) = code("tiny/gated");
    assert_eq!(c, "hub.gated");
    assert!(m.contains("accept its license"), "{m}");

    // With the token, the private repository pulls.
    let client = HubClient::new(&hub.endpoint(), Some(FakeHub::TOKEN.into()));
    let (result, _) = pull_with(&client, &request("tiny/private"), cache.path(), &|| false);
    assert_eq!(result.unwrap().files.len(), 6);

    // Nothing listens: offline.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = HubClient::new(&format!("http://127.0.0.1:{closed}"), None);
    let (result, _) = pull_with(&client, &request(REPO), cache.path(), &|| false);
    let e = result.unwrap_err();
    assert_eq!(e.code(), "hub.offline", "{e}");
    assert!(e.to_string().contains("network"), "{e}");
}

#[test]
fn a_named_gguf_file_is_pulled_alone() {
    let hub = hub();
    let cache = tempfile::tempdir().unwrap();
    let client = HubClient::new(&hub.endpoint(), None);
    let e = pull(&hub, "tiny/gguf", cache.path()).unwrap_err();
    assert_eq!(e.code(), "hub.nothing_to_pull");
    assert!(e.to_string().contains("tiny.Q8_0.gguf"), "{e}");
    let mut req = request("tiny/gguf");
    req.file = Some("tiny.Q8_0.gguf".into());
    let calls = Cell::new(0);
    let (result, _) = pull_with(&client, &req, cache.path(), &|| {
        calls.set(calls.get() + 1);
        false
    });
    let pulled = result.unwrap();
    assert!(calls.get() > 0);
    let names: Vec<_> = std::fs::read_dir(&pulled.snapshot)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["tiny.Q8_0.gguf"]);
    assert_eq!(hub.bytes_served("tiny.F16.gguf"), 0);
}
