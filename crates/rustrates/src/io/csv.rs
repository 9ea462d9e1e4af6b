//! CSV for single simulations: a `time` column and one column per output.

use std::io::Write;

/// Writes `data[time][column]` with a header `time,<name>...`. Column names are the output
/// keys when they are unique, else `node/key`. Numbers use Rust's shortest round-trip form,
/// so reading the file back gives the same `f64`s.
pub fn write_csv(out: &mut dyn Write, time: &[f64], columns: &[(String, String)], data: &[f64]) -> std::io::Result<()> {
    let keys_unique = columns
        .iter()
        .enumerate()
        .all(|(i, (_, k))| columns[..i].iter().all(|(_, k2)| k2 != k));
    let mut header = String::from("time");
    for (node, key) in columns {
        header.push(',');
        if keys_unique {
            header.push_str(key);
        } else {
            header.push_str(&format!("{node}/{key}"));
        }
    }
    writeln!(out, "{header}")?;
    let nc = columns.len();
    for (i, t) in time.iter().enumerate() {
        write!(out, "{t}")?;
        for x in &data[i * nc..(i + 1) * nc] {
            write!(out, ",{x}")?;
        }
        writeln!(out)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_values_round_trip_exactly() {
        let cols = vec![
            ("PC".to_string(), "r".to_string()),
            ("IIN".to_string(), "r".to_string()),
        ];
        let time = [0.0, 1e-3];
        let data = [0.1 + 0.2, -1.0 / 3.0, f64::NAN, 1e300];
        let mut buf = Vec::new();
        write_csv(&mut buf, &time, &cols, &data).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("time,PC/r,IIN/r"));
        let row: Vec<f64> = lines.next().unwrap().split(',').map(|x| x.parse().unwrap()).collect();
        assert_eq!(row, [0.0, 0.1 + 0.2, -1.0 / 3.0]);
        let row: Vec<f64> = lines.next().unwrap().split(',').map(|x| x.parse().unwrap()).collect();
        assert!(row[1].is_nan() && row[2] == 1e300 && row[0] == 1e-3);
    }
}
