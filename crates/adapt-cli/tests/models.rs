//! `adapt models` end to end against a Hub look-alike on 127.0.0.1: pull, list, inspect, rm,
//! the Hub's errors, and a pull killed mid-file (SIGKILL) that the next pull resumes without
//! fetching again the bytes already on disk; a pull killed ten times that ends verified, and a
//! disk that fills during a pull (a small tmpfs): a clear error, then a resumed pull.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use adapt_gguf::test_util::GgufBuilder;
use adapt_gguf::GgmlType;
use adapt_hub::test_util::{sha256_hex, tiny_model_repo, Access, FakeFile, FakeHub, FakeRepo};
use adapt_testsupport::SmallDisk;

const SHARD1: &str = "model-00001-of-00002.safetensors";

struct Env {
    dir: tempfile::TempDir,
    endpoint: String,
}

impl Env {
    fn new(hub: &FakeHub) -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            endpoint: hub.endpoint(),
        }
    }

    fn models(&self) -> PathBuf {
        self.dir.path().join("models")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_adapt"));
        c.args(args)
            .env("ADAPT_DATA_DIR", self.dir.path().join("data"))
            .env("ADAPT_MODELS_DIR", self.models())
            .env("HF_ENDPOINT", &self.endpoint)
            .env("HF_HOME", self.dir.path().join("hf-home"))
            .env("HF_HUB_CACHE", self.dir.path().join("hf-cache"))
            .env_remove("HF_TOKEN")
            .env_remove("HUGGING_FACE_HUB_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("adapt runs")
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn incomplete(models: &Path) -> Option<(PathBuf, u64)> {
    let blobs = models.join("hub/models--tiny--llama/blobs");
    std::fs::read_dir(blobs)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "incomplete"))
        .map(|p| {
            let len = std::fs::metadata(&p).map_or(0, |m| m.len());
            (p, len)
        })
}

