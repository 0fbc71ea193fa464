//! Pulls through the API: a download job that streams progress, is cancelled, and is resumed
//! by the next pull; then the library lists, inspects and deletes what it pulled.

use std::time::{Duration, Instant};

use adapt_api::{Adapt, AdaptConfig, FitOptions, JobEvent, JobStatus};
use adapt_hub::test_util::{tiny_model_repo, FakeHub};

/// The only test of this binary: it sets the process's `HF_ENDPOINT` and `HF_HUB_CACHE`
/// before anything else runs.
#[test]
fn a_pull_is_a_download_job_that_can_be_cancelled_and_resumed() {
    let hub = FakeHub::start(vec![tiny_model_repo("tiny/llama", 1 << 20)]);
    hub.throttle(Some(2 << 20));
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("HF_ENDPOINT", hub.endpoint());
    std::env::set_var("HF_HUB_CACHE", dir.path().join("hf"));
    std::env::set_var("HF_HOME", dir.path().join("hf-home"));
    std::env::remove_var("HF_TOKEN");
    std::env::remove_var("HUGGING_FACE_HUB_TOKEN");
    std::env::remove_var("ADAPT_MODELS_DIR");
    let adapt = Adapt::start_with(AdaptConfig {
        data_dir: Some(dir.path().join("data")),
        ..AdaptConfig::default()
    })
    .unwrap();
    adapt
        .set_models_dir(Some(&dir.path().join("models")))
        .unwrap();

    let job = adapt.pull_model("tiny/llama", None, |_| {}).unwrap();
    let id = job.id();
    // Cancel once the first shard is under way.
    let started = Instant::now();
    loop {
        let event = job.events().recv_timeout(Duration::from_secs(30)).unwrap();
        if let JobEvent::Progress { message, .. } = event {
            if message.contains("00001") {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(30));
    }
    job.cancel();
    let e = job.wait().unwrap_err();
    assert_eq!(e.code, "hub.cancelled");
    assert_eq!(adapt.job(id).unwrap().status, JobStatus::Cancelled);
    assert!(adapt.models().is_empty());

    hub.throttle(None);
    let job = adapt.pull_model("tiny/llama", None, |_| {}).unwrap();
    let pulled = job.wait().unwrap();
    assert!(pulled.fetched < pulled.bytes, "the second pull resumed");
    let record = adapt.jobs().unwrap().remove(0);
    assert_eq!(
        (record.kind.as_str(), record.status),
        ("download", JobStatus::Succeeded)
    );
    assert_eq!(record.progress_total, Some(pulled.bytes));

    let models = adapt.models();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0].model.name, "tiny/llama");
    assert_eq!(models[0].model.path, pulled.snapshot);
    let details = adapt
        .inspect_model("tiny/llama", &FitOptions::default())
        .unwrap();
    assert_eq!(
        details.model.description.architecture.as_deref(),
        Some("llama")
    );
    let plan = adapt.removal_plan("tiny/llama").unwrap();
    assert_eq!(plan.origin, "pulled");
    assert!(
        plan.bytes >= pulled.bytes,
        "{} < {}",
        plan.bytes,
        pulled.bytes
    );
    assert!(plan.files.iter().any(|f| f.path.ends_with("refs/main")));
    adapt
        .remove_model("tiny/llama", &plan.confirmation)
        .unwrap();
    assert!(adapt.models().is_empty());
    assert!(!pulled.snapshot.exists());
    let e = adapt.pull_model("bad id!", None, |_| {}).err().unwrap();
    assert_eq!(e.code, "hub.bad_repo_id");
}
