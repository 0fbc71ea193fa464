//! Conversion and quantization on the real SmolLM2: the GGUF file → an MLX folder that gives
//! the same logits, tokens and chat prompt; re-quantized folders (8- and 4-bit) that stay
//! close to it; and, with the reference environment (`ADAPT_REFERENCE_PYTHON`, set by
//! `scripts/test.sh` for slow tests), mlx-lm's own greedy continuations of our folders equal
//! ours token for token.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use adapt_engine::convert::gguf_to_folder;
use adapt_engine::mlx_rs::{Array, Dtype};
use adapt_engine::models::layers::QuantSpec;
use adapt_engine::quantize::{quantize_folder, Target};
use adapt_engine::testing::max_abs_diff;
use adapt_engine::{
    generate, load, prompt_tokens, Backend, ChatMessage, GenerateParams, LoadOptions, LoadedModel,
    SequenceCache, WeightFormat,
};
use adapt_testsupport::smollm2_gguf as smollm2;

static MLX: Mutex<()> = Mutex::new(());

fn lock() -> std::sync::MutexGuard<'static, ()> {
    MLX.lock().unwrap_or_else(|e| e.into_inner())
}

const PROMPTS: [&str; 5] = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three primary colors.",
    "Explain what a CPU does in one sentence.",
    "How many legs does a spider have?",
];

fn quiet(_: &str) {}

/// The converted folder, made once per test binary run.
fn converted(root: &Path) -> PathBuf {
    let out = root.join("SmolLM2-135M-Instruct");
    if !out.exists() {
        gguf_to_folder(&smollm2(), &out, &mut quiet).unwrap();
    }
    out
}

fn f32_dense() -> LoadOptions {
    LoadOptions {
        format: Some(WeightFormat {
            dtype: Dtype::Float32,
            dequantize: true,
        }),
        keep_quantized: false,
    }
}

fn logits(lm: &LoadedModel, ids: &[u32]) -> Array {
    let x: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
    let x = Array::from_slice(&x, &[1, x.len() as i32]);
    lm.model.forward(&x, &mut lm.model.new_cache()).unwrap()
}

fn user(text: &str) -> Vec<ChatMessage> {
    vec![ChatMessage::new("user", text)]
}

fn greedy_ids(lm: &LoadedModel, prompt: &str, max_tokens: usize) -> (Vec<u32>, Vec<u32>) {
    let ids = prompt_tokens(lm, &user(prompt)).unwrap();
    let mut cache = SequenceCache::new(&lm.model);
    let params = GenerateParams {
        max_tokens,
        ..GenerateParams::default()
    };
    let g = generate(
        &lm.model,
        &lm.tokenizer,
        &mut cache,
        &ids,
        &params,
        &mut |_: &str| true,
    )
    .unwrap();
    (ids, g.tokens)
}

#[test]
fn converted_folder_gives_the_gguf_model_logits_tokens_and_prompt() {
    let _mlx = lock();
    let tmp = tempfile::tempdir().unwrap();
    let report = gguf_to_folder(&smollm2(), &tmp.path().join("m"), &mut quiet).unwrap();
    // Q4_1 with a few Q8_0 tensors: 4-bit by default, 8-bit overrides per module.
    assert_eq!(report.quantization, "4-bit (group 32) mixed, float16");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.output.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["quantization"]["bits"], 4);
    assert_eq!(config["quantization"]["group_size"], 32);
    let overrides: Vec<_> = config["quantization"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.is_object())
        .map(|(k, v)| (k.clone(), v["bits"].clone()))
        .collect();
    assert!(!overrides.is_empty() && overrides.iter().all(|(_, b)| *b == 8));
    for file in [
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors",
    ] {
        assert!(report.output.join(file).is_file(), "{file} missing");
    }

    let gguf = load(&smollm2(), &f32_dense()).unwrap();
    let folder = load(&report.output, &f32_dense()).unwrap();
    assert_eq!(folder.info.architecture, "llama");
    assert_eq!(folder.info.n_params, gguf.info.n_params);
    for text in [
        "Hello, world!",
        "  two  spaces\tand a tab",
        "naïve café 東京 🙂",
    ] {
        assert_eq!(
            folder.tokenizer.encode(text, true).unwrap(),
            gguf.tokenizer.encode(text, true).unwrap(),
            "{text:?}"
        );
    }
    let prompt = prompt_tokens(&gguf, &user(PROMPTS[0])).unwrap();
    assert_eq!(prompt_tokens(&folder, &user(PROMPTS[0])).unwrap(), prompt);
    let d = max_abs_diff(&logits(&gguf, &prompt), &logits(&folder, &prompt));
    assert!(d < 2e-3, "GGUF vs folder logits differ by {d}");
}

