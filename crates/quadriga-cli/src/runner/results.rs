//! `--results`: each job's stdout, stderr and sequence number in files.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::args::Results;
use crate::template::JobContext;

/// Result files of one job.
#[derive(Debug)]
pub(crate) struct ResultFiles {
    pub(crate) out: File,
    pub(crate) err: File,
}

/// Creates a job's `--results` files.
pub(crate) fn open_results(results: &Results, ctx: JobContext<'_>) -> io::Result<ResultFiles> {
    let (out, err, seq) = match results {
        Results::Dir(dir, names) => {
            let mut path = dir.clone();
            for (i, a) in ctx.args.iter().enumerate() {
                // --header : names the levels; else their positions.
                match names.get(i) {
                    Some(n) => path.push(OsStr::from_bytes(&escape_path_part(n))),
                    None => path.push((i + 1).to_string()),
                }
                path.push(OsStr::from_bytes(&escape_path_part(a)));
            }
            std::fs::create_dir_all(&path)?;
            (path.join("stdout"), path.join("stderr"), path.join("seq"))
        }
        Results::Named(t) => {
            let name = t.render_unquoted(ctx);
            if name.ends_with(b"/") {
                let path = PathBuf::from(OsStr::from_bytes(&name));
                std::fs::create_dir_all(&path)?;
                (path.join("stdout"), path.join("stderr"), path.join("seq"))
            } else {
                let path = PathBuf::from(OsStr::from_bytes(&name));
                if let Some(parent) = path.parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent)?;
                }
                let with = |ext: &str| {
                    let mut n = name.clone();
                    n.extend_from_slice(ext.as_bytes());
                    PathBuf::from(OsStr::from_bytes(&n))
                };
                (path.clone(), with(".err"), with(".seq"))
            }
        }
    };
    std::fs::write(seq, format!("{}\n", ctx.seq))?;
    Ok(ResultFiles {
        out: File::create(out)?,
        err: File::create(err)?,
    })
}

/// An argument as one path component, as GNU parallel writes it: `\` → `\\`,
/// `/` → `\_`.
fn escape_path_part(a: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(a.len());
    for &b in a {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'/' => out.extend_from_slice(b"\\_"),
            _ => out.push(b),
        }
    }
    if out.is_empty() || out == b"." || out == b".." {
        out.insert(0, b'\\');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_path_parts() {
        assert_eq!(escape_path_part(b"x/y"), b"x\\_y");
        assert_eq!(escape_path_part(b"a\\b"), b"a\\\\b");
        assert_eq!(escape_path_part(b".."), b"\\..");
        assert_eq!(escape_path_part(b""), b"\\");
    }
}
