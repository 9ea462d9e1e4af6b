//! The buffer rule every back end's evaluation keeps: each structure-of-arrays buffer holds
//! its rows for the block's lanes. The compiled back ends' unsafe calls rely on it (generated
//! code reads and writes exactly `rows × lanes` elements per array and trusts these lengths),
//! so it is checked here, once, before any of them runs; a short buffer is a programming
//! error of the caller and panics with the same message on every back end.

use crate::model::Layout;

/// Rows of each buffer of an evaluation: `y`, `p`, `u`, `dy`, `a`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rows {
    pub(crate) states: usize,
    pub(crate) params: usize,
    pub(crate) inputs: usize,
    pub(crate) algebraics: usize,
}

impl Rows {
    pub(crate) fn of(layout: &Layout) -> Rows {
        Rows {
            states: layout.states.len(),
            params: layout.params.len(),
            inputs: layout.inputs.len(),
            algebraics: layout.algebraics.len(),
        }
    }

    /// Panics unless `y`, `p`, `u`, `dy`, `a` (lengths `lens`, in that order) hold their rows
    /// for `lanes` lanes; `backend` names the kernel in the message.
    pub(crate) fn check(&self, backend: &str, lanes: usize, lens: [usize; 5]) {
        let rows = [self.states, self.params, self.inputs, self.states, self.algebraics];
        let names = ["y", "p", "u", "dy", "a"];
        for ((len, r), name) in lens.into_iter().zip(rows).zip(names) {
            let need = r.checked_mul(lanes).expect("rows × lanes overflows usize");
            assert!(
                len >= need,
                "{backend} kernel: `{name}` holds {len} values, {r} rows × {lanes} lanes need {need}"
            );
        }
    }
}
