//! Columns of an input value: `--colsep REGEX`, `--csv`, `--trim`, and the
//! names `--header :` gives them.
//!
//! With `--colsep` (or `--csv`) each value of each source is split into
//! columns, and a record's arguments are the columns of its values in source
//! order: `{1}` is the first column of the first source, `{}` all of them.
//! As GNU parallel: every column is kept (trailing empty ones too), and
//! columns are trimmed of spaces and tabs on both sides unless `--trim`
//! says otherwise. `--csv` splits with real CSV quoting (`--colsep` then
//! names the one-byte delimiter, default `,`; a quoted field may hold the
//! record delimiter, such as a newline).
//!
//! `--header :` takes the first value of each source as its header: split
//! into columns like the values, it names them, and `{name}` (with the
//! modifiers of `{1}`: `{name.}`, `{name/}` ...) stands for that column.

use std::io::{self, BufRead};

use quadriga::data::csv::FieldSplitter;
use regex::bytes::Regex;

use crate::input::{SourceKind, SourceSpec};

/// `--trim`: which sides of a value lose their spaces and tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trim {
    None,
    Left,
    Right,
    Both,
}

impl Trim {
    /// Parses `--trim`: n, l, r, lr or rl.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "n" => Trim::None,
            "l" => Trim::Left,
            "r" => Trim::Right,
            "lr" | "rl" => Trim::Both,
            _ => return Err(format!("--trim must be one of n, l, r, lr, rl (not {s:?})")),
        })
    }

    /// `v` trimmed.
    pub(crate) fn apply(self, v: &[u8]) -> &[u8] {
        let blank = |b: &u8| *b == b' ' || *b == b'\t';
        let v = match self {
            Trim::Left | Trim::Both => {
                let start = v.iter().position(|b| !blank(b)).unwrap_or(v.len());
                &v[start..]
            }
            _ => v,
        };
        match self {
            Trim::Right | Trim::Both => {
                let end = v.iter().rposition(|b| !blank(b)).map_or(0, |i| i + 1);
                &v[..end]
            }
            _ => v,
        }
    }
}

/// How a value is cut into columns.
#[derive(Debug, Clone)]
pub(crate) enum Sep {
    /// `--colsep REGEX`.
    Regex(Regex),
    /// `--csv`: CSV fields with this delimiter.
    Csv(u8),
}

/// The column plan of the input.
#[derive(Debug, Clone)]
pub(crate) struct ColumnSpec {
    /// `None`: values are not split.
    pub(crate) sep: Option<Sep>,
    pub(crate) trim: Trim,
}

impl ColumnSpec {
    /// From `--colsep`, `--csv` and `--trim`.
    pub(crate) fn new(colsep: Option<&str>, csv: bool, trim: Option<&str>) -> Result<Self, String> {
        let sep = match (colsep, csv) {
            (None, false) => None,
            (Some(c), false) => Some(Sep::Regex(
                Regex::new(c).map_err(|e| format!("bad --colsep {c:?}: {e}"))?,
            )),
            (c, true) => {
                let d = match c.map(crate::input::parse_delimiter).transpose()? {
                    None => b',',
                    Some(d) if d.len() == 1 => d[0],
                    Some(_) => return Err("with --csv, --colsep must be one byte".into()),
                };
                Some(Sep::Csv(d))
            }
        };
        let trim = match trim {
            Some(t) => Trim::parse(t)?,
            // GNU parallel trims --colsep's columns (not --csv's) unless
            // told not to.
            None if matches!(sep, Some(Sep::Regex(_))) => Trim::Both,
            None => Trim::None,
        };
        Ok(ColumnSpec { sep, trim })
    }

    /// Whether a value may go on past a delimiter (a CSV field in quotes).
    pub(crate) fn is_csv(&self) -> bool {
        matches!(self.sep, Some(Sep::Csv(_)))
    }

    /// Whether values are changed at all.
    pub(crate) fn is_identity(&self) -> bool {
        self.sep.is_none() && self.trim == Trim::None
    }

    /// A splitter that keeps its buffers between values.
    pub(crate) fn splitter(&self) -> Columns {
        Columns {
            csv: match self.sep {
                Some(Sep::Csv(d)) => Some(FieldSplitter::with_delimiter(d)),
                _ => None,
            },
            spec: self.clone(),
        }
    }
}

/// Cuts values into trimmed columns.
#[derive(Debug)]
pub(crate) struct Columns {
    spec: ColumnSpec,
    csv: Option<FieldSplitter>,
}

impl Columns {
    /// Appends the columns of `value` to `out`.
    pub(crate) fn split_into(&mut self, value: &[u8], out: &mut Vec<Vec<u8>>) {
        let trim = self.spec.trim;
        match (&self.spec.sep, &mut self.csv) {
            (Some(Sep::Csv(_)), Some(csv)) => {
                out.extend(csv.split(value).iter().map(|f| trim.apply(f).to_vec()));
            }
            (Some(Sep::Regex(re)), _) => {
                out.extend(re.split(value).map(|f| trim.apply(f).to_vec()));
            }
            _ => out.push(trim.apply(value).to_vec()),
        }
    }

    /// A record's arguments: the columns of each value, in order.
    pub(crate) fn record(&mut self, values: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        if self.spec.is_identity() {
            return values;
        }
        let mut out = Vec::with_capacity(values.len());
        for v in &values {
            self.split_into(v, &mut out);
        }
        out
    }
}

