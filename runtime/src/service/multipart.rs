//! A streaming reader of multipart bodies (RFC 2046; STOW-RS sends multipart/related). It
//! holds one fixed buffer, whatever the body: a part's content is copied out as it passes,
//! its headers are bounded, and so is the number of parts. Nothing of the body is kept once
//! read, so a body of any size (or of millions of delimiters) costs the same memory.

use std::io::{Read, Write};

/// The most bytes of headers one part may have. STOW-RS parts carry one or two short
/// headers (Content-Type, perhaps Content-Location).
pub const MAX_PART_HEADER: usize = 16 * 1024;
/// The most bytes before the first delimiter (the preamble, which is ignored).
pub const MAX_PREAMBLE: usize = 64 * 1024;
/// RFC 2046 §5.1.1: a boundary is 1 to 70 characters.
pub const MAX_BOUNDARY: usize = 70;
/// What is read from the source at a time.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum MultipartError {
    #[error("the body has no delimiter '--{boundary}' in its first {MAX_PREAMBLE} bytes")]
    NoDelimiter { boundary: String },
    #[error("the body has more than {limit} parts (max-stow-parts)")]
    TooManyParts { limit: usize },
    #[error("part {part}: its headers are over {MAX_PART_HEADER} bytes")]
    HeaderTooLarge { part: usize },
    #[error("part {part}: {what}")]
    Malformed { part: usize, what: &'static str },
    #[error("reading the body: {0}")]
    Read(std::io::Error),
    #[error("writing part {part}: {source}")]
    Write { part: usize, source: std::io::Error },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    /// Before the first delimiter.
    Preamble,
    /// Just after a delimiter: a closing `--` or a part's headers follow.
    Delimiter,
    /// Inside the content of the current part.
    Content,
    /// After the closing delimiter.
    Done,
}

/// One part's headers as sent: the raw header block, lowercased.
#[derive(Debug)]
pub struct Part {
    /// 0 for the first part.
    pub index: usize,
    pub headers: String,
}

impl Part {
    /// The value of header `name` (lowercase), if the part has it.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.split("\r\n").find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == name).then(|| v.trim())
        })
    }
}

pub struct MultipartReader<R> {
    source: R,
    /// `\r\n--boundary`: every delimiter, the first one included, since the body is read as
    /// if it began with a CRLF.
    delimiter: Vec<u8>,
    boundary: String,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    eof: bool,
    state: State,
    parts: usize,
    max_parts: usize,
    /// Bytes of preamble seen, to give up on a body that is not multipart at all.
    preamble: usize,
}

impl<R: Read> MultipartReader<R> {
    /// A reader of the parts of `source`, delimited by `boundary`, at most `max_parts` of them.
    pub fn new(source: R, boundary: &str, max_parts: usize) -> MultipartReader<R> {
        let delimiter = format!("\r\n--{boundary}").into_bytes();
        let mut buf = vec![0u8; CHUNK + MAX_PART_HEADER + delimiter.len() + 8].into_boxed_slice();
        buf[..2].copy_from_slice(b"\r\n");
        MultipartReader {
            source,
            delimiter,
            boundary: boundary.to_string(),
            buf,
            start: 0,
            end: 2,
            eof: false,
            state: State::Preamble,
            parts: 0,
            max_parts,
            preamble: 0,
        }
    }

    /// Parts read so far.
    pub fn parts(&self) -> usize {
        self.parts
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more of the source after what is pending; false at its end.
    fn fill(&mut self) -> Result<bool, MultipartError> {
        if self.eof {
            return Ok(false);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let room = (self.buf.len() - self.end).min(CHUNK);
        debug_assert!(room > 0, "the buffer always has room after compaction");
        loop {
            match self.source.read(&mut self.buf[self.end..self.end + room]) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(MultipartError::Read(e)),
            }
        }
    }

    /// Makes at least `n` bytes pending; false when the source ends first.
    fn want(&mut self, n: usize) -> Result<bool, MultipartError> {
        while self.end - self.start < n {
            if !self.fill()? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The next part's headers; None after the closing delimiter. The content of the part
    /// before, if not copied out, is skipped.
    pub fn next_part(&mut self) -> Result<Option<Part>, MultipartError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Content => {
                    self.copy_content(&mut std::io::sink())?;
                }
                State::Preamble => self.skip_preamble()?,
                State::Delimiter => return self.after_delimiter(),
            }
        }
    }

    fn skip_preamble(&mut self) -> Result<(), MultipartError> {
        let keep = self.delimiter.len() - 1;
        loop {
            if let Some(i) = memchr::memmem::find(self.pending(), &self.delimiter) {
                self.start += i + self.delimiter.len();
                self.state = State::Delimiter;
                return Ok(());
            }
            let pending = self.end - self.start;
            if pending > keep {
                self.preamble += pending - keep;
                self.start = self.end - keep;
            }
            if self.preamble > MAX_PREAMBLE || !self.fill()? {
                return Err(MultipartError::NoDelimiter {
                    boundary: self.boundary.clone(),
                });
            }
        }
    }

