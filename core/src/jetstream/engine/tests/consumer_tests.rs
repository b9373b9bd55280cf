//! Consumer tests.
