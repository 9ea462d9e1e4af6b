//! Parameter grids in PyRates' point order.
//!
//! A grid is a table: one column per key, one row per point. It is built either from
//! `{key: values}` (zipped, or permuted into a Cartesian product) or from explicit rows
//! (PyRates' DataFrame form).
//!
//! Permuted order is that of `np.stack(np.meshgrid(*values), -1).reshape(-1, k)` with numpy's
//! default `indexing='xy'`: meshgrid's output array has shape `(n1, n0, n2, n3, …)` — the first
//! two axes swapped — and is flattened in C order. So the point index is a mixed-radix number
//! whose digits are, from most to least significant, key 1, key 0, key 2, key 3, …, key k−1.
//! With two keys the first key varies fastest; with three or more the *last* key varies
//! fastest, then key 2 … up to key 2, then key 0, and key 1 is outermost.

use indexmap::IndexMap;

/// A grid of parameter points, stored per key (column-major).
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    keys: Vec<String>,
    /// `columns[key][point]`.
    columns: Vec<Vec<f64>>,
    n_points: usize,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GridError {
    #[error("param_grid values have unequal lengths ({}); use equal lengths or permute_grid=True",
        .lengths.iter().map(|(k, n)| format!("'{k}': {n}")).collect::<Vec<_>>().join(", "))]
    UnequalLengths { lengths: Vec<(String, usize)> },
    #[error("param_grid row {row} has {found} values; expected {expected} (one per key)")]
    RowLength { row: usize, found: usize, expected: usize },
    #[error("param_grid key '{key}' appears twice")]
    DuplicateKey { key: String },
    #[error("param_grid: {0}")]
    Memory(#[from] super::checks::MemoryError),
}

impl Grid {
    /// From `{key: values}`: the Cartesian product in PyRates' order when `permute`, else the
    /// values zipped (all lists must have the same length).
    pub fn from_values(values: &IndexMap<String, Vec<f64>>, permute: bool) -> Result<Grid, GridError> {
        let keys: Vec<String> = values.keys().cloned().collect();
        let lists: Vec<&Vec<f64>> = values.values().collect();
        if !permute {
            let n = lists.first().map_or(0, |l| l.len());
            if lists.iter().any(|l| l.len() != n) {
                return Err(GridError::UnequalLengths {
                    lengths: values.iter().map(|(k, v)| (k.clone(), v.len())).collect(),
                });
            }
            return Ok(Grid {
                keys,
                columns: lists.into_iter().cloned().collect(),
                n_points: n,
            });
        }
        let k = lists.len();
        // Sized in f64 first: the product of the lengths may not fit a usize, and must fit in
        // memory before the columns are allocated.
        let points: f64 = lists.iter().map(|l| l.len() as f64).product();
        super::checks::check_alloc(
            format!("the permuted grid of {points:.4e} points × {k} keys"),
            points * k as f64 * 8.0,
            "sweep fewer values per key, or split the sweep into several along one key",
        )?;
        let n_points: usize = if k == 0 {
            0
        } else {
            lists.iter().map(|l| l.len()).product()
        };
        // Digit order from most to least significant (see the module docs).
        let mut order: Vec<usize> = (0..k).collect();
        if k >= 2 {
            order.swap(0, 1);
        }
        let mut columns = vec![Vec::with_capacity(n_points); k];
        let mut digits = vec![0usize; k];
        for _ in 0..n_points {
            for (key, col) in columns.iter_mut().enumerate() {
                col.push(lists[key][digits[key]]);
            }
            for &key in order.iter().rev() {
                digits[key] += 1;
                if digits[key] < lists[key].len() {
                    break;
                }
                digits[key] = 0;
            }
        }
        Ok(Grid {
            keys,
            columns,
            n_points,
        })
    }

