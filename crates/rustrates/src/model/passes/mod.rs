//! Rewrite passes over the circuit IR, one per file.
