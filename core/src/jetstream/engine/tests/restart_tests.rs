//! Restart tests.