/// `--header :`: takes the first value off each source (reading it from
/// stdin or the file now) and returns the column names, in argument order.
/// File sources are marked so that their first value is skipped when read.
pub(crate) fn take_headers(
    sources: &mut [SourceSpec],
    delimiter: &[u8],
    columns: &ColumnSpec,
) -> Result<Vec<Vec<u8>>, String> {
    let mut splitter = columns.splitter();
    let mut names = Vec::new();
    for s in sources.iter_mut() {
        let header = match &mut s.kind {
            SourceKind::Args(values) => {
                if values.is_empty() {
                    Vec::new()
                } else {
                    values.remove(0)
                }
            }
            SourceKind::Stdin => {
                // Through the process's one stdin buffer, which the input
                // reader later reads on from.
                read_value(&mut io::stdin().lock(), delimiter)
                    .map_err(|e| format!("cannot read the header from stdin: {e}"))?
            }
            SourceKind::File(path) => {
                let f = std::fs::File::open(&*path)
                    .map_err(|e| format!("cannot open input file {}: {e}", path.display()))?;
                let h = read_value(&mut io::BufReader::new(f), delimiter)
                    .map_err(|e| format!("cannot read the header of {}: {e}", path.display()))?;
                s.skip_first = true;
                h
            }
        };
        splitter.split_into(&header, &mut names);
    }
    Ok(names)
}

/// One value: bytes up to `delimiter` (not included) or the end.
fn read_value(r: &mut impl BufRead, delimiter: &[u8]) -> io::Result<Vec<u8>> {
    let last = *delimiter.last().expect("delimiter is not empty");
    let mut v = Vec::new();
    loop {
        let n = r.read_until(last, &mut v)?;
        if n == 0 || v.ends_with(delimiter) || v.last() != Some(&last) {
            break;
        }
    }
    if v.ends_with(delimiter) {
        v.truncate(v.len() - delimiter.len());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(spec: &ColumnSpec, v: &str) -> Vec<String> {
        let mut out = Vec::new();
        spec.splitter().split_into(v.as_bytes(), &mut out);
        out.into_iter()
            .map(|c| String::from_utf8(c).unwrap())
            .collect()
    }

    #[test]
    fn colsep_keeps_empty_columns_and_trims_by_default() {
        let s = ColumnSpec::new(Some(","), false, None).unwrap();
        assert_eq!(cols(&s, "a,,"), ["a", "", ""]);
        assert_eq!(cols(&s, " a , b\t"), ["a", "b"]);
        let s = ColumnSpec::new(Some(";+"), false, Some("n")).unwrap();
        assert_eq!(cols(&s, " a;;b "), [" a", "b "]);
        let s = ColumnSpec::new(Some(","), false, Some("l")).unwrap();
        assert_eq!(cols(&s, " a , b "), ["a ", "b "]);
    }

    #[test]
    fn csv_unquotes() {
        let s = ColumnSpec::new(None, true, None).unwrap();
        assert_eq!(cols(&s, r#"a,"b,c",d"#), ["a", "b,c", "d"]);
        assert_eq!(cols(&s, " a ,b"), [" a ", "b"]);
        assert_eq!(cols(&s, r#""x ""y""",z"#), ["x \"y\"", "z"]);
        let s = ColumnSpec::new(Some("\\t"), true, None).unwrap();
        assert_eq!(cols(&s, "a\t\"b\tc\""), ["a", "b\tc"]);
        assert!(ColumnSpec::new(Some("ab"), true, None).is_err());
    }

    #[test]
    fn trim_forms() {
        assert_eq!(Trim::parse("rl").unwrap().apply(b" \ta b \t"), b"a b");
        assert_eq!(Trim::parse("r").unwrap().apply(b" a "), b" a");
        assert_eq!(Trim::parse("n").unwrap().apply(b" a "), b" a ");
        assert_eq!(Trim::Both.apply(b"   "), b"");
        assert!(Trim::parse("x").is_err());
    }

    #[test]
    fn headers_of_arguments() {
        let mut sources = vec![
            SourceSpec {
                kind: SourceKind::Args(vec![b"x,y".to_vec(), b"1,2".to_vec()]),
                linked: false,
                skip_first: false,
            },
            SourceSpec {
                kind: SourceKind::Args(vec![b"z".to_vec(), b"3".to_vec()]),
                linked: false,
                skip_first: false,
            },
        ];
        let spec = ColumnSpec::new(Some(","), false, None).unwrap();
        let names = take_headers(&mut sources, b"\n", &spec).unwrap();
        assert_eq!(names, [b"x".to_vec(), b"y".to_vec(), b"z".to_vec()]);
        assert_eq!(sources[0].kind, SourceKind::Args(vec![b"1,2".to_vec()]));
    }

    #[test]
    fn reading_one_value() {
        let mut r = io::Cursor::new(b"ab::cd".to_vec());
        assert_eq!(read_value(&mut r, b"::").unwrap(), b"ab");
        assert_eq!(read_value(&mut r, b"::").unwrap(), b"cd");
        let mut r = io::Cursor::new(b"a:b::".to_vec());
        assert_eq!(read_value(&mut r, b"::").unwrap(), b"a:b");
    }

    #[test]
    fn random_values_split_into_columns_that_join_back() {
        // Without trimming, the columns of a literal --colsep joined by it
        // are the value again; --csv never panics on any bytes.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        let plain = ColumnSpec::new(Some(","), false, Some("n")).unwrap();
        let csv = ColumnSpec::new(None, true, None).unwrap();
        let (mut plain_cols, mut csv_cols) = (plain.splitter(), csv.splitter());
        for _ in 0..2000 {
            let len = next(40) as usize;
            let v: Vec<u8> = (0..len)
                .map(|_| b",\" a\t\r\n\xff"[next(8) as usize])
                .collect();
            let mut out = Vec::new();
            plain_cols.split_into(&v, &mut out);
            assert_eq!(out.join(&b','), v);
            out.clear();
            csv_cols.split_into(&v, &mut out);
            assert!(!out.is_empty());
        }
    }
}
