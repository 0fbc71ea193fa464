//! The library over small model folders, quantized MLX folders, GGUF files and a Hugging Face
//! cache made by the tests.

use std::path::Path;

use adapt_gguf::test_util::GgufBuilder;
use adapt_gguf::{GgmlType, GgufSupport, GgufValue};

use super::*;

const SUPPORTED: &[&str] = &["llama", "mistral", "qwen2"];

/// A safetensors file with `tensors` (name, dtype, shape), zero data.
fn safetensors(tensors: &[(&str, &str, &[u64])]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0u64;
    for (name, dtype, shape) in tensors {
        let width = if matches!(*dtype, "F32" | "U32") {
            4
        } else {
            2
        };
        let len = shape.iter().product::<u64>() * width;
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    let json = serde_json::to_vec(&header).unwrap();
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.resize(out.len() + offset as usize, 0);
    out
}

fn config(model_type: &str, extra: serde_json::Value) -> String {
    let mut c = serde_json::json!({
        "model_type": model_type, "hidden_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100,
        "max_position_embeddings": 1024
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c.to_string()
}

/// A float16 Llama folder: 100×64 embeddings + 2 layers of 64×64 q_proj = 14_592 parameters.
fn float_folder(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        config("llama", serde_json::json!({})),
    )
    .unwrap();
    std::fs::write(dir.join("tokenizer.json"), "{}").unwrap();
    let st = safetensors(&[
        ("model.embed_tokens.weight", "BF16", &[100, 64]),
        ("model.layers.0.self_attn.q_proj.weight", "BF16", &[64, 64]),
        ("model.layers.1.self_attn.q_proj.weight", "BF16", &[64, 64]),
    ]);
    std::fs::write(dir.join("model.safetensors"), st).unwrap();
}

/// An MLX 4-bit folder: a 64×64 weight packed as 64×8 u32 with scales and biases, plus a
/// float norm.
fn quantized_folder(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let q = serde_json::json!({"quantization": {"group_size": 64, "bits": 4}});
    std::fs::write(dir.join("config.json"), config("qwen2", q)).unwrap();
    let st = safetensors(&[
        ("model.layers.0.mlp.up_proj.weight", "U32", &[64, 8]),
        ("model.layers.0.mlp.up_proj.scales", "F16", &[64, 1]),
        ("model.layers.0.mlp.up_proj.biases", "F16", &[64, 1]),
        ("model.norm.weight", "F16", &[64]),
    ]);
    std::fs::write(dir.join("model.safetensors"), st).unwrap();
}

fn gguf(path: &Path, arch: &str, ty: GgmlType) {
    let bytes = GgufBuilder::new()
        .kv_str("general.architecture", arch)
        .kv(&format!("{arch}.block_count"), GgufValue::U32(2))
        .kv(&format!("{arch}.embedding_length"), GgufValue::U32(256))
        .kv(&format!("{arch}.attention.head_count"), GgufValue::U32(4))
        .kv(&format!("{arch}.context_length"), GgufValue::U32(2048))
        .kv(&format!("{arch}.feed_forward_length"), GgufValue::U32(512))
        .kv_str("tokenizer.ggml.model", "gpt2")
        .kv_strings("tokenizer.ggml.tokens", &["a", "b"])
        // Rows of 256: a whole number of blocks for every quantized type.
        .tensor("token_embd.weight", &[256, 100], ty)
        .tensor("output_norm.weight", &[256], GgmlType::F32)
        .build();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// A hub-cache-layout repository with a float folder snapshot.
fn hub_repo(hub: &Path, repo: &str) -> std::path::PathBuf {
    let dir = hub.join(format!("models--{}", repo.replace('/', "--")));
    let snapshot = dir.join("snapshots/abc");
    float_folder(&snapshot);
    std::fs::create_dir_all(dir.join("refs")).unwrap();
    std::fs::write(dir.join("refs/main"), "abc").unwrap();
    snapshot
}

/// GGUF reads only Llama here, while folders of Qwen2 run too.
fn supported() -> Supported {
    Supported::new(
        SUPPORTED,
        GgufSupport {
            architectures: &["llama", "mistral"],
            rope_scaling: &["linear"],
            rope_freqs: false,
        },
    )
}

#[test]
fn folders_are_described_from_config_and_safetensors_headers() {
    let dir = tempfile::tempdir().unwrap();
    float_folder(dir.path());
    let d = describe(dir.path(), &supported()).unwrap();
    assert_eq!(d.format, Format::Folder);
    assert_eq!(d.architecture.as_deref(), Some("llama"));
    assert_eq!(d.parameters, Some(100 * 64 + 2 * 64 * 64));
    assert_eq!(d.dtype.as_deref(), Some("bf16"));
    assert_eq!(d.quantization, None);
    assert!(d.runnable, "{:?}", d.not_runnable);
    assert_eq!(d.tensors, 3);
    let names: Vec<&str> = d.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["config.json", "model.safetensors", "tokenizer.json"]
    );
    assert_eq!(d.bytes, d.files.iter().map(|f| f.bytes).sum::<u64>());
    let s = d.shape.unwrap();
    assert_eq!((s.layers, s.hidden, s.kv_heads, s.head_dim), (2, 64, 2, 16));
}

#[test]
fn quantized_mlx_weights_count_unpacked_parameters() {
    let dir = tempfile::tempdir().unwrap();
    quantized_folder(dir.path());
    let d = describe(dir.path(), &supported()).unwrap();
    assert_eq!(d.architecture.as_deref(), Some("qwen2"));
    // 64×8 u32 at 4 bits = 64×64 values; scales and biases are not parameters.
    assert_eq!(d.parameters, Some(64 * 64 + 64));
    assert_eq!(d.quantization.as_deref(), Some("4-bit, group 64"));
    assert_eq!(d.dtype.as_deref(), Some("f16"));
}

#[test]
fn gguf_files_are_described_from_their_tensor_table() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    gguf(&path, "llama", GgmlType::Q4_1);
    let d = describe(&path, &supported()).unwrap();
    assert_eq!(d.format, Format::Gguf);
    assert_eq!(d.parameters, Some(25_600 + 256));
    assert_eq!(d.dtype.as_deref(), Some("Q4_1"));
    assert_eq!(d.quantization.as_deref(), Some("Q4_1"));
    assert!(d.runnable);
    assert_eq!(d.shape.unwrap().context, Some(2048));

    // Every K-quant runs; importance quants do not, and the reason names the tensor.
    for ty in [
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ] {
        let k = dir.path().join(format!("{ty}.gguf"));
        gguf(&k, "llama", ty);
        let d = describe(&k, &supported()).unwrap();
        assert!(d.runnable, "{ty}: {:?}", d.not_runnable);
        assert_eq!(d.quantization.as_deref(), Some(ty.name()));
    }
    let iq = dir.path().join("iq.gguf");
    gguf(&iq, "llama", GgmlType::IQ2_XS);
    let d = describe(&iq, &supported()).unwrap();
    assert!(!d.runnable);
    let why = d.not_runnable.unwrap();
    assert!(
        why.starts_with("tensor 'token_embd.weight' is stored as IQ2_XS"),
        "{why}"
    );
    // An architecture whose folders run but whose GGUF files the engine does not read.
    let qwen = dir.path().join("q.gguf");
    gguf(&qwen, "qwen2", GgmlType::Q8_0);
    let why = describe(&qwen, &supported()).unwrap().not_runnable.unwrap();
    assert!(
        why.contains("`qwen2` cannot be loaded from GGUF yet"),
        "{why}"
    );
    let other = dir.path().join("o.gguf");
    gguf(&other, "mamba", GgmlType::F16);
    let why = describe(&other, &supported())
        .unwrap()
        .not_runnable
        .unwrap();
    assert!(why.contains("`mamba` cannot be loaded"), "{why}");
}

#[test]
fn what_is_not_a_model_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.gguf");
    std::fs::write(&text, "hello").unwrap();
    let e = describe(&text, &supported()).unwrap_err();
    assert_eq!(e.code(), "library.not_a_model");
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let e = describe(&empty, &supported()).unwrap_err();
    assert_eq!(e.code(), "library.not_a_model");
    assert!(e.to_string().contains("config.json"), "{e}");
    // A folder with a broken safetensors file is described, not runnable, never a panic.
    float_folder(&dir.path().join("broken"));
    std::fs::write(dir.path().join("broken/model.safetensors"), [255u8; 12]).unwrap();
    let d = describe(&dir.path().join("broken"), &supported()).unwrap();
    assert!(!d.runnable);
    assert!(d.not_runnable.unwrap().contains("model.safetensors"));
}

