//! Schema migrations, data-driven over [`SEEDS`]: a database is created at every version
//! from 0 (an empty file) to the latest, filled with the rows an Adapt of that version would
//! have written, then opened by this build. It must reach the latest version with exactly the
//! schema of a fresh database, and every seeded row must still read back through the typed
//! API. Adding schema version N means adding its seed here (a test checks there is one).

use std::path::Path;

use adapt_store::migrations::{LATEST, MIGRATIONS};
use adapt_store::{Status, Store};

/// Rows written with the raw SQL of one schema version, and how to check them afterwards.
struct Seed {
    version: u32,
    sql: &'static str,
    check: fn(&Store),
}

const SEEDS: &[Seed] = &[
    Seed {
        version: 1,
        sql: "
        INSERT INTO models (id, name, path, format, architecture, bytes, added_at)
            VALUES (1, 'SmolLM2', '/m/smol.gguf', 'gguf', 'llama', 100, 1);
        INSERT INTO datasets (id, name, path, format, n_examples, added_at)
            VALUES (1, 'tickets', '/d/t.jsonl', 'chat', 10, 1);
        INSERT INTO runs (id, name, model_id, dataset_id, config, status, created_at)
            VALUES (1, 'first', 1, 1, '{\"rank\":8}', 'running', 1);
        INSERT INTO run_metrics (run_id, step, epoch, train_loss, val_loss, learning_rate,
                                 tokens_per_second, peak_memory, recorded_at)
            VALUES (1, 1, 0.1, 2.5, NULL, 0.0001, 300.0, 1000, 1);
        INSERT INTO checkpoints (run_id, step, path, created_at) VALUES (1, 1, '/r/1', 1);
        INSERT INTO adapters (id, name, path, run_id, base_model_id, created_at)
            VALUES (1, 'a', '/a', 1, 1, 1);
        INSERT INTO conversations (id, title, system_prompt, model_id, adapter_id, created_at,
                                   updated_at)
            VALUES (1, 'chat', 'Be brief.', 1, 1, 1, 1);
        INSERT INTO messages (conversation_id, position, role, content, created_at)
            VALUES (1, 0, 'user', 'Hi', 1);
        INSERT INTO kv_caches (model_key, adapter_key, template_key, conversation_id, file,
                               n_tokens, bytes, created_at, last_used_at)
            VALUES ('m', '', 't', 1, '/c/1', 12, 34, 1, 1);
        INSERT INTO jobs (id, kind, params, run_id, status, created_at)
            VALUES (1, 'train', '{}', 1, 'queued', 1);
        INSERT INTO settings (key, value) VALUES ('models_dir', '/models');
    ",
        check: |store| {
            let model = store.model(1).unwrap();
            assert_eq!(model.architecture.as_deref(), Some("llama"));
            // Models added before version 3 count as imported, with no files of Adapt's.
            assert_eq!((model.origin.as_str(), model.files.len()), ("imported", 0));
            assert_eq!(store.dataset(1).unwrap().n_examples, Some(10));
            let run = store.run(1).unwrap();
            assert_eq!(
                (run.status, run.config.as_str()),
                (Status::Running, "{\"rank\":8}")
            );
            assert_eq!(store.metrics(1, None).unwrap()[0].train_loss, Some(2.5));
            assert_eq!(store.checkpoints(1).unwrap().len(), 1);
            assert_eq!(store.adapter(1).unwrap().base_model_id, Some(1));
            assert_eq!(store.conversation(1).unwrap().title, "chat");
            assert_eq!(store.messages(1).unwrap()[0].content, "Hi");
            assert_eq!(store.kv_caches().unwrap()[0].n_tokens, 12);
            assert_eq!(store.job(1).unwrap().status, Status::Queued);
            assert_eq!(
                store.setting("models_dir").unwrap().as_deref(),
                Some("/models")
            );
        },
    },
    Seed {
        version: 2,
        sql: "
        INSERT INTO runs (id, name, config, status, created_at)
            VALUES (2, 'second', '{}', 'succeeded', 2);
        INSERT INTO run_metrics (run_id, step, epoch, train_loss, val_loss, learning_rate,
                                 tokens_per_second, peak_memory, recorded_at,
                                 iterations_per_second, trained_tokens, probes)
            VALUES (2, 10, 1.0, 1.5, 1.7, 0.0001, 300.0, 1000, 2, 2.5, 4096,
                    '[{\"prompt\":\"q\",\"answer\":\"a\"}]');
        INSERT INTO datasets (id, name, path, format, n_examples, added_at)
            VALUES (2, 'older', '/d/twice.jsonl', 'chat', 3, 2),
                   (3, 'newer', '/d/twice.jsonl', 'chat', 4, 3);
    ",
        check: |store| {
            let m = &store.metrics(2, None).unwrap()[0];
            assert_eq!(
                (m.trained_tokens, m.iterations_per_second),
                (Some(4096), Some(2.5))
            );
            assert!(m.probes.as_deref().unwrap().contains("answer"));
            // Version 3 keeps one row per dataset path: the newest.
            let twice: Vec<_> = store
                .datasets()
                .unwrap()
                .into_iter()
                .filter(|d| d.path.ends_with("twice.jsonl"))
                .collect();
            assert_eq!(twice.len(), 1);
            assert_eq!((twice[0].id, twice[0].n_examples), (3, Some(4)));
        },
    },
    Seed {
        version: 3,
        sql: "
        INSERT INTO models (id, name, path, format, architecture, bytes, added_at, origin, files)
            VALUES (3, 'pulled', '/m/hub/snap', 'hf', 'llama', 5, 3, 'pulled',
                    '[\"config.json\",\"model.safetensors\"]');
    ",
        check: |store| {
            let m = store.model(3).unwrap();
            assert_eq!(m.origin, "pulled");
            assert_eq!(m.files, ["config.json", "model.safetensors"]);
        },
    },
    Seed {
        version: 4,
        sql: "
        INSERT INTO runs (id, name, config, status, created_at)
            VALUES (4, 'sweep trial', '{}', 'cancelled', 4);
        INSERT INTO sweeps (id, name, spec, status, best_run_id, created_at)
            VALUES (1, 'lr', '{}', 'interrupted', NULL, 4);
        INSERT INTO sweep_trials (sweep_id, number, run_id, params, state, rung_losses,
                                  best_val_loss, steps, seconds, reason)
            VALUES (1, 0, 4, '{\"learning_rate\":0.1}', 'pruned', '[3.5]', 3.5, 10, 1.5,
                    'pruned at step 10');
    ",
        check: |store| {
            assert_eq!(store.sweep(1).unwrap().status, Status::Interrupted);
            let t = &store.trials(1).unwrap()[0];
            assert_eq!(
                (t.run_id, t.rung_losses.clone(), t.steps),
                (Some(4), vec![3.5], 10)
            );
        },
    },
    Seed {
        version: 5,
        sql: "
        INSERT INTO runs (id, name, config, status, created_at)
            VALUES (5, 'group', '{}', 'succeeded', 5);
        INSERT INTO run_metrics (run_id, step, epoch, train_loss, val_loss, learning_rate,
                                 tokens_per_second, peak_memory, recorded_at,
                                 iterations_per_second, trained_tokens, probes, ranks)
            VALUES (5, 1, 0.5, 2.0, NULL, 0.0001, 80.0, 1000, 5, 1.0, 64, NULL,
                    '[{\"rank\":0,\"tokens_per_second\":40.0}]');
    ",
        check: |store| {
            let m = &store.metrics(5, None).unwrap()[0];
            assert!(m.ranks.as_deref().unwrap().contains("\"rank\":0"));
        },
    },
];

