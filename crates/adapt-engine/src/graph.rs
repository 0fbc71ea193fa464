//! What a lazy graph asks of the device: its primitives counted by kind, read from MLX's own
//! DOT export of the graph (`mlx_export_to_dot`). On a GPU the host encodes one or more kernels
//! per primitive, so the count is a diagnostic of a step's host cost that the CPU can take too
//! (`ADAPT_TRACE=1` prints a training step's). A fused elementwise chain of a compiled
//! function counts once, under its `Compiled…` name; arrays already evaluated are leaves and
//! count nothing.

use std::collections::BTreeMap;
use std::ffi::CString;

use mlx_rs::error::Exception;
use mlx_rs::Array;

use crate::error::{EngineError, Result};

/// The primitives behind `outputs` (not yet evaluated), by kind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Census {
    pub by_kind: BTreeMap<String, usize>,
}

impl Census {
    /// All primitives.
    pub fn total(&self) -> usize {
        self.by_kind.values().sum()
    }

    /// `N primitives: Kind n, …`, the most frequent `top` kinds first.
    pub fn summary(&self, top: usize) -> String {
        let mut kinds: Vec<(&String, &usize)> = self.by_kind.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let shown: Vec<String> = kinds
            .iter()
            .take(top)
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let rest = kinds.len().saturating_sub(top);
        let more = if rest > 0 {
            format!(", {rest} more kinds")
        } else {
            String::new()
        };
        format!("{} primitives: {}{more}", self.total(), shown.join(", "))
    }

    /// Counts the primitive nodes of a DOT export: `{ ID [label ="Kind", shape=rectangle]; }`.
    fn of_dot(dot: &str) -> Census {
        let mut by_kind = BTreeMap::new();
        for line in dot.lines().filter(|l| l.contains("shape=rectangle")) {
            if let Some(kind) = line
                .split("label =\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
            {
                *by_kind.entry(kind.to_string()).or_insert(0) += 1;
            }
        }
        Census { by_kind }
    }
}

/// The primitives MLX would run to evaluate `outputs`.
pub fn census<'a>(outputs: impl IntoIterator<Item = &'a Array>) -> Result<Census> {
    let path = std::env::temp_dir().join(format!(
        "adapt-graph-{}-{:?}.dot",
        std::process::id(),
        std::thread::current().id()
    ));
    let failed = |what: &str| EngineError::Mlx(Exception::custom(format!("graph census: {what}")));
    let c_path = CString::new(path.to_string_lossy().as_bytes()).map_err(|_| failed("path"))?;
    // SAFETY: the vector and namer are made, used and freed here; the arrays stay alive (they
    // are borrowed) while MLX reads them; the file is opened and closed here.
    let written = unsafe {
        let vec = mlx_sys::mlx_vector_array_new();
        for a in outputs {
            mlx_sys::mlx_vector_array_append_value(vec, a.as_ptr());
        }
        let namer = mlx_sys::mlx_node_namer_new();
        let file = mlx_sys::fopen(c_path.as_ptr(), c"w".as_ptr());
        let status = if file.is_null() {
            -1
        } else {
            let s = mlx_sys::mlx_export_to_dot(file, namer, vec);
            mlx_sys::fclose(file);
            s
        };
        mlx_sys::mlx_node_namer_free(namer);
        mlx_sys::mlx_vector_array_free(vec);
        status
    };
    let dot = std::fs::read_to_string(&path);
    let _ = std::fs::remove_file(&path);
    if written != 0 {
        return Err(failed("MLX could not export the graph"));
    }
    Ok(Census::of_dot(&dot.map_err(|e| failed(&e.to_string()))?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlx_rs::ops::matmul;

    #[test]
    fn counts_each_primitive_once_and_evaluated_arrays_not_at_all() {
        let a = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0], &[2, 2]);
        let b = a.exp().unwrap().add(&a).unwrap();
        let c = matmul(&b, &a).unwrap();
        let counted = census([&c]).unwrap();
        assert_eq!(counted.by_kind.get("Exp"), Some(&1), "{counted:?}");
        assert_eq!(counted.by_kind.get("Add"), Some(&1), "{counted:?}");
        assert_eq!(counted.by_kind.get("Matmul"), Some(&1), "{counted:?}");
        assert_eq!(counted.total(), 3, "{counted:?}");
        mlx_rs::transforms::eval([&b]).unwrap();
        let after = census([&c]).unwrap();
        assert_eq!(after.by_kind.keys().collect::<Vec<_>>(), ["Matmul"]);
        assert!(after.summary(2).starts_with("1 primitives: Matmul 1"));
    }

    #[test]
    fn a_compiled_chain_counts_once() {
        let f = |x: &Array| -> std::result::Result<Array, mlx_rs::error::Exception> {
            x.exp()?.multiply(Array::from_f32(2.0))?.add(x)
        };
        let mut compiled = mlx_rs::transforms::compile::compile(f, None);
        let a = Array::from_slice(&[1.0f32, 2.0], &[2]);
        let out = compiled(&a).unwrap();
        let counted = census([&out]).unwrap();
        assert_eq!(counted.total(), 1, "{counted:?}");
        assert!(
            counted.by_kind.keys().all(|k| k.starts_with("Compiled")),
            "{counted:?}"
        );
    }
}
