// The shapes the backend's commands take and return: generated from the Rust types
// (src/lib/bindings.ts, checked by src-tauri's bindings test), never written here by hand.

export type * from "./bindings";