#[test]
fn the_list_has_our_models_then_the_hugging_face_caches() {
    let models = tempfile::tempdir().unwrap();
    let hf = tempfile::tempdir().unwrap();
    hub_repo(&models.path().join("hub"), "tiny/pulled");
    float_folder(&models.path().join("imported"));
    gguf(&models.path().join("bundled.gguf"), "llama", GgmlType::Q8_0);
    std::fs::write(models.path().join("notes.txt"), "x").unwrap();
    hub_repo(hf.path(), "theirs/model");
    let lib = Library::new(models.path(), Some(hf.path()), supported());
    let list = lib.list();
    let names: Vec<(&str, Source)> = list.iter().map(|m| (m.name.as_str(), m.source)).collect();
    assert_eq!(
        names,
        [
            ("tiny/pulled", Source::Library),
            ("bundled.gguf", Source::Library),
            ("imported", Source::Library),
            ("theirs/model", Source::HuggingFaceCache),
        ]
    );
    assert_eq!(list[0].revision.as_deref(), Some("abc"));
    assert!(list.iter().all(|m| m.description.runnable));
    assert_eq!(
        lib.find("theirs/model").unwrap().source,
        Source::HuggingFaceCache
    );
    let by_path = lib
        .find(models.path().join("imported").to_str().unwrap())
        .unwrap();
    assert_eq!(by_path.name, "imported");
    assert_eq!(lib.find("nope").unwrap_err().code(), "library.not_found");
}

