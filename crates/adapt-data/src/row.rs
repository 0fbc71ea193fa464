//! [`Row`]: one valid example as the importers yield it, with where it came from and a hash of
//! its content that finds duplicates.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use crate::example::Example;

/// One valid example and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// 1-based line where it starts.
    pub line: u64,
    /// The example.
    pub example: Example,
    /// A hash of its content, to find duplicates.
    pub digest: u64,
}

/// A content hash for duplicate detection.
pub(crate) fn digest(parts: &[&[u8]]) -> u64 {
    let mut h = DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}