fn fresh_schema(dir: &Path) -> Vec<String> {
    Store::open(&dir.join("fresh.db"))
        .unwrap()
        .schema_dump()
        .unwrap()
}

#[test]
fn every_version_has_a_seed() {
    let seeded: Vec<u32> = SEEDS.iter().map(|s| s.version).collect();
    let versions: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(seeded, versions, "add a seed for each new schema version");
}

#[test]
fn a_new_database_reaches_the_latest_version() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("sub/dir/adapt.db")).unwrap();
    assert_eq!(store.schema_version().unwrap(), LATEST);
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let tables = store.schema_dump().unwrap();
    for table in [
        "models",
        "datasets",
        "runs",
        "run_metrics",
        "checkpoints",
        "adapters",
        "conversations",
        "messages",
        "kv_caches",
        "jobs",
        "settings",
    ] {
        let prefix = format!("table {table} ");
        assert!(tables.iter().any(|t| t.starts_with(&prefix)), "{table}");
    }
}

#[test]
fn every_earlier_version_upgrades_to_the_fresh_schema_keeping_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = fresh_schema(dir.path());
    for from in 0..=LATEST {
        let path = dir.path().join(format!("from-{from}.db"));
        drop(Store::open_at(&path, from).unwrap());
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            let at: u32 = conn
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .unwrap();
            assert_eq!(at, from);
            // The rows an Adapt at this version would have written (seeds of later
            // versions need tables this one does not have yet).
            for seed in SEEDS.iter().filter(|s| s.version == from) {
                conn.execute_batch(seed.sql).unwrap();
            }
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), LATEST, "from {from}");
        assert_eq!(store.schema_dump().unwrap(), fresh, "from {from}");
        assert_eq!(store.integrity_check().unwrap(), "ok");
        for seed in SEEDS.iter().filter(|s| s.version == from) {
            (seed.check)(&store);
        }
    }
}

#[test]
fn migrating_to_an_unknown_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open_at(&dir.path().join("a.db"), LATEST + 1)
        .err()
        .expect("unknown version");
    assert_eq!(err.code(), "store.invalid");
}
