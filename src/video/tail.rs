//! A bounded tail of a child process's stderr, kept for error messages.

use std::collections::VecDeque;

/// Longest line kept; the rest of a longer line is cut (and marked with `...`).
const MAX_LINE_BYTES: usize = 1024;

/// The last lines written to a stream, bounded in line count and in bytes so that a chatty or
/// hostile child cannot grow our memory. Lines are split on `\n` and `\r` (progress output).
#[derive(Debug)]
pub(crate) struct Tail {
    lines: VecDeque<String>,
    bytes: usize,
    partial: Vec<u8>,
    partial_cut: bool,
    max_lines: usize,
    max_bytes: usize,
}

impl Tail {
    pub(crate) fn new(max_lines: usize, max_bytes: usize) -> Self {
        Tail {
            lines: VecDeque::new(),
            bytes: 0,
            partial: Vec::new(),
            partial_cut: false,
            max_lines: max_lines.max(1),
            max_bytes: max_bytes.max(MAX_LINE_BYTES),
        }
    }

    /// Feeds raw bytes as they were read.
    pub(crate) fn feed(&mut self, data: &[u8]) {
        for &b in data {
            if b == b'\n' || b == b'\r' {
                self.end_line();
            } else if self.partial.len() < MAX_LINE_BYTES {
                self.partial.push(b);
            } else {
                self.partial_cut = true;
            }
        }
    }

    /// Ends the last unterminated line (call at end of stream).
    pub(crate) fn finish(&mut self) {
        self.end_line();
    }

    fn end_line(&mut self) {
        let mut line = String::from_utf8_lossy(&self.partial)
            .trim_end()
            .to_string();
        if self.partial_cut {
            line.push_str("...");
        }
        self.partial.clear();
        self.partial_cut = false;
        if line.trim().is_empty() {
            return;
        }
        self.bytes += line.len();
        self.lines.push_back(line);
        while self.lines.len() > self.max_lines || self.bytes > self.max_bytes {
            match self.lines.pop_front() {
                Some(old) => self.bytes -= old.len(),
                None => break,
            }
        }
    }

    /// The kept lines (plus any unterminated one), joined with `\n`.
    pub(crate) fn text(&self) -> String {
        let mut out: Vec<&str> = self.lines.iter().map(String::as_str).collect();
        let partial = String::from_utf8_lossy(&self.partial);
        if !partial.trim().is_empty() {
            out.push(partial.trim_end());
        }
        out.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::Tail;

    #[test]
    fn keeps_last_lines_within_bounds() {
        let mut t = Tail::new(3, 1024);
        for i in 0..10 {
            t.feed(format!("line {i}\n").as_bytes());
        }
        t.feed(b"tail without newline");
        assert_eq!(t.text(), "line 7\nline 8\nline 9\ntail without newline");
        t.finish();
        assert_eq!(t.text(), "line 8\nline 9\ntail without newline");
    }

    #[test]
    fn cuts_long_lines_and_bounds_bytes() {
        let mut t = Tail::new(100, 2048);
        t.feed(&vec![b'x'; 10_000]);
        t.feed(b"\r\n\n");
        let text = t.text();
        assert!(text.ends_with("..."));
        assert!(text.len() < 1100);
        for _ in 0..10 {
            t.feed(&vec![b'y'; 2000]);
            t.feed(b"\n");
        }
        assert!(t.text().len() <= 2048 + 100);
    }
}