#[test]
fn import_copies_models_and_refuses_the_rest() {
    let models = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let lib = Library::new(&models.path().join("cache"), None, supported());
    let folder = elsewhere.path().join("my-model");
    float_folder(&folder);
    let entry = lib.import(&folder).unwrap();
    assert_eq!(entry.name, "my-model");
    assert_eq!(entry.path, models.path().join("cache/my-model"));
    assert!(entry.description.runnable);
    assert!(folder.join("config.json").exists(), "the original stays");
    let e = lib.import(&folder).unwrap_err();
    assert_eq!(e.code(), "library.exists");
    assert!(e.to_string().contains("adapt models rm my-model"), "{e}");

    let file = elsewhere.path().join("small.gguf");
    gguf(&file, "llama", GgmlType::F16);
    assert_eq!(lib.import(&file).unwrap().name, "small.gguf");

    let text = elsewhere.path().join("readme.md");
    std::fs::write(&text, "# hi").unwrap();
    assert_eq!(lib.import(&text).unwrap_err().code(), "library.not_a_model");
    let no_weights = elsewhere.path().join("no-weights");
    std::fs::create_dir(&no_weights).unwrap();
    std::fs::write(
        no_weights.join("config.json"),
        config("llama", serde_json::json!({})),
    )
    .unwrap();
    assert_eq!(
        lib.import(&no_weights).unwrap_err().code(),
        "library.not_a_model"
    );
    assert_eq!(
        lib.import(&models.path().join("cache/my-model"))
            .unwrap_err()
            .code(),
        "library.already_in_library"
    );
    let names: Vec<String> = lib.list().into_iter().map(|m| m.name).collect();
    assert_eq!(names, ["my-model", "small.gguf"]);
}

/// The record Adapt keeps of a model it put at `root`: every file under it.
fn record(name: &str, root: &Path, origin: &str) -> Owned {
    let files = if root.is_dir() {
        remove_walk(root)
            .into_iter()
            .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
            .collect()
    } else {
        vec![".".into()]
    };
    Owned {
        name: name.into(),
        root: root.to_path_buf(),
        origin: origin.into(),
        files,
    }
}