#[test]
fn pull_list_inspect_and_remove_a_model() {
    let hub = FakeHub::start(vec![tiny_model_repo("tiny/llama", 64 * 1024)]);
    let env = Env::new(&hub);
    let out = env.run(&["models", "pull", "tiny/llama"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("Pulled tiny/llama@main"), "{stdout}");
    assert!(stdout.contains("6 files"), "{stdout}");
    assert!(stderr.contains(SHARD1), "{stderr}");
    assert!(stderr.contains("ETA"), "{stderr}");

    let out = env.run(&["models", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let model = &list.as_array().unwrap()[0];
    assert_eq!(model["name"], "tiny/llama");
    assert_eq!(model["source"], "library");
    assert_eq!(model["architecture"], "llama");
    assert_eq!(model["format"], "folder");
    assert!(model["parameters"].as_u64().unwrap() > 0);
    assert!(model["fit"]["chat"]["verdict"].is_string());

    let out = env.run(&["models", "list"]);
    let stdout = text(&out.stdout);
    assert!(stdout.contains("tiny/llama"), "{stdout}");

    let out = env.run(&["models", "inspect", "tiny/llama"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("Architecture  llama"), "{stdout}");
    assert!(stdout.contains("assuming"), "{stdout}");
    assert!(stdout.contains(SHARD1), "{stdout}");

    let out = env.run(&["jobs", "list", "--json"]);
    let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(jobs[0]["kind"], "download");
    assert_eq!(jobs[0]["status"], "succeeded");

    // Without a terminal to ask on, nothing is deleted unless --yes says so.
    let out = env.run(&["models", "rm", "tiny/llama"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("[cli.not_confirmed]"), "{stderr}");
    // Six files, each a blob and a link in the snapshot, and the branch's ref.
    assert!(stdout.contains("removes 13 file(s)"), "{stdout}");
    assert!(stdout.contains(SHARD1), "{stdout}");
    assert!(env.models().join("hub/models--tiny--llama").exists());
    let out = env.run(&["models", "rm", "tiny/llama", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Deleted tiny/llama (13 file(s)"));
    assert!(!env.models().join("hub/models--tiny--llama").exists());
}

/// A small Llama GGUF file's bytes.
fn gguf() -> Vec<u8> {
    GgufBuilder::new()
        .kv_str("general.architecture", "llama")
        .tensor("token_embd.weight", &[256, 100], GgmlType::Q8_0)
        .build()
}

/// A repository of two GGUF files, as GGUF repositories are published.
fn gguf_repo() -> FakeRepo {
    let file = |name: &str| FakeFile {
        name: name.into(),
        bytes: gguf(),
        lfs: true,
    };
    FakeRepo {
        id: "tiny/ggufs".into(),
        commit: "c".repeat(40),
        files: vec![file("tiny-Q8_0.gguf"), file("tiny-Q4_0.gguf")],
        access: Access::Public,
    }
}

#[test]
fn rm_deletes_only_what_adapt_wrote_and_says_why_not() {
    let hub = FakeHub::start(vec![gguf_repo()]);
    let env = Env::new(&hub);
    for file in ["tiny-Q8_0.gguf", "tiny-Q4_0.gguf"] {
        let out = env.run(&["models", "pull", "tiny/ggufs", "--file", file]);
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    // The person's own GGUF file, put in the models folder by hand.
    let mine = env.models().join("mine.gguf");
    std::fs::write(&mine, gguf()).unwrap();
    // A model imported from elsewhere, and a file the person later put inside its folder.
    let elsewhere = env.dir.path().join("elsewhere/small.gguf");
    std::fs::create_dir_all(elsewhere.parent().unwrap()).unwrap();
    std::fs::write(&elsewhere, gguf()).unwrap();
    let out = env.run(&["models", "import", elsewhere.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let refused = |args: &[&str], code: &str| {
        let out = env.run(args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(&format!("[{code}]")), "{args:?}: {stderr}");
        stderr
    };
    let stderr = refused(&["models", "rm", "mine.gguf", "--yes"], "library.not_owned");
    assert!(stderr.contains("your file"), "{stderr}");
    assert!(mine.exists());
    let stderr = refused(
        &["models", "rm", "tiny/ggufs/tiny-Q8_0.gguf", "--yes"],
        "library.part_of_repository",
    );
    assert!(stderr.contains("adapt models rm tiny/ggufs"), "{stderr}");
    let snapshot = env.models().join("hub/models--tiny--ggufs/snapshots");
    assert!(std::fs::read_dir(&snapshot).unwrap().count() == 1);

    let out = env.run(&["models", "rm", "small.gguf", "--yes"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!env.models().join("small.gguf").exists());
    assert!(elsewhere.exists(), "the original stays");
    let out = env.run(&["models", "rm", "tiny/ggufs", "--yes"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains("tiny-Q4_0.gguf") && stdout.contains("tiny-Q8_0.gguf"));
    assert!(!env.models().join("hub/models--tiny--ggufs").exists());
    assert!(mine.exists());
    let out = env.run(&["models", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mine.gguf"]);
}

#[test]
fn hub_errors_print_their_code_and_what_to_do() {
    let hub = FakeHub::start(vec![tiny_model_repo("tiny/llama", 4096)]);
    let env = Env::new(&hub);
    let out = env.run(&["models", "pull", "tiny/missing"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("[hub.not_found]"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let out = env.run(&["models", "pull", "not a repo"]);
    assert!(text(&out.stderr).contains("[hub.bad_repo_id]"));
    let out = env.run(&["models", "inspect", "nothing-here"]);
    assert!(text(&out.stderr).contains("[library.not_found]"));
}

#[test]
fn a_killed_pull_resumes_where_it_stopped() {
    let hub = FakeHub::start(vec![tiny_model_repo("tiny/llama", 2 << 20)]);
    hub.throttle(Some(1 << 20));
    let env = Env::new(&hub);
    let mut child = env
        .command(&["models", "pull", "tiny/llama"])
        .spawn()
        .unwrap();
    let started = Instant::now();
    let partial = loop {
        if let Some((_, len)) = incomplete(&env.models()).filter(|(_, len)| *len > 256 * 1024) {
            break len;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no partial file"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let (path, kept) = incomplete(&env.models()).expect("the partial file is kept");
    assert!(kept >= partial, "{kept} < {partial}");
    assert!(path.to_string_lossy().ends_with(".incomplete"));

    // Let the server notice the killed connection (it logs a request when it ends) before
    // the log is cleared for the resumed pull.
    hub.throttle(None);
    let killed_logged = Instant::now();
    while !hub
        .log()
        .iter()
        .any(|s| s.file.as_deref() == Some(SHARD1) && s.bytes > 0)
    {
        assert!(killed_logged.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    hub.clear_log();
    let out = env.run(&["models", "pull", "tiny/llama"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains(&format!("resumed {SHARD1}")), "{stdout}");
    let storage: Vec<_> = hub
        .log()
        .into_iter()
        .filter(|s| s.file.as_deref() == Some(SHARD1) && s.path.starts_with("/storage/"))
        .collect();
    assert_eq!(storage.len(), 1, "{storage:?}");
    assert_eq!(storage[0].range_start, Some(kept));
    let size = tiny_model_repo("tiny/llama", 2 << 20)
        .files
        .iter()
        .find(|f| f.name == SHARD1)
        .unwrap()
        .bytes
        .len() as u64;
    assert_eq!(storage[0].bytes, size - kept);
    assert!(incomplete(&env.models()).is_none());
}

/// Every file of `repo` the pull fetched is in its snapshot byte for byte, each LFS blob named
/// by its sha256, the weights' shards among them, and no partial download left.
fn assert_pulled_intact(models: &Path, repo: &FakeRepo) {
    let snapshot = models
        .join("hub/models--tiny--llama/snapshots")
        .join(&repo.commit);
    assert!(snapshot.join(SHARD1).is_file(), "the shard was not pulled");
    for file in &repo.files {
        let path = snapshot.join(&file.name);
        if !path.exists() {
            continue;
        }
        assert!(
            std::fs::read(&path).unwrap() == file.bytes,
            "{} differs",
            file.name
        );
        if file.lfs {
            let blob = std::fs::canonicalize(&path).unwrap();
            assert_eq!(
                blob.file_name().unwrap().to_string_lossy(),
                sha256_hex(&file.bytes),
                "{}",
                file.name
            );
        }
    }
    assert!(incomplete(models).is_none(), "a partial download was left");
}

#[test]
fn a_pull_killed_ten_times_ends_complete_and_verified() {
    if !adapt_testsupport::slow_tests("a_pull_killed_ten_times_ends_complete_and_verified") {
        return;
    }
    let repo = tiny_model_repo("tiny/llama", 2 << 20);
    let hub = FakeHub::start(vec![repo.clone()]);
    // 4 MB at 512 KB/s: longer than the ten runs before their kills, together.
    hub.throttle(Some(512 << 10));
    let env = Env::new(&hub);
    // Killed (SIGKILL) ten times at pseudo-random moments: while asking for the repository,
    // while writing a file, between files.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut mid_file = 0;
    for _ in 0..10 {
        let mut child = env
            .command(&["models", "pull", "tiny/llama"])
            .spawn()
            .unwrap();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        std::thread::sleep(Duration::from_millis(100 + state % 500));
        assert!(child.try_wait().unwrap().is_none(), "the pull ended early");
        child.kill().unwrap();
        child.wait().unwrap();
        mid_file += usize::from(incomplete(&env.models()).is_some());
    }
    assert!(mid_file > 0, "no kill landed in the middle of a file");
    hub.throttle(None);
    let out = env.run(&["models", "pull", "tiny/llama"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_pulled_intact(&env.models(), &repo);
}

#[test]
fn a_disk_that_fills_during_a_pull_is_named_and_the_pull_resumes_once_there_is_room() {
    let test = "a_disk_that_fills_during_a_pull_is_named_and_the_pull_resumes_once_there_is_room";
    let repo = tiny_model_repo("tiny/llama", 2 << 20);
    let hub = FakeHub::start(vec![repo.clone()]);
    hub.throttle(Some(1 << 20));
    let env = Env::new(&hub);
    let Some(disk) = SmallDisk::mount(test, &env.models(), 16 << 20) else {
        return;
    };
    let child = env
        .command(&["models", "pull", "tiny/llama"])
        .spawn()
        .unwrap();
    let started = Instant::now();
    while incomplete(&env.models()).is_none_or(|(_, len)| len < 256 * 1024) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no partial file"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let filler = disk.fill();
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("[hub.disk_full]"), "{stderr}");
    let (_, kept) = incomplete(&env.models()).expect("the partial file is kept");
    assert!(kept >= 256 * 1024);
    // With room again, the same pull resumes the partial file and ends verified.
    std::fs::remove_file(filler).unwrap();
    hub.throttle(None);
    let out = env.run(&["models", "pull", "tiny/llama"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(stdout.contains(&format!("resumed {SHARD1}")), "{stdout}");
    assert_pulled_intact(&env.models(), &repo);
}