    fn after_delimiter(&mut self) -> Result<Option<Part>, MultipartError> {
        let part = self.parts;
        let malformed = |what| MultipartError::Malformed { part, what };
        if !self.want(2)? {
            return Err(malformed(
                "the body ends after a delimiter, without the closing one",
            ));
        }
        if self.pending().starts_with(b"--") {
            // The closing delimiter; the epilogue is ignored.
            self.state = State::Done;
            return Ok(None);
        }
        // Transport padding (RFC 2046: linear white space) before the line break.
        let mut padding = 0;
        loop {
            if !self.want(1)? {
                return Err(malformed("the body ends after a delimiter"));
            }
            match self.pending()[0] {
                b' ' | b'\t' if padding < MAX_PART_HEADER => {
                    self.start += 1;
                    padding += 1;
                }
                _ => break,
            }
        }
        if !self.want(2)? || !self.pending().starts_with(b"\r\n") {
            return Err(malformed("a delimiter is not followed by a line break"));
        }
        self.start += 2;
        if self.parts >= self.max_parts {
            return Err(MultipartError::TooManyParts {
                limit: self.max_parts,
            });
        }
        self.parts += 1;
        // The header block: empty (the blank line at once) or ending with a blank line.
        if !self.want(2)? {
            return Err(malformed("the body ends inside the part's headers"));
        }
        let headers = if self.pending().starts_with(b"\r\n") {
            self.start += 2;
            String::new()
        } else {
            loop {
                let window = self.pending().len().min(MAX_PART_HEADER + 4);
                if let Some(i) = memchr::memmem::find(&self.pending()[..window], b"\r\n\r\n") {
                    let text = String::from_utf8_lossy(&self.pending()[..i]).to_ascii_lowercase();
                    self.start += i + 4;
                    break text;
                }
                if window >= MAX_PART_HEADER + 4 {
                    return Err(MultipartError::HeaderTooLarge { part });
                }
                if !self.fill()? {
                    return Err(malformed("the body ends inside the part's headers"));
                }
            }
        };
        self.state = State::Content;
        Ok(Some(Part {
            index: part,
            headers,
        }))
    }

    /// Copies the current part's content to `out`, up to its delimiter; the bytes copied.
    pub fn copy_content(&mut self, out: &mut dyn Write) -> Result<u64, MultipartError> {
        if self.state != State::Content {
            return Ok(0);
        }
        let part = self.parts - 1;
        let write = |out: &mut dyn Write, bytes: &[u8]| {
            out.write_all(bytes)
                .map_err(|source| MultipartError::Write { part, source })
        };
        let keep = self.delimiter.len() - 1;
        let mut copied = 0u64;
        loop {
            if let Some(i) = memchr::memmem::find(self.pending(), &self.delimiter) {
                write(out, &self.buf[self.start..self.start + i])?;
                copied += i as u64;
                self.start += i + self.delimiter.len();
                self.state = State::Delimiter;
                return Ok(copied);
            }
            // All but what could be the start of a delimiter is content.
            let pending = self.end - self.start;
            if pending > keep {
                let n = pending - keep;
                write(out, &self.buf[self.start..self.start + n])?;
                copied += n as u64;
                self.start += n;
            }
            if !self.fill()? {
                return Err(MultipartError::Malformed {
                    part,
                    what: "the body ends inside the part, without the closing delimiter",
                });
            }
        }
    }
}