fn remove_walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(remove_walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// Plans and removes `name` as a person who confirms does.
fn remove(lib: &Library, name: &str, owned: &[Owned]) -> Result<RemovalPlan, LibraryError> {
    let plan = lib.removal_plan(name, owned)?;
    lib.remove_planned(name, owned, &plan.confirmation)
}

#[test]
fn remove_deletes_only_the_files_adapt_recorded() {
    let models = tempfile::tempdir().unwrap();
    let hf = tempfile::tempdir().unwrap();
    let ours = hub_repo(&models.path().join("hub"), "tiny/pulled");
    let repo = models.path().join("hub/models--tiny--pulled");
    float_folder(&models.path().join("imported"));
    gguf(
        &models.path().join("imported.gguf"),
        "llama",
        GgmlType::Q8_0,
    );
    let owned = vec![
        record("tiny/pulled", &repo, "pulled"),
        record("imported", &models.path().join("imported"), "imported"),
        record(
            "imported.gguf",
            &models.path().join("imported.gguf"),
            "imported",
        ),
    ];
    // The person's own files in the models folder, one of them inside an imported folder.
    gguf(&models.path().join("mine.gguf"), "llama", GgmlType::Q8_0);
    std::fs::write(models.path().join("imported/notes.txt"), "mine").unwrap();
    let theirs = hub_repo(hf.path(), "theirs/model");
    let outside = tempfile::tempdir().unwrap();
    float_folder(&outside.path().join("m"));
    let lib = Library::new(models.path(), Some(hf.path()), supported());

    let e = lib.removal_plan("theirs/model", &owned).unwrap_err();
    assert_eq!(e.code(), "library.not_owned");
    assert!(e.to_string().contains("Hugging Face cache"), "{e}");
    assert!(theirs.join("config.json").exists());
    let e = lib
        .removal_plan(outside.path().join("m").to_str().unwrap(), &owned)
        .unwrap_err();
    assert_eq!(e.code(), "library.not_owned");
    assert!(outside.path().join("m/config.json").exists());
    let e = lib.removal_plan("mine.gguf", &owned).unwrap_err();
    assert_eq!(e.code(), "library.not_owned");
    assert!(e.to_string().contains("your file"), "{e}");
    assert!(models.path().join("mine.gguf").exists());

    let plan = lib.removal_plan("tiny/pulled", &owned).unwrap();
    assert_eq!(plan.origin, "pulled");
    assert_eq!(plan.files.len(), 4, "{plan:?}");
    assert_eq!(plan.bytes, plan.files.iter().map(|f| f.bytes).sum::<u64>());
    assert!(plan.bytes > 0 && plan.kept.is_empty());
    let e = lib
        .remove_planned("tiny/pulled", &owned, "0000000000000000")
        .unwrap_err();
    assert_eq!(e.code(), "library.unconfirmed");
    assert!(ours.exists());
    lib.remove_planned("tiny/pulled", &owned, &plan.confirmation)
        .unwrap();
    assert!(
        !repo.exists(),
        "the repository's folders went with its files"
    );
    assert!(models.path().join("hub").exists());

    // An imported folder loses Adapt's files; the person's note and the folder stay.
    let plan = remove(&lib, "imported", &owned).unwrap();
    assert_eq!(plan.kept, [models.path().join("imported/notes.txt")]);
    assert!(!models.path().join("imported/config.json").exists());
    assert!(models.path().join("imported/notes.txt").exists());
    remove(&lib, "imported.gguf", &owned).unwrap();
    assert!(!models.path().join("imported.gguf").exists());
    assert!(models.path().join("mine.gguf").exists());
    let left: Vec<String> = lib.list().into_iter().map(|m| m.name).collect();
    assert_eq!(left, ["mine.gguf", "theirs/model"]);
}

#[test]
fn remove_refuses_part_of_a_model_and_a_changed_plan() {
    let models = tempfile::tempdir().unwrap();
    // A repository pulled as a whole, holding two GGUF files.
    let repo = models.path().join("hub/models--tiny--ggufs");
    let snapshot = repo.join("snapshots/abc");
    gguf(&snapshot.join("a-Q8_0.gguf"), "llama", GgmlType::Q8_0);
    gguf(&snapshot.join("b-F16.gguf"), "llama", GgmlType::F16);
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "abc").unwrap();
    // An imported folder with a GGUF file nested inside it.
    let folder = models.path().join("imported");
    float_folder(&folder);
    gguf(&folder.join("extra/inner.gguf"), "llama", GgmlType::Q8_0);
    let owned = vec![
        record("tiny/ggufs", &repo, "pulled"),
        record("imported", &folder, "imported"),
    ];
    let lib = Library::new(models.path(), None, supported());
    let names: Vec<String> = lib.list().into_iter().map(|m| m.name).collect();
    assert!(
        names.contains(&"tiny/ggufs/a-Q8_0.gguf".to_string()),
        "{names:?}"
    );

    let e = lib
        .removal_plan("tiny/ggufs/a-Q8_0.gguf", &owned)
        .unwrap_err();
    assert_eq!(e.code(), "library.part_of_repository");
    assert!(e.to_string().contains("adapt models rm tiny/ggufs"), "{e}");
    let inner = folder.join("extra/inner.gguf");
    let e = lib
        .removal_plan(inner.to_str().unwrap(), &owned)
        .unwrap_err();
    assert_eq!(e.code(), "library.part_of_model");
    assert!(e.to_string().contains("`imported`"), "{e}");
    assert!(inner.exists());

    // A file changed after the plan was shown: the old confirmation no longer removes.
    let plan = lib.removal_plan("imported", &owned).unwrap();
    std::fs::write(folder.join("tokenizer.json"), "{\"grown\": true}").unwrap();
    let e = lib
        .remove_planned("imported", &owned, &plan.confirmation)
        .unwrap_err();
    assert_eq!(e.code(), "library.unconfirmed");
    assert!(folder.join("config.json").exists());

    // The whole repository goes by its name.
    let plan = remove(&lib, "tiny/ggufs", &owned).unwrap();
    assert_eq!(plan.files.len(), 3);
    assert!(!repo.exists());

    // A record without a file list deletes nothing.
    let bare = Owned {
        files: Vec::new(),
        ..record("imported", &folder, "imported")
    };
    let e = lib.removal_plan("imported", &[bare]).unwrap_err();
    assert_eq!(e.code(), "library.no_file_list");
    // A record whose files climb out of its folder is not followed.
    let climbing = Owned {
        files: vec!["../outside.txt".into()],
        ..record("imported", &folder, "imported")
    };
    let e = lib.removal_plan("imported", &[climbing]).unwrap_err();
    assert_eq!(e.code(), "library.no_file_list");
}

