//! Per-follower replication progress.
