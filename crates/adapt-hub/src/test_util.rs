//! [`FakeHub`]: a Hub look-alike HTTP server on 127.0.0.1 for tests and demos, serving tiny
//! repositories with the Hub's URL layout and headers — repository info
//! (`/api/models/{repo}/revision/{rev}`), files (`/{repo}/resolve/{rev}/{file}` with `ETag`,
//! `X-Repo-Commit`, `Content-Length`; LFS files answer `302` to a storage path with
//! `X-Linked-Etag` and `X-Linked-Size`), `Range` requests (`206` + `Content-Range`), and the
//! Hub's errors (`X-Error-Code`: `RepoNotFound`, `RevisionNotFound`, `EntryNotFound`,
//! `GatedRepo`; `401` for a private repository without the token). It logs every request
//! with the range asked for and the body bytes it sent, and injects faults once each: a
//! connection dropped after N bytes of a file, or a file served corrupted.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use sha1::Digest as _;

/// One file of a fake repository.
#[derive(Debug, Clone)]
pub struct FakeFile {
    pub name: String,
    pub bytes: Vec<u8>,
    /// Served as the Hub serves LFS files (weights): a redirect to storage, sha256 etag.
    pub lfs: bool,
}

/// Who may read a fake repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    /// Needs [`FakeHub::TOKEN`]; without it, 401.
    Private,
    /// Its info is public; its files answer 403 `GatedRepo`.
    Gated,
}

#[derive(Debug, Clone)]
pub struct FakeRepo {
    pub id: String,
    pub commit: String,
    pub files: Vec<FakeFile>,
    pub access: Access,
}

/// Misbehaviour, each used once by the next matching download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Send the full headers but only `bytes` bytes of `file`'s body, then close.
    DropAfter { file: String, bytes: u64 },
    /// Serve `file` with every byte flipped.
    Corrupt { file: String },
}

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub path: String,
    pub status: u16,
    /// The file a `resolve` or storage request was for.
    pub file: Option<String>,
    /// The start of the `Range` asked for.
    pub range_start: Option<u64>,
    /// Body bytes sent.
    pub bytes: u64,
}

#[derive(Default)]
struct State {
    repos: Vec<FakeRepo>,
    faults: Vec<Fault>,
    log: Vec<Served>,
    bytes_per_second: Option<u64>,
    /// Connections accepted and not yet logged.
    in_flight: usize,
}

/// The server; it stops when dropped.
pub struct FakeHub {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeHub {
    /// The token private repositories accept.
    pub const TOKEN: &'static str = "hf_fake_token_for_tests";

    /// Serves `repos` on 127.0.0.1 at a free port.
    pub fn start(repos: Vec<FakeRepo>) -> FakeHub {
        FakeHub::start_at(0, repos)
    }

