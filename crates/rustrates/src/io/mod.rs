//! TODO(stage owner): see lib.rs
