//! Ratio benchmark: rustrates vs the C reference program vs PyRates, in one run.

fn main() {}