#[cfg(unix)]
#[test]
fn remove_never_follows_a_link_out_of_the_model() {
    let models = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let folder = models.path().join("imported");
    float_folder(&folder);
    let mut owned = record("imported", &folder, "imported");
    // After the import, a folder of the model is replaced by a link to the person's files.
    std::fs::create_dir_all(elsewhere.path().join("sub")).unwrap();
    std::fs::write(elsewhere.path().join("sub/keep.txt"), "precious").unwrap();
    std::os::unix::fs::symlink(elsewhere.path().join("sub"), folder.join("sub")).unwrap();
    owned.files.push("sub/keep.txt".into());
    let lib = Library::new(models.path(), None, supported());
    let e = lib.removal_plan("imported", &[owned]).unwrap_err();
    assert_eq!(e.code(), "library.no_file_list");
    assert!(elsewhere.path().join("sub/keep.txt").exists());
}

#[cfg(unix)]
#[test]
fn import_refuses_links_out_of_the_folder_and_copies_a_snapshot_s_blobs() {
    let models = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let lib = Library::new(&models.path().join("cache"), None, supported());
    std::fs::write(elsewhere.path().join("secret.txt"), "not for copying").unwrap();
    let folder = elsewhere.path().join("linked");
    float_folder(&folder);
    std::os::unix::fs::symlink(
        elsewhere.path().join("secret.txt"),
        folder.join("notes.txt"),
    )
    .unwrap();
    let e = lib.import(&folder).unwrap_err();
    assert_eq!(e.code(), "library.link_outside");
    assert!(e.to_string().contains("notes.txt"), "{e}");
    assert!(!models.path().join("cache/linked").exists());

    // A link inside the folder to another of its files is copied as that file.
    std::fs::remove_file(folder.join("notes.txt")).unwrap();
    std::os::unix::fs::symlink(folder.join("config.json"), folder.join("copy.json")).unwrap();
    let entry = lib.import(&folder).unwrap();
    let copied = entry.path.join("copy.json");
    assert!(!std::fs::symlink_metadata(&copied)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        std::fs::read(&copied).unwrap(),
        std::fs::read(folder.join("config.json")).unwrap()
    );

    // A Hugging Face snapshot links into its repository's blobs: those are copied.
    let hf = tempfile::tempdir().unwrap();
    let snapshot = hub_repo(hf.path(), "org/snap");
    let blobs = hf.path().join("models--org--snap/blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::rename(snapshot.join("model.safetensors"), blobs.join("123")).unwrap();
    std::os::unix::fs::symlink("../../blobs/123", snapshot.join("model.safetensors")).unwrap();
    let entry = lib.import(&snapshot).unwrap();
    assert!(entry.description.runnable);
    assert!(entry.path.join("model.safetensors").is_file());
}

#[test]
fn fit_estimates_chat_and_training_with_their_assumptions() {
    let dir = tempfile::tempdir().unwrap();
    float_folder(dir.path());
    let d = describe(dir.path(), &supported()).unwrap();
    let big = Memory {
        total: 64 << 30,
        available: 32 << 30,
    };
    let f = fit(&d, big, &FitOptions::default());
    assert_eq!(f.chat.verdict, Verdict::Fits);
    assert_eq!(f.train.verdict, Verdict::Fits);
    // The context is capped at the model's 1024 tokens: 2 layers × 2 kv heads × 16 × 1024 × K,V × f16.
    let kv = f
        .chat
        .parts
        .iter()
        .find(|(w, _)| w == "kv cache")
        .unwrap()
        .1;
    assert_eq!(kv, 2 * 2 * 16 * 1024 * 2 * 2);
    assert_eq!(f.chat.bytes, f.chat.parts.iter().map(|p| p.1).sum::<u64>());
    assert!(f.train.bytes > f.chat.bytes);
    assert!(f
        .chat
        .assumptions
        .iter()
        .any(|a| a.contains("1024-token context")));
    assert!(f
        .train
        .assumptions
        .iter()
        .any(|a| a.contains("LoRA rank 8")));

    let small = Memory {
        total: 300 << 20,
        available: 100 << 20,
    };
    let f = fit(&d, small, &FitOptions::default());
    assert_eq!(f.chat.verdict, Verdict::TooBig);
    let tight = Memory {
        total: 1 << 30,
        available: 1 << 20,
    };
    assert_eq!(
        fit(&d, tight, &FitOptions::default()).chat.verdict,
        Verdict::Tight
    );
    assert!(Memory::current().total > 0);
}

#[test]
fn gpt2_folders_state_their_shape_under_gpt2s_names() {
    let dir = tempfile::tempdir().unwrap();
    let c = serde_json::json!({"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4,
                               "n_positions": 1024, "vocab_size": 100});
    std::fs::write(dir.path().join("config.json"), c.to_string()).unwrap();
    let st = safetensors(&[("model.wte.weight", "F32", &[100, 64])]);
    std::fs::write(dir.path().join("model.safetensors"), st).unwrap();
    let mut supported = supported();
    supported.folders.push("gpt2".into());
    let d = describe(dir.path(), &supported).unwrap();
    let shape = d.shape.unwrap();
    assert_eq!((shape.layers, shape.hidden, shape.heads), (2, 64, 4));
    assert_eq!((shape.head_dim, shape.context), (16, Some(1024)));
}