    /// From explicit rows (one value per key per row), as a DataFrame `param_grid` gives.
    pub fn from_rows(keys: Vec<String>, rows: &[Vec<f64>]) -> Result<Grid, GridError> {
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].contains(key) {
                return Err(GridError::DuplicateKey { key: key.clone() });
            }
        }
        let mut columns = vec![Vec::with_capacity(rows.len()); keys.len()];
        for (r, row) in rows.iter().enumerate() {
            if row.len() != keys.len() {
                return Err(GridError::RowLength {
                    row: r,
                    found: row.len(),
                    expected: keys.len(),
                });
            }
            for (col, &v) in columns.iter_mut().zip(row) {
                col.push(v);
            }
        }
        Ok(Grid {
            keys,
            columns,
            n_points: rows.len(),
        })
    }

    /// From columns already in point order (e.g. read back from a results file).
    pub fn from_columns(keys: Vec<String>, columns: Vec<Vec<f64>>) -> Result<Grid, GridError> {
        let n = columns.first().map_or(0, Vec::len);
        if keys.len() != columns.len() || columns.iter().any(|c| c.len() != n) {
            return Err(GridError::UnequalLengths {
                lengths: keys.iter().cloned().zip(columns.iter().map(Vec::len)).collect(),
            });
        }
        Ok(Grid {
            keys,
            columns,
            n_points: n,
        })
    }

    pub fn keys(&self) -> &[String] {
        &self.keys
    }
    pub fn len(&self) -> usize {
        self.n_points
    }
    pub fn is_empty(&self) -> bool {
        self.n_points == 0
    }
    /// All values of one key, in point order.
    pub fn column(&self, key: usize) -> &[f64] {
        &self.columns[key]
    }
    pub fn columns(&self) -> &[Vec<f64>] {
        &self.columns
    }
    pub fn value(&self, point: usize, key: usize) -> f64 {
        self.columns[key][point]
    }
    /// PyRates' labels: `{circuit_name}_{i}`.
    pub fn labels(&self, circuit_name: &str) -> Vec<String> {
        (0..self.n_points).map(|i| format!("{circuit_name}_{i}")).collect()
    }
    /// The sub-grid of points `range` (a chunk), keeping key order.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Grid {
        Grid {
            keys: self.keys.clone(),
            columns: self.columns.iter().map(|c| c[range.clone()].to_vec()).collect(),
            n_points: range.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &[f64])]) -> IndexMap<String, Vec<f64>> {
        entries.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect()
    }

    fn rows(g: &Grid) -> Vec<Vec<f64>> {
        (0..g.len())
            .map(|p| (0..g.keys().len()).map(|k| g.value(p, k)).collect())
            .collect()
    }

    /// `g`'s values key by key, point by point: the form numpy prints below.
    fn columns(g: &Grid) -> Vec<Vec<f64>> {
        (0..g.keys().len())
            .map(|k| (0..g.len()).map(|p| g.value(p, k)).collect())
            .collect()
    }

    // Reference columns below were printed by numpy 2.4.6:
    // [m.ravel().tolist() for m in np.meshgrid(a, b[, c])], the columns of
    // np.stack(np.meshgrid(a, b[, c]), -1).reshape(-1, k).
    #[test]
    fn grid_permute_two_keys_matches_numpy_meshgrid() {
        let g = Grid::from_values(&map(&[("a", &[1., 2.]), ("b", &[10., 20., 30.])]), true).unwrap();
        let numpy = [[1., 2., 1., 2., 1., 2.], [10., 10., 20., 20., 30., 30.]];
        assert_eq!(columns(&g), numpy);
        assert_eq!(
            g.labels("Net3"),
            ["Net3_0", "Net3_1", "Net3_2", "Net3_3", "Net3_4", "Net3_5"]
        );
    }

    #[test]
    fn grid_permute_three_keys_matches_numpy_meshgrid() {
        let g = Grid::from_values(
            &map(&[("a", &[1., 2.]), ("b", &[10., 20., 30.]), ("c", &[100., 200.])]),
            true,
        )
        .unwrap();
        let numpy = [
            [1., 1., 2., 2., 1., 1., 2., 2., 1., 1., 2., 2.],
            [10., 10., 10., 10., 20., 20., 20., 20., 30., 30., 30., 30.],
            [100., 200., 100., 200., 100., 200., 100., 200., 100., 200., 100., 200.],
        ];
        assert_eq!(columns(&g), numpy);
        assert_eq!(g.keys(), ["a", "b", "c"]);
    }

    #[test]
    fn grid_zip_two_and_three_keys_pairs_rows() {
        let g = Grid::from_values(&map(&[("a", &[1., 2., 3.]), ("b", &[4., 5., 6.])]), false).unwrap();
        assert_eq!(rows(&g), vec![vec![1., 4.], vec![2., 5.], vec![3., 6.]]);
        let g = Grid::from_values(&map(&[("a", &[1., 2.]), ("b", &[4., 5.]), ("c", &[7., 8.])]), false).unwrap();
        assert_eq!(rows(&g), vec![vec![1., 4., 7.], vec![2., 5., 8.]]);
        assert_eq!(g.labels("M"), ["M_0", "M_1"]);
    }

    #[test]
    fn grid_zip_unequal_lengths_names_keys_and_lengths() {
        let err = Grid::from_values(&map(&[("eta", &[1., 2., 3.]), ("tau", &[4., 5.])]), false).unwrap_err();
        assert_eq!(
            err,
            GridError::UnequalLengths {
                lengths: vec![("eta".into(), 3), ("tau".into(), 2)]
            }
        );
        let msg = err.to_string();
        assert!(msg.contains("'eta': 3") && msg.contains("'tau': 2"), "{msg}");
    }

    #[test]
    fn grid_from_rows_bad_row_is_error() {
        let err = Grid::from_rows(vec!["a".into(), "b".into()], &[vec![1., 2.], vec![3.]]).unwrap_err();
        assert_eq!(
            err,
            GridError::RowLength {
                row: 1,
                found: 1,
                expected: 2
            }
        );
        let g = Grid::from_rows(vec!["a".into(), "b".into()], &[vec![1., 2.], vec![3., 4.]]).unwrap();
        assert_eq!(g.column(1), [2., 4.]);
    }

    #[test]
    fn grid_permute_four_keys_length_is_product_and_each_point_once() {
        let g = Grid::from_values(
            &map(&[
                ("a", &[1., 2.]),
                ("b", &[3., 4., 5.]),
                ("c", &[6., 7.]),
                ("d", &[8., 9., 10.]),
            ]),
            true,
        )
        .unwrap();
        assert_eq!(g.len(), 36);
        let mut r = rows(&g);
        // Last key fastest, then c, then a, b outermost.
        assert_eq!(r[0], [1., 3., 6., 8.]);
        assert_eq!(r[1], [1., 3., 6., 9.]);
        assert_eq!(r[3], [1., 3., 7., 8.]);
        assert_eq!(r[6], [2., 3., 6., 8.]);
        assert_eq!(r[12], [1., 4., 6., 8.]);
        r.sort_by(|x, y| x.partial_cmp(y).unwrap());
        r.dedup();
        assert_eq!(r.len(), 36);
    }
}
