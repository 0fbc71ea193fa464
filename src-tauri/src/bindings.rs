//! The TypeScript declarations of what the page sends and receives, generated from the Rust
//! types with ts-rs into `ui/src/lib/bindings.ts`. The test fails when that file differs from
//! what the types give now; `ADAPT_UPDATE_BINDINGS=1 cargo test -p adapt-app bindings`
//! rewrites it. 64-bit integers are declared `number`: JSON carries them as numbers.

#[cfg(test)]
mod tests {
    use adapt_api::datasets::InspectReport;
    use adapt_api::launch::Host;
    use adapt_api::machines::MachineCheck;
    use adapt_api::{
        AdapterEntry, ApiError, CacheKey, Calibration, ChatId, ChatMessage, ChatOptions, ChatState,
        ConvertReport, DatasetRecord, ErrorCode, GenerateParams, Generation, GenerationEvent,
        GenerationStats, GroupEstimate, GroupStart, ModelDetails, ModelEntry, ModelInfo, Overflow,
        PullEvent, RemovalPlan, RunDetails, RunRecord, SamplingParams, SavedChat,
        SavedConversation, SavedPrompts, StopReason, SweepDetails, SweepForm, SweepProgress,
        SweepRecord, TopicChoice, TopicSettings, TrainCheck, TrainForm, TrainPlan, TrainPreset,
        TrainProgress, Variant,
    };
    use std::collections::BTreeMap;

    use ts_rs::{Config, TS};

    use crate::commands::Opened;
    use crate::server_panel::ServerStatus;

    const FILE: &str = "../ui/src/lib/bindings.ts";

    fn declarations() -> String {
        let cfg = Config::new().with_large_int("number");
        let mut out = String::from(
            "// Generated from the Rust types by src-tauri/src/bindings.rs (ts-rs): do not edit.\n\
             // After changing those types: ADAPT_UPDATE_BINDINGS=1 cargo test -p adapt-app bindings\n",
        );
        let mut collector = Collector {
            cfg: &cfg,
            seen: BTreeMap::new(),
        };
        macro_rules! with_dependencies {
            ($($t:ty),* $(,)?) => {$( ts_rs::TypeVisitor::visit::<$t>(&mut collector); )*};
        }
        with_dependencies!(
            ApiError,
            ErrorCode,
            ChatId,
            ChatMessage,
            ChatOptions,
            Overflow,
            CacheKey,
            ChatState,
            TopicSettings,
            TopicChoice,
            SavedChat,
            SavedConversation,
            Opened,
            GenerateParams,
            SamplingParams,
            Generation,
            GenerationStats,
            GenerationEvent,
            StopReason,
            ModelInfo,
            ModelDetails,
            RunRecord,
            RunDetails,
            DatasetRecord,
            AdapterEntry,
            InspectReport,
            TrainForm,
            TrainPreset,
            TrainCheck,
            TrainPlan,
            TrainProgress,
            Calibration,
            ModelEntry,
            RemovalPlan,
            Variant,
            ConvertReport,
            PullEvent,
            ServerStatus,
            SavedPrompts,
            SweepForm,
            SweepRecord,
            SweepDetails,
            SweepProgress,
            Host,
            MachineCheck,
            GroupEstimate,
            GroupStart,
        );
        for decl in collector.seen.values() {
            out.push_str(&format!("\nexport {decl}\n"));
        }
        out
    }

    /// Declares a type and, once each, every named type it depends on.
    struct Collector<'a> {
        cfg: &'a Config,
        seen: BTreeMap<String, String>,
    }

    impl ts_rs::TypeVisitor for Collector<'_> {
        fn visit<T: TS + 'static + ?Sized>(&mut self) {
            let name = T::name(self.cfg);
            if T::output_path().is_some() && !self.seen.contains_key(&name) {
                self.seen.insert(name, T::decl(self.cfg));
                T::visit_dependencies(self);
            }
        }
    }

    #[test]
    fn bindings_match_the_rust_types() {
        // Read when the test runs (not `env!`): right even in a build folder shared by checkouts.
        let dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test");
        let path = std::path::Path::new(&dir).join(FILE);
        let want = declarations();
        if std::env::var("ADAPT_UPDATE_BINDINGS").as_deref() == Ok("1") {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{FILE} is out of date with the Rust types: run \
             ADAPT_UPDATE_BINDINGS=1 cargo test -p adapt-app bindings"
        );
    }
}