#[test]
fn requantized_folders_stay_close_to_the_source() {
    let _mlx = lock();
    let tmp = tempfile::tempdir().unwrap();
    let src = converted(tmp.path());
    let mut results = Vec::new();
    for (bits, group, max_kl) in [(8, 64, 0.01), (4, 64, 0.6)] {
        let out = tmp.path().join(format!("q{bits}"));
        let target = Target::Quantize(QuantSpec {
            group_size: group,
            bits,
        });
        let r = quantize_folder(&src, &out, target, true, &mut quiet).unwrap();
        let kl = r.mean_kl.unwrap();
        eprintln!(
            "{bits}-bit g{group}: {} → {} bytes, mean KL {kl:.4}, perplexity {:.2} → {:.2}",
            r.bytes_before,
            r.bytes_after,
            r.perplexity_before.unwrap(),
            r.perplexity_after.unwrap()
        );
        assert!(kl < max_kl, "{bits}-bit: mean KL {kl}");
        results.push(r);
    }
    // 8-bit is larger than the 4-bit source, 4-bit with larger groups smaller.
    assert!(results[0].bytes_after > results[0].bytes_before);
    assert!(results[1].bytes_after < results[1].bytes_before);

    let dense = tmp.path().join("f16");
    let r = quantize_folder(&src, &dense, Target::Dequantize, true, &mut quiet).unwrap();
    assert!(r.mean_kl.unwrap() < 1e-4, "dequantizing changed the model");
    assert!(r.bytes_after > 2 * r.bytes_before);
    let lm = load(&dense, &f32_dense()).unwrap();
    let (_, answer) = greedy_ids(&lm, PROMPTS[0], 12);
    let text = lm.tokenizer.decode(&answer, true).unwrap();
    assert!(text.contains("Paris"), "{text}");
}

/// mlx-lm's greedy continuation of each prompt, through `scripts/reference/greedy.py`.
fn reference_greedy(
    python: &str,
    dir: &Path,
    max_tokens: usize,
    dense_f32: bool,
) -> Vec<(Vec<u32>, Vec<u32>)> {
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    args.extend(dense_f32.then(|| "--dense-f32".into()));
    args.push(dir.into());
    args.push(max_tokens.to_string().into());
    args.extend(PROMPTS.iter().map(Into::into));
    let stdout = adapt_testsupport::run_reference(python, "greedy.py", args);
    let json: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let ids = |v: &serde_json::Value| -> Vec<u32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    json.as_array()
        .unwrap()
        .iter()
        .map(|r| (ids(&r["prompt_ids"]), ids(&r["ids"])))
        .collect()
}

