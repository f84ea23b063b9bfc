//! Reading the end of a log file, for error messages that show why a process failed.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    path::Path,
};

/// How many bytes from the end of a log we look at at most; enough for dozens of lines.
const MAX_TAIL_BYTES: u64 = 16 * 1024;

/// The last `max_lines` lines of the file written after byte `from`, or a note saying why
/// there is nothing to show. Never fails: it only decorates another error.
pub(crate) fn tail(path: &Path, from: u64, max_lines: usize) -> String {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) => return format!("(cannot read {}: {err})", path.display()),
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = from.max(len.saturating_sub(MAX_TAIL_BYTES));
    let mut bytes = Vec::new();
    if let Err(err) = file
        .seek(SeekFrom::Start(start))
        .and_then(|_| file.read_to_end(&mut bytes))
    {
        return format!("(cannot read {}: {err})", path.display());
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return format!("({} is empty)", path.display());
    }
    let first = lines.len().saturating_sub(max_lines);
    format!(
        "{}\n(full log: {})",
        lines[first..].join("\n"),
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_last_lines_after_the_offset() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("log");
        std::fs::write(&path, "old\na\nb\nc\n")?;
        let shown = tail(&path, 4, 2);
        assert!(shown.starts_with("b\nc\n"), "{shown}");
        assert!(!shown.contains("old"));
        Ok(())
    }
}
