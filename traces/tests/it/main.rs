//! Integration tests for weir-traces (one binary, several modules).

mod common;
mod diff;
mod format;
mod hash;
mod recorder;
mod render;
mod summary;