#[test]
fn mlx_lm_greedy_continuations_of_our_folders_equal_ours() {
    let Some(python) = adapt_testsupport::reference_python(
        "mlx_lm_greedy_continuations_of_our_folders_equal_ours",
    ) else {
        return;
    };
    let _mlx = lock();
    let tmp = tempfile::tempdir().unwrap();
    let src = converted(tmp.path());
    let mut folders = vec![("converted Q4_1".to_string(), src.clone())];
    for bits in [8, 4] {
        let out = tmp.path().join(format!("q{bits}"));
        let spec = QuantSpec {
            group_size: 64,
            bits,
        };
        quantize_folder(&src, &out, Target::Quantize(spec), false, &mut quiet).unwrap();
        folders.push((format!("{bits}-bit"), out));
    }
    const MAX_TOKENS: usize = 24;
    for (label, dir) in folders {
        // Both sides hold the weights as Adapt does on this backend: on a GPU as stored
        // (quantized, f16), on MLX's CPU backend dense f32 (where f16 kernels are slow).
        let format = WeightFormat::for_backend(Backend::detect());
        let theirs = reference_greedy(&python, &dir, MAX_TOKENS, format.dequantize);
        let options = LoadOptions {
            format: Some(format),
            keep_quantized: false,
        };
        let lm = load(&dir, &options).unwrap();
        for (prompt, (their_prompt, mut their_ids)) in PROMPTS.iter().zip(theirs) {
            // mlx-lm lists the end-of-sequence token it stopped at; we do not.
            if their_ids
                .last()
                .is_some_and(|t| lm.tokenizer.eos_token_ids().contains(t))
            {
                their_ids.pop();
            }
            let (our_prompt, our_ids) = greedy_ids(&lm, prompt, MAX_TOKENS);
            assert_eq!(
                our_prompt, their_prompt,
                "{label}: prompt ids for {prompt:?}"
            );
            assert_eq!(our_ids, their_ids, "{label}: continuation of {prompt:?}");
            eprintln!(
                "{label}: {prompt:?} → {:?} (equal)",
                lm.tokenizer.decode(&our_ids, true).unwrap()
            );
        }
    }
}

#[test]
fn mlx_lm_continues_a_prompt_cache_we_saved_exactly_as_we_do() {
    let Some(python) = adapt_testsupport::reference_python(
        "mlx_lm_continues_a_prompt_cache_we_saved_exactly_as_we_do",
    ) else {
        return;
    };
    let _mlx = lock();
    let tmp = tempfile::tempdir().unwrap();
    let dir = converted(tmp.path());
    let format = WeightFormat::for_backend(Backend::detect());
    let lm = load(
        &dir,
        &LoadOptions {
            format: Some(format),
            keep_quantized: false,
        },
    )
    .unwrap();
    let prompt = prompt_tokens(&lm, &user(PROMPTS[3])).unwrap();
    let (history, last) = prompt.split_at(prompt.len() - 1);

    // Our cache of everything but the prompt's last token, saved in mlx-lm's format.
    let mut cache = SequenceCache::new(&lm.model);
    let ids: Vec<i32> = history.iter().map(|&t| t as i32).collect();
    lm.model
        .forward(
            &Array::from_slice(&ids, &[1, ids.len() as i32]),
            &mut cache.layers,
        )
        .unwrap();
    cache.tokens = history.to_vec();
    let file = tmp.path().join("cache.safetensors");
    adapt_engine::prompt_cache::save(&file, &cache, &Default::default()).unwrap();

    // Ours: restore, then the prompt prefills only its last token.
    let (mut restored, _) = adapt_engine::prompt_cache::load(&file).unwrap();
    const MAX_TOKENS: usize = 20;
    let params = GenerateParams {
        max_tokens: MAX_TOKENS,
        ..GenerateParams::default()
    };
    let ours = generate(
        &lm.model,
        &lm.tokenizer,
        &mut restored,
        &prompt,
        &params,
        &mut |_: &str| true,
    )
    .unwrap();
    assert_eq!(ours.stats.prefilled_tokens, 1);

    let mut args: Vec<std::ffi::OsString> = Vec::new();
    args.extend(format.dequantize.then(|| "--dense-f32".into()));
    args.extend([dir.as_os_str().into(), file.as_os_str().into()]);
    args.push(last[0].to_string().into());
    args.push(MAX_TOKENS.to_string().into());
    let stdout = adapt_testsupport::run_reference(&python, "continue_cache.py", args);
    let theirs: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(theirs["offset"], history.len());
    let mut their_ids: Vec<u32> = theirs["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    if their_ids
        .last()
        .is_some_and(|t| lm.tokenizer.eos_token_ids().contains(t))
    {
        their_ids.pop();
    }
    assert_eq!(ours.tokens, their_ids);
    eprintln!(
        "mlx-lm continued our saved cache ({} positions) with {:?} (equal)",
        history.len(),
        lm.tokenizer.decode(&ours.tokens, true).unwrap()
    );
}