/// The `boundary` parameter of a multipart content type of subtype `subtype` (e.g.
/// "multipart/related").
pub fn boundary_of(content_type: &str, subtype: &str) -> Result<String, String> {
    let lower = content_type.to_ascii_lowercase();
    if !lower.starts_with(subtype) {
        return Err(format!(
            "Content-Type '{content_type}' must be {subtype}; type=\"application/dicom\""
        ));
    }
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|b| !b.is_empty())
        .ok_or_else(|| format!("the {subtype} Content-Type has no boundary"))?;
    if boundary.len() > MAX_BOUNDARY || boundary.contains(['\r', '\n']) {
        return Err(format!(
            "the boundary must be 1-{MAX_BOUNDARY} characters on one line"
        ));
    }
    Ok(boundary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes a call, to cross every buffer edge.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = self.0.len().min(out.len()).min(self.1);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn all(body: &[u8], boundary: &str, step: usize) -> Result<Vec<(String, Vec<u8>)>, String> {
        let mut r = MultipartReader::new(Trickle(body, step), boundary, 100);
        let mut out = Vec::new();
        while let Some(part) = r.next_part().map_err(|e| e.to_string())? {
            let mut content = Vec::new();
            r.copy_content(&mut content).map_err(|e| e.to_string())?;
            out.push((part.headers, content));
        }
        Ok(out)
    }

    #[test]
    fn parts_are_split_at_their_boundary_whatever_the_reads() {
        let body = b"preamble\r\n--b1\r\nContent-Type: application/dicom\r\n\r\nAAA\r\n--b1  \r\nContent-Type: application/dicom\r\n\r\nB\r\nB\r\n--b\r\n--b1\r\n\r\n\r\n--b1--\r\nepilogue";
        for step in [1, 2, 3, 7, 64, 1 << 20] {
            let p = all(body, "b1", step).unwrap();
            assert_eq!(p.len(), 3, "step {step}");
            assert_eq!(p[0].1, b"AAA");
            assert_eq!(p[1].1, b"B\r\nB\r\n--b");
            assert_eq!(p[2], (String::new(), Vec::new()));
            assert!(p[0].0.contains("application/dicom"));
        }
        // A body may start with its delimiter directly.
        assert_eq!(all(b"--x\r\n\r\nA\r\n--x--", "x", 5).unwrap().len(), 1);
    }

    #[test]
    fn bad_bodies_are_refused_with_the_reason() {
        let err = |body: &[u8]| all(body, "b1", 3).unwrap_err();
        assert!(err(b"--b1\r\n\r\nA\r\n--b1").contains("closing"));
        assert!(err(b"--b1\r\n\r\nA").contains("without the closing delimiter"));
        assert!(err(b"nothing").contains("no delimiter"));
        assert!(err(b"--b1X\r\n\r\n").contains("line break"));
        assert!(err(b"--b1\r\nContent-Type: a").contains("inside the part's headers"));
        let mut long = b"--b1\r\nX-Long: ".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_PART_HEADER + 10));
        long.extend_from_slice(b"\r\n\r\nA\r\n--b1--");
        assert!(err(&long).contains("headers are over"));
        let flood = b"--b1\r\n\r\n\r\n".repeat(101);
        assert!(err(&flood).contains("more than 100 parts"));
    }

    #[test]
    fn headers_are_found_by_name() {
        let body =
            b"--b\r\nContent-Type: application/dicom\r\nContent-Location: x\r\n\r\nA\r\n--b--";
        let mut r = MultipartReader::new(&body[..], "b", 10);
        let part = r.next_part().unwrap().unwrap();
        assert_eq!(part.header("content-type"), Some("application/dicom"));
        assert_eq!(part.header("content-location"), Some("x"));
        assert_eq!(part.header("other"), None);
        assert!(r.next_part().unwrap().is_none());
    }

    #[test]
    fn the_boundary_is_read_from_the_content_type() {
        let related = "multipart/related";
        assert_eq!(
            boundary_of(
                "multipart/related; type=\"application/dicom\"; boundary=\"abc\"",
                related
            )
            .unwrap(),
            "abc"
        );
        assert!(boundary_of("application/json", related).is_err());
        assert!(boundary_of("multipart/related; type=application/dicom", related).is_err());
        let long = format!("multipart/related; boundary={}", "a".repeat(71));
        assert!(boundary_of(&long, related).is_err());
    }

    /// A deterministic mutation smoke test (the `stow_multipart` fuzz target runs the same
    /// reader coverage-guided): valid bodies with bytes flipped, inserted, deleted and cut
    /// never panic, and the reader never holds more than its one buffer.
    #[test]
    fn mutated_bodies_never_panic() {
        let mut seeds: Vec<Vec<u8>> = vec![
            b"--b\r\nContent-Type: application/dicom\r\n\r\nAAAA\r\n--b\r\n\r\nB\r\n--b--\r\n"
                .to_vec(),
            b"pre\r\n--b \t\r\nX: y\r\n\r\n\r\n--b--".to_vec(),
        ];
        let mut big = b"--b\r\n\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'\r', 3 * CHUNK));
        big.extend_from_slice(b"\r\n--b--");
        seeds.push(big);
        let mut rng = crate::service::mutation::XorShift::new(0x5eed_57a0);
        for round in 0..3000 {
            let mut body = seeds[round % seeds.len()].clone();
            rng.mutate(&mut body);
            let step = 1 + rng.below(CHUNK as u64 + 10) as usize;
            let mut r = MultipartReader::new(Trickle(&body, step), "b", 16);
            let mut sink = std::io::sink();
            while let Ok(Some(_)) = r.next_part() {
                if r.copy_content(&mut sink).is_err() {
                    break;
                }
            }
            assert!(r.parts() <= 16);
        }
    }
}
