//! In-memory log (entries after the snapshot).
