//! Bounded capture of what a process prints or an HTTP server answers: the
//! first and the last [`HALF`] bytes are kept, everything between is only
//! counted, so a probe that prints gigabytes keeps squall's memory, its
//! journal and its log flat.

use std::collections::VecDeque;

/// How much of each end is kept (so at most twice this per stream).
pub const HALF: usize = 512 * 1024;

/// One stream being captured.
#[derive(Debug, Default)]
pub struct Capture {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    total: u64,
    half: usize,
}

impl Capture {
    pub fn new() -> Self {
        Self::with_half(HALF)
    }

    /// A capture keeping `half` bytes at each end (tests use small ones).
    pub fn with_half(half: usize) -> Self {
        Self {
            half,
            ..Self::default()
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = self.half.saturating_sub(self.head.len());
        let (to_head, rest) = bytes.split_at(room.min(bytes.len()));
        self.head.extend_from_slice(to_head);
        bytes = rest;
        if bytes.len() >= self.half {
            self.tail.clear();
            bytes = &bytes[bytes.len() - self.half..];
        }
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(self.half);
        self.tail.drain(..overflow);
        self.tail.extend(bytes);
    }

    /// Whether anything was dropped.
    pub fn truncated(&self) -> bool {
        self.total > (self.head.len() + self.tail.len()) as u64
    }

    /// The text: whole when it fitted, else head, a marker saying how many
    /// bytes were left out, and tail.
    pub fn text(&self) -> String {
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        if !self.truncated() {
            let mut all = self.head.clone();
            all.extend_from_slice(&tail);
            return String::from_utf8_lossy(&all).into_owned();
        }
        let kept = (self.head.len() + tail.len()) as u64;
        format!(
            "{}\n[squall: {} of {} bytes left out]\n{}",
            String::from_utf8_lossy(&self.head),
            self.total - kept,
            self.total,
            String::from_utf8_lossy(&tail)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_output_is_kept_whole() {
        let mut c = Capture::with_half(8);
        c.push(b"hello ");
        c.push(b"world");
        assert!(!c.truncated());
        assert_eq!(c.text(), "hello world");
    }

    #[test]
    fn large_output_keeps_head_and_tail_and_counts_the_rest() {
        let mut c = Capture::with_half(4);
        for chunk in [&b"abcdef"[..], b"ghij", b"klmnopqrstuvwxyz"] {
            c.push(chunk);
        }
        assert!(c.truncated());
        assert_eq!(c.text(), "abcd\n[squall: 18 of 26 bytes left out]\nwxyz");
        let mut big = Capture::with_half(4);
        big.push(&[b'x'; 100_000]);
        assert_eq!(big.head.len() + big.tail.len(), 8);
    }
}
