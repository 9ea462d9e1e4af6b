//! The `rustrates` command line: a thin front over the `rustrates` library.

fn main() -> anyhow::Result<()> {
    Ok(())
}
