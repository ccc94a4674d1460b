//! Splits a byte stream (build output, container logs) into lines of bounded length. Output
//! that never prints a newline cannot grow memory: a line longer than the cap is cut at the
//! cap with a marker, and the rest of it, up to the next newline, is dropped.

/// Lines longer than this are cut when no other cap is given.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024;

/// Incremental line splitter holding at most `max` bytes of an unfinished line.
pub struct LineSplitter {
    max: usize,
    partial: String,
    /// Inside a line that was already cut: drop text until its newline.
    skipping: bool,
    dropped: usize,
}

impl LineSplitter {
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(64),
            partial: String::new(),
            skipping: false,
            dropped: 0,
        }
    }

    /// Feeds `text`, calling `emit` with every complete (or cut) line, without its newline.
    pub fn push(&mut self, mut text: &str, mut emit: impl FnMut(String)) {
        while !text.is_empty() {
            let newline = text.find('\n');
            let piece = &text[..newline.unwrap_or(text.len())];
            text = match newline {
                Some(i) => &text[i + 1..],
                None => "",
            };
            if self.skipping {
                self.dropped += piece.len();
            } else {
                let room = self.max - self.partial.len();
                if piece.len() <= room {
                    self.partial.push_str(piece);
                } else {
                    let cut = floor_char_boundary(piece, room);
                    self.partial.push_str(&piece[..cut]);
                    self.skipping = true;
                    self.dropped = piece.len() - cut;
                }
            }
            if newline.is_some() {
                self.end_line(&mut emit);
            }
        }
        if self.skipping && !self.partial.is_empty() {
            // Emit the cut line at once: a stream that never sends its newline still shows it.
            let line = std::mem::take(&mut self.partial);
            emit(self.cut_marker(line));
        }
    }

    /// Emits what remains at the end of the stream.
    pub fn finish(&mut self, mut emit: impl FnMut(String)) {
        if !self.partial.is_empty() || self.skipping {
            self.end_line(&mut emit);
        }
    }

    fn end_line(&mut self, emit: &mut impl FnMut(String)) {
        let line = std::mem::take(&mut self.partial);
        if self.skipping {
            if !line.is_empty() {
                emit(self.cut_marker(line));
            }
            self.skipping = false;
            self.dropped = 0;
        } else {
            emit(line.trim_end_matches('\r').to_string());
        }
    }

    /// The cut line with its marker, `max` bytes in all.
    fn cut_marker(&self, mut line: String) -> String {
        let marker = format!(" [line cut: longer than {} bytes]", self.max);
        line.truncate(floor_char_boundary(
            &line,
            self.max.saturating_sub(marker.len()),
        ));
        line.push_str(&marker);
        line
    }
}

fn floor_char_boundary(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(max: usize, chunks: &[&str]) -> Vec<String> {
        let mut splitter = LineSplitter::new(max);
        let mut out = Vec::new();
        for chunk in chunks {
            splitter.push(chunk, |l| out.push(l));
        }
        splitter.finish(|l| out.push(l));
        out
    }

    #[test]
    fn joins_chunks_into_lines_and_keeps_the_last_partial_line() {
        assert_eq!(
            split(100, &["a", "b\nc", "d\r\n", "tail"]),
            ["ab", "cd", "tail"]
        );
        assert_eq!(split(100, &["\n\n"]), ["", ""]);
    }

    #[test]
    fn a_line_without_newline_is_cut_once_and_memory_stays_bounded() {
        let mut splitter = LineSplitter::new(64);
        let mut out = Vec::new();
        let chunk = "x".repeat(1000);
        for _ in 0..10_000 {
            splitter.push(&chunk, |l| out.push(l));
            assert!(splitter.partial.len() <= 64);
        }
        splitter.push("end\nnext\n", |l| out.push(l));
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].starts_with("xxxx"));
        assert!(out[0].ends_with("[line cut: longer than 64 bytes]"));
        assert_eq!(out[0].len(), 64);
        assert_eq!(out[1], "next");
    }

    #[test]
    fn cuts_on_a_character_boundary() {
        let out = split(256, &[&"é".repeat(300), "\n"]);
        assert_eq!(out.len(), 1);
        assert!(out[0].starts_with(&"é".repeat(100)));
        assert!(out[0].len() <= 256);
    }
}