    /// Serves `repos` on 127.0.0.1 at `port` (0: any free port).
    pub fn start_at(port: u16, repos: Vec<FakeRepo>) -> FakeHub {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind 127.0.0.1");
        let port = listener.local_addr().expect("local address").port();
        let state = Arc::new(Mutex::new(State {
            repos,
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = state.clone();
                    lock(&state).in_flight += 1;
                    std::thread::spawn(move || handle(stream, &state, port));
                }
            })
        };
        FakeHub {
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, for `HF_ENDPOINT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn add_fault(&self, fault: Fault) {
        lock(&self.state).faults.push(fault);
    }

    /// Sends file bodies at about this speed (`None`: as fast as possible).
    pub fn throttle(&self, bytes_per_second: Option<u64>) {
        lock(&self.state).bytes_per_second = bytes_per_second;
    }

    /// Every request so far, once those being answered are done (see [`FakeHub::wait_idle`]).
    pub fn log(&self) -> Vec<Served> {
        self.wait_idle();
        self.log_now()
    }

    /// The requests logged so far, without waiting for those being answered.
    pub fn log_now(&self) -> Vec<Served> {
        lock(&self.state).log.clone()
    }

    /// Forgets the requests so far, after waiting for those still being answered (a
    /// connection the client dropped is logged when the server notices).
    pub fn clear_log(&self) {
        self.wait_idle();
        lock(&self.state).log.clear();
    }

    /// Waits (up to 30 s) until every accepted connection has been answered and logged.
    pub fn wait_idle(&self) {
        let started = std::time::Instant::now();
        while lock(&self.state).in_flight > 0 && started.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Body bytes sent for `file` so far.
    pub fn bytes_served(&self, file: &str) -> u64 {
        self.log()
            .iter()
            .filter(|s| s.file.as_deref() == Some(file))
            .map(|s| s.bytes)
            .sum()
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// Lower-case hex sha256 of `bytes` (an LFS file's id).
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::hex(&sha2::Sha256::digest(bytes))
}

/// The git blob hash of `bytes` (a git-stored file's id and ETag).
pub fn git_blob_id(bytes: &[u8]) -> String {
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    crate::hex(&h.finalize())
}

/// A safetensors file with `tensors` (name, dtype, shape), data filled with a pattern.
pub fn safetensors(tensors: &[(&str, &str, &[u64])]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!({"format": "pt"}));
    let mut offset = 0u64;
    for (name, dtype, shape) in tensors {
        let width = match *dtype {
            "F32" | "U32" | "I32" => 4,
            "F16" | "BF16" => 2,
            _ => 1,
        };
        let len = shape.iter().product::<u64>() * width;
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    let mut json = serde_json::to_vec(&header).expect("json");
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend((0..offset).map(|i| (i * 31 % 251) as u8));
    out
}

/// A tiny Llama-shaped repository: config, tokenizer files, a README, a safetensors index and
/// two shards (LFS, about `shard_bytes` each), and a `.bin` file a pull must not fetch.
pub fn tiny_model_repo(id: &str, shard_bytes: u64) -> FakeRepo {
    let hidden = 64u64;
    let rows = (shard_bytes / (hidden * 2)).max(1);
    let text = |name: &str, body: String| FakeFile {
        name: name.into(),
        bytes: body.into_bytes(),
        lfs: false,
    };
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": hidden, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": rows,
        "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "torch_dtype": "float16"
    });
    let shard1 = safetensors(&[("model.embed_tokens.weight", "F16", &[rows, hidden])]);
    let shard2 = safetensors(&[
        ("lm_head.weight", "F16", &[rows, hidden]),
        ("model.norm.weight", "F16", &[hidden]),
    ]);
    let index = serde_json::json!({
        "metadata": {"total_size": shard1.len() + shard2.len()},
        "weight_map": {
            "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
            "lm_head.weight": "model-00002-of-00002.safetensors",
            "model.norm.weight": "model-00002-of-00002.safetensors"
        }
    });
    FakeRepo {
        id: id.into(),
        commit: git_blob_id(id.as_bytes()),
        access: Access::Public,
        files: vec![
            text("README.md", "# tiny\n".into()),
            text("config.json", config.to_string()),
            text(
                "tokenizer.json",
                r#"{"version":"1.0","model":{"type":"BPE"}}"#.into(),
            ),
            text(
                "tokenizer_config.json",
                r#"{"chat_template":"{{ messages }}"}"#.into(),
            ),
            text("model.safetensors.index.json", index.to_string()),
            FakeFile {
                name: "model-00001-of-00002.safetensors".into(),
                bytes: shard1,
                lfs: true,
            },
            FakeFile {
                name: "model-00002-of-00002.safetensors".into(),
                bytes: shard2,
                lfs: true,
            },
            FakeFile {
                name: "pytorch_model.bin".into(),
                bytes: vec![7; 1000],
                lfs: true,
            },
        ],
    }
}

struct Request {
    path: String,
    range_start: Option<u64>,
    token: Option<String>,
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let _method = parts.next()?;
    let path = parts.next()?.to_string();
    let mut request = Request {
        path,
        range_start: None,
        token: None,
    };
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header.trim().is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "range" => {
                request.range_start = value
                    .strip_prefix("bytes=")
                    .and_then(|r| r.split('-').next())
                    .and_then(|s| s.parse().ok());
            }
            "authorization" => {
                request.token = value.strip_prefix("Bearer ").map(str::to_string);
            }
            _ => {}
        }
    }
    Some(request)
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Stop after this many body bytes (a dropped connection).
    cut: Option<u64>,
    file: Option<String>,
}

impl Answer {
    fn new(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            cut: None,
            file: None,
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }

    fn error(status: u16, code: Option<&str>, message: &str) -> Answer {
        let mut a = Answer::new(status).header("Content-Type", "application/json");
        if let Some(code) = code {
            a = a
                .header("X-Error-Code", code)
                .header("X-Error-Message", message);
        }
        a.body = serde_json::json!({ "error": message })
            .to_string()
            .into_bytes();
        a
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn handle(mut stream: TcpStream, state: &Mutex<State>, port: u16) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Some(request) = read_request(&stream) else {
        lock(state).in_flight -= 1;
        return;
    };
    let answer = route(&request, state, port);
    let rate = lock(state).bytes_per_second;
    let status = answer.status;
    let reason = match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        _ => "Other",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    for (k, v) in &answer.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        answer.body.len()
    ));
    let mut sent = 0u64;
    if stream.write_all(head.as_bytes()).is_ok() {
        let limit = answer.cut.unwrap_or(u64::MAX).min(answer.body.len() as u64) as usize;
        let step = match rate {
            Some(r) => ((r / 20).max(1) as usize).min(64 * 1024),
            None => 64 * 1024,
        };
        for chunk in answer.body[..limit].chunks(step) {
            if stream.write_all(chunk).is_err() {
                break;
            }
            sent += chunk.len() as u64;
            if let Some(r) = rate {
                std::thread::sleep(Duration::from_secs_f64(chunk.len() as f64 / r as f64));
            }
        }
        let _ = stream.flush();
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let mut state = lock(state);
    state.log.push(Served {
        path: request.path.clone(),
        status,
        file: answer.file,
        range_start: request.range_start,
        bytes: sent,
    });
    state.in_flight -= 1;
}

fn route(request: &Request, state: &Mutex<State>, port: u16) -> Answer {
    let path = request.path.split('?').next().unwrap_or("");
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(decode)
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let state_now = lock(state);
    let find = |id: &str| state_now.repos.iter().find(|r| r.id == id).cloned();
    match seg.as_slice() {
        ["api", "models", org, name, "revision", rev] => {
            let id = format!("{org}/{name}");
            let Some(repo) = find(&id) else {
                return Answer::error(404, Some("RepoNotFound"), "Repository not found");
            };
            if repo.access == Access::Private && request.token.as_deref() != Some(FakeHub::TOKEN) {
                return Answer::error(401, None, "Invalid username or password.");
            }
            if *rev != "main" && *rev != repo.commit {
                return Answer::error(404, Some("RevisionNotFound"), "Invalid rev id");
            }
            let siblings: Vec<serde_json::Value> = repo
                .files
                .iter()
                .map(|f| {
                    let mut s = serde_json::json!({
                        "rfilename": f.name,
                        "blobId": git_blob_id(&f.bytes),
                        "size": f.bytes.len(),
                    });
                    if f.lfs {
                        s["lfs"] = serde_json::json!({
                            "sha256": sha256_hex(&f.bytes), "size": f.bytes.len(), "pointerSize": 134
                        });
                    }
                    s
                })
                .collect();
            let body = serde_json::json!({
                "_id": "fake", "id": repo.id, "sha": repo.commit, "private": repo.access == Access::Private,
                "gated": if repo.access == Access::Gated { serde_json::json!("manual") } else { serde_json::json!(false) },
                "siblings": siblings
            });
            let mut a = Answer::new(200).header("Content-Type", "application/json");
            a.body = body.to_string().into_bytes();
            a
        }
        [org, name, "resolve", rev, file @ ..] => {
            let id = format!("{org}/{name}");
            let file = file.join("/");
            let Some(repo) = find(&id) else {
                return Answer::error(404, Some("RepoNotFound"), "Repository not found");
            };
            match repo.access {
                Access::Private if request.token.as_deref() != Some(FakeHub::TOKEN) => {
                    return Answer::error(401, None, "Invalid username or password.");
                }
                Access::Gated => {
                    let message = format!(
                        "Access to model {id} is restricted and you are not in the authorized \
                         list. Visit http://127.0.0.1:{port}/{id} to ask for access."
                    );
                    return Answer::error(403, Some("GatedRepo"), &message);
                }
                _ => {}
            }
            if *rev != "main" && *rev != repo.commit {
                return Answer::error(404, Some("RevisionNotFound"), "Invalid rev id");
            }
            let Some(f) = repo.files.iter().find(|f| f.name == file) else {
                return Answer::error(404, Some("EntryNotFound"), "Entry not found");
            };
            if f.lfs {
                let sha = sha256_hex(&f.bytes);
                let mut a = Answer::new(302)
                    .header("Location", format!("/storage/{sha}"))
                    .header("X-Linked-Etag", format!("\"{sha}\""))
                    .header("X-Linked-Size", f.bytes.len().to_string())
                    .header("X-Repo-Commit", repo.commit.clone())
                    .header("ETag", format!("\"{sha}\""));
                a.file = Some(f.name.clone());
                return a;
            }
            let etag = git_blob_id(&f.bytes);
            let (commit, name, bytes) = (repo.commit.clone(), f.name.clone(), f.bytes.clone());
            drop(state_now);
            serve_body(request, state, &name, bytes)
                .header("ETag", format!("\"{etag}\""))
                .header("X-Repo-Commit", commit)
        }
        ["storage", sha] => {
            let found = state_now
                .repos
                .iter()
                .flat_map(|r| r.files.iter())
                .find(|f| f.lfs && sha256_hex(&f.bytes) == *sha)
                .cloned();
            drop(state_now);
            match found {
                Some(f) => serve_body(request, state, &f.name, f.bytes)
                    .header("ETag", format!("\"storage-{}\"", &sha[..8])),
                None => Answer::error(404, None, "no such object"),
            }
        }
        _ => Answer::error(404, None, "Not Found"),
    }
}

/// A file's body: whole, or from the range start; faults applied.
fn serve_body(request: &Request, state: &Mutex<State>, name: &str, mut bytes: Vec<u8>) -> Answer {
    let mut state = lock(state);
    let corrupt = Fault::Corrupt { file: name.into() };
    if let Some(at) = state.faults.iter().position(|f| *f == corrupt) {
        state.faults.remove(at);
        bytes.iter_mut().for_each(|b| *b = !*b);
    }
    let cut = state
        .faults
        .iter()
        .position(|f| matches!(f, Fault::DropAfter { file, .. } if file == name));
    let cut = cut.map(|at| match state.faults.remove(at) {
        Fault::DropAfter { bytes, .. } => bytes,
        Fault::Corrupt { .. } => 0,
    });
    let len = bytes.len() as u64;
    let mut answer = match request.range_start {
        Some(start) if start >= len => {
            return Answer::new(416).header("Content-Range", format!("bytes */{len}"));
        }
        Some(start) => {
            let mut a = Answer::new(206)
                .header("Content-Range", format!("bytes {start}-{}/{len}", len - 1));
            a.body = bytes[start as usize..].to_vec();
            a
        }
        None => {
            let mut a = Answer::new(200);
            a.body = bytes;
            a
        }
    };
    answer = answer.header("Accept-Ranges", "bytes");
    answer.cut = cut;
    answer.file = Some(name.to_string());
    answer
}
