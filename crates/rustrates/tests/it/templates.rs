//! Fixture tests over `tests/fixtures/{valid,invalid}` and the built-in template library.
//!
//! Invalid fixtures declare in their leading comments which diagnostics must be reported
//! where (`# expect: CODE at LINE:COL`); the test checks those before it snapshots the
//! rendered diagnostics, so a wrong position or code cannot slip into a snapshot.

use std::path::{Path, PathBuf};

/// One `# expect: CODE at LINE:COL` line of an invalid fixture.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Expect {
    code: String,
    line: usize,
    col: usize,
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// The `*.yaml` files of a fixture folder, sorted so snapshot order is stable.
fn fixture_files(folder: &str) -> Vec<PathBuf> {
    let dir = fixtures_dir().join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

/// Reads the `# expect:` lines at the top of a fixture (only the leading comment block).
fn parse_expects(text: &str) -> Result<Vec<Expect>, String> {
    let mut out = Vec::new();
    for line in text.lines().take_while(|l| l.starts_with('#')) {
        let Some(rest) = line.strip_prefix("# expect:") else {
            continue;
        };
        let (code, pos) = rest
            .trim()
            .split_once(" at ")
            .ok_or_else(|| format!("`{line}`: expected `# expect: CODE at LINE:COL`"))?;
        let (l, c) = pos
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("`{line}`: position is not LINE:COL"))?;
        let line_no = l
            .parse()
            .map_err(|_| format!("`{line}`: bad line number"))?;
        let col = c.parse().map_err(|_| format!("`{line}`: bad column"))?;
        out.push(Expect {
            code: code.trim().to_string(),
            line: line_no,
            col,
        });
    }
    Ok(out)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn parse_expects_header_lines_parsed_and_body_ignored() {
    let text = "# expect: eq/syntax at 3:7\n# why\n# expect: yaml/unknown-key at 10:1\nop:\n# expect: x at 1:1\n";
    let got = parse_expects(text).expect("well-formed header");
    assert_eq!(
        got,
        vec![
            Expect {
                code: "eq/syntax".into(),
                line: 3,
                col: 7
            },
            Expect {
                code: "yaml/unknown-key".into(),
                line: 10,
                col: 1
            },
        ]
    );
    assert!(parse_expects("# expect: eq/syntax at 3\n").is_err());
}

/// The fixtures themselves must be usable: at least 30 invalid ones, each declaring a
/// well-formed code and a position that exists in the file; valid ones declare nothing.
#[test]
fn fixtures_invalid_declare_positions_inside_the_file() {
    let files = fixture_files("invalid");
    assert!(files.len() >= 30, "only {} invalid fixtures", files.len());
    for path in &files {
        let text = read(path);
        let expects = parse_expects(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            !expects.is_empty(),
            "{}: no `# expect:` line",
            path.display()
        );
        let lines: Vec<&str> = text.split('\n').collect();
        for e in &expects {
            let (group, name) = e
                .code
                .split_once('/')
                .unwrap_or_else(|| panic!("{}: code `{}`", path.display(), e.code));
            let kebab =
                |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c == '-');
            assert!(
                kebab(group) && kebab(name),
                "{}: code `{}` is not kebab/kebab",
                path.display(),
                e.code
            );
            assert!(
                e.line >= 1 && e.line <= lines.len(),
                "{}: line {} outside the file",
                path.display(),
                e.line
            );
            let width = lines[e.line - 1].chars().count();
            assert!(
                e.col >= 1 && e.col <= width + 1,
                "{}: column {} outside line {}",
                path.display(),
                e.col,
                e.line
            );
        }
    }
}

#[test]
fn fixtures_valid_declare_no_expectations() {
    let files = fixture_files("valid");
    assert!(files.len() >= 8, "only {} valid fixtures", files.len());
    for path in &files {
        let expects =
            parse_expects(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            expects.is_empty(),
            "{}: a valid fixture expects diagnostics",
            path.display()
        );
    }
}
