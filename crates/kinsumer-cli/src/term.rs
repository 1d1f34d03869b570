//! Terminal helpers: is a stream a terminal, and redrawing a block of lines in place.

use std::io::{self, IsTerminal, Write};

/// True when stdout is a terminal (live views redraw; otherwise they print plain lines).
pub fn stdout_is_terminal() -> bool {
    io::stdout().is_terminal()
}

/// True when stderr is a terminal (progress lines and coloured logs).
pub fn stderr_is_terminal() -> bool {
    io::stderr().is_terminal()
}

/// Redraws a block of lines on a terminal: each frame replaces the previous one.
#[derive(Debug, Default)]
pub struct Redraw {
    lines: usize,
}

impl Redraw {
    /// A redraw with nothing drawn yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the previous frame with `frame` (lines separated by `\n`).
    pub fn draw(&mut self, out: &mut impl Write, frame: &str) -> io::Result<()> {
        let mut text = String::with_capacity(frame.len() + 16);
        if self.lines > 0 {
            // Cursor up to the first line of the previous frame, then clear to the end.
            text.push_str(&format!("\x1b[{}A\r\x1b[J", self.lines));
        }
        text.push_str(frame);
        if !frame.ends_with('\n') {
            text.push('\n');
        }
        self.lines = text_lines(frame);
        out.write_all(text.as_bytes())?;
        out.flush()
    }
}

/// Writes one line to stdout and flushes it; unlike `println!`, a closed stdout is an error
/// value, not a panic.
pub fn print_line(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(line.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Clears the whole screen and puts the cursor home (for `status --watch`).
pub fn clear_screen(out: &mut impl Write) -> io::Result<()> {
    out.write_all(b"\x1b[H\x1b[2J")
}

/// How many terminal lines `frame` takes (it must not wrap).
fn text_lines(frame: &str) -> usize {
    frame.trim_end_matches('\n').split('\n').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_redraw_moves_up_over_the_previous_frame() {
        let mut redraw = Redraw::new();
        let mut out = Vec::new();
        redraw.draw(&mut out, "a\nb\n").unwrap();
        assert_eq!(out, b"a\nb\n");
        out.clear();
        redraw.draw(&mut out, "c").unwrap();
        assert_eq!(out, b"\x1b[2A\r\x1b[Jc\n");
    }
}
