//! Bounded inspection of a received DICOM file (Part 10: preamble, `DICM`, file meta, data
//! set). Every element header is read and its declared length checked against what remains
//! of its container and of the file before anything is read or skipped, so a peer that
//! declares a 4 GiB element in a 200-byte file is refused, naming the tag and both lengths,
//! without the host reserving the declared size. Nothing here allocates more than a short
//! attribute value ([`MAX_ATTRIBUTE`]); pixel data and other long values are skipped, not
//! read. A deflated data set is inflated as a stream, and at most [`MAX_INFLATED`] bytes of it.
//!
//! The walk covers the transfer syntaxes the SCP accepts: explicit and implicit VR little
//! endian, explicit VR big endian, deflated explicit VR little endian, and the encapsulated
//! (compressed) syntaxes, whose pixel data is a sequence of fragments of undefined length.

use dicom_core::dictionary::{DataDictionary as _, DataDictionaryEntry as _};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::{tags, StandardDataDictionary};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// Values up to this length at the top level of the data set are kept as text
/// ([`InstanceFacts::attributes`]); longer ones are skipped.
pub const MAX_ATTRIBUTE: u32 = 1024;
/// The most a deflated data set may inflate to.
pub const MAX_INFLATED: u64 = 2 << 30;
/// The file meta group is a few hundred bytes; this bounds what is read of it.
pub const MAX_META_GROUP: u32 = 64 * 1024;
/// Sequences nested deeper than this are refused (each level costs the walk a stack frame).
pub const MAX_DEPTH: usize = 32;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const ITEM: Tag = Tag(0xFFFE, 0xE000);
const ITEM_END: Tag = Tag(0xFFFE, 0xE00D);
const SEQUENCE_END: Tag = Tag(0xFFFE, 0xE0DD);
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";

/// What a received instance is, as far as the host needs to know.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceFacts {
    /// From the file meta: (0002,0010), (0002,0002), (0002,0003).
    pub transfer_syntax: String,
    pub media_sop_class: String,
    pub media_sop_instance: String,
    /// From the data set: (0008,0016), (0008,0018), (0020,000D); empty when absent.
    pub sop_class: String,
    pub sop_instance: String,
    pub study_instance: String,
    /// Short top-level attributes as text (strings without their padding, numbers in
    /// decimal), multiple values separated by `\`: what routing conditions look at.
    pub attributes: BTreeMap<Tag, String>,
}

impl InstanceFacts {
    /// The text of a top-level attribute.
    pub fn text(&self, tag: Tag) -> Option<&str> {
        self.attributes.get(&tag).map(String::as_str)
    }

    /// The text of a top-level attribute named by its keyword (`Modality`).
    pub fn by_keyword(&self, keyword: &str) -> Option<&str> {
        let tag = StandardDataDictionary.by_name(keyword)?.tag();
        self.text(tag)
    }
}

/// Why a file is not an instance the host accepts.
#[derive(Debug, thiserror::Error)]
pub enum InstanceRefusal {
    #[error("the file cannot be read: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a DICOM file: no `DICM` after the 128-byte preamble")]
    NotPart10,
    #[error(
        "the file meta group has no group length (0002,0000) or one over {MAX_META_GROUP} bytes"
    )]
    MetaGroup,
    #[error("the file meta names no transfer syntax (0002,0010)")]
    NoTransferSyntax,
    // Said briefly, the numbers first: this is also the Error Comment (64 characters) of
    // the C-STORE-RSP.
    #[error("{tag} declares {declared} bytes, {available} remain (at byte {offset})")]
    Overrun {
        tag: Tag,
        offset: u64,
        declared: u64,
        available: u64,
    },
    #[error("element {tag} at byte {offset}: {what}")]
    Malformed {
        tag: Tag,
        offset: u64,
        what: &'static str,
    },
    #[error("the data set ends inside an element header at byte {0}")]
    Truncated(u64),
    #[error("sequences nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("the deflated data set inflates past {MAX_INFLATED} bytes")]
    Inflated,
}

type Result<T> = std::result::Result<T, InstanceRefusal>;

/// Reads the file meta and walks the data set of the file at `path`.
pub fn inspect_instance(path: &Path) -> Result<InstanceFacts> {
    let file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    inspect_input(Input {
        inner: BufReader::with_capacity(64 * 1024, file),
        pos: 0,
        end: Some(size),
        // Pixel data is skipped without being read.
        seek: Some(BufReader::seek_relative),
    })
}

/// The same for a file's bytes in memory.
pub fn inspect_bytes(bytes: &[u8]) -> Result<InstanceFacts> {
    inspect_from(bytes, bytes.len() as u64)
}

/// The same for `size` bytes read from `source`.
pub fn inspect_from<R: Read>(source: R, size: u64) -> Result<InstanceFacts> {
    inspect_input(Input {
        inner: BufReader::with_capacity(64 * 1024, source.take(size)),
        pos: 0,
        end: Some(size),
        seek: None,
    })
}

fn inspect_input<R: BufRead>(mut input: Input<R>) -> Result<InstanceFacts> {
    let mut facts = InstanceFacts::default();
    let data_start = read_meta(&mut input, &mut facts)?;
    let encoding = match facts.transfer_syntax.as_str() {
        "1.2.840.10008.1.2" => Encoding::Implicit,
        "1.2.840.10008.1.2.2" => Encoding::BigExplicit,
        _ => Encoding::Explicit,
    };
    if facts.transfer_syntax == DEFLATED {
        let inflater = flate2::read::DeflateDecoder::new(input.inner).take(MAX_INFLATED + 1);
        let mut inflated = Input {
            inner: BufReader::with_capacity(64 * 1024, inflater),
            pos: 0,
            end: None,
            seek: None,
        };
        let mut walk = Walk {
            input: &mut inflated,
            encoding,
            facts: &mut facts,
        };
        walk.data_set(None, 0)?;
        if inflated.pos > MAX_INFLATED {
            return Err(InstanceRefusal::Inflated);
        }
    } else {
        debug_assert_eq!(input.pos, data_start);
        let mut walk = Walk {
            input: &mut input,
            encoding,
            facts: &mut facts,
        };
        walk.data_set(None, 0)?;
    }
    Ok(facts)
}

/// The file meta group (explicit VR little endian); returns where the data set starts.
fn read_meta<R: BufRead>(input: &mut Input<R>, facts: &mut InstanceFacts) -> Result<u64> {
    let mut head = [0u8; 132];
    if input.read_exact(&mut head).is_err() || &head[128..] != b"DICM" {
        return Err(InstanceRefusal::NotPart10);
    }
    let mut walk = Walk {
        input,
        encoding: Encoding::Explicit,
        facts,
    };
    let Some(first) = walk.header()? else {
        return Err(InstanceRefusal::MetaGroup);
    };
    if first.tag != Tag(0x0002, 0x0000) || first.len != 4 {
        return Err(InstanceRefusal::MetaGroup);
    }
    let mut len = [0u8; 4];
    walk.input.read_exact(&mut len)?;
    let group = u32::from_le_bytes(len);
    if group > MAX_META_GROUP {
        return Err(InstanceRefusal::MetaGroup);
    }
    let end = walk.input.pos + u64::from(group);
    walk.check_fits(&first, Some(end), u64::from(group))?;
    let mut meta = BTreeMap::new();
    while walk.input.pos < end {
        let Some(h) = walk.header()? else {
            return Err(InstanceRefusal::Truncated(walk.input.pos));
        };
        if h.len == UNDEFINED || h.tag.group() != 0x0002 {
            return Err(InstanceRefusal::Malformed {
                tag: h.tag,
                offset: h.offset,
                what: "not a file meta element of defined length",
            });
        }
        walk.check_fits(&h, Some(end), u64::from(h.len))?;
        if h.len <= MAX_ATTRIBUTE {
            let mut value = vec![0u8; h.len as usize];
            walk.input.read_exact(&mut value)?;
            meta.insert(h.tag, text_of(&value));
        } else {
            walk.input.skip(u64::from(h.len))?;
        }
    }
    let mut take = |tag| meta.remove(&tag).unwrap_or_default();
    facts.transfer_syntax = take(tags::TRANSFER_SYNTAX_UID);
    facts.media_sop_class = take(tags::MEDIA_STORAGE_SOP_CLASS_UID);
    facts.media_sop_instance = take(tags::MEDIA_STORAGE_SOP_INSTANCE_UID);
    if facts.transfer_syntax.is_empty() {
        return Err(InstanceRefusal::NoTransferSyntax);
    }
    Ok(end)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Encoding {
    Explicit,
    Implicit,
    BigExplicit,
}

/// A byte source that knows its position and, for a file, its end.
struct Input<R> {
    inner: R,
    pos: u64,
    /// The total length when known (a file); none for an inflated stream.
    end: Option<u64>,
    /// Moves forward without reading, where the source can.
    seek: Option<fn(&mut R, i64) -> std::io::Result<()>>,
}

impl<R: BufRead> Input<R> {
    fn read_exact(&mut self, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_exact(buf)?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    /// Whether the input is exhausted.
    fn at_end(&mut self) -> std::io::Result<bool> {
        Ok(self.inner.fill_buf()?.is_empty())
    }

    /// Skips `n` bytes by reading them (a stream) or seeking (a file); returns how many
    /// were there.
    fn skip(&mut self, n: u64) -> std::io::Result<u64> {
        if let (Some(seek), Some(end)) = (self.seek, self.end) {
            let n = n.min(end.saturating_sub(self.pos));
            seek(&mut self.inner, n as i64)?;
            self.pos += n;
            return Ok(n);
        }
        let skipped = std::io::copy(&mut (&mut self.inner).take(n), &mut std::io::sink())?;
        self.pos += skipped;
        Ok(skipped)
    }
}

/// One element header.
struct Header {
    tag: Tag,
    vr: Option<VR>,
    len: u32,
    offset: u64,
}

struct Walk<'a, R> {
    input: &'a mut Input<R>,
    encoding: Encoding,
    facts: &'a mut InstanceFacts,
}

impl<R: BufRead> Walk<'_, R> {
    fn u16(&self, b: [u8; 2]) -> u16 {
        match self.encoding {
            Encoding::BigExplicit => u16::from_be_bytes(b),
            _ => u16::from_le_bytes(b),
        }
    }

    fn u32(&self, b: [u8; 4]) -> u32 {
        match self.encoding {
            Encoding::BigExplicit => u32::from_be_bytes(b),
            _ => u32::from_le_bytes(b),
        }
    }

    /// The next element header; none at the end of the input.
    fn header(&mut self) -> Result<Option<Header>> {
        let offset = self.input.pos;
        if self.input.at_end()? {
            return Ok(None);
        }
        let truncated = |_| InstanceRefusal::Truncated(offset);
        let mut b = [0u8; 8];
        self.input.read_exact(&mut b).map_err(truncated)?;
        let tag = Tag(self.u16([b[0], b[1]]), self.u16([b[2], b[3]]));
        // Items and delimiters never have a VR.
        if self.encoding == Encoding::Implicit || tag.group() == 0xFFFE {
            let len = self.u32([b[4], b[5], b[6], b[7]]);
            let vr = (self.encoding == Encoding::Implicit && tag.group() != 0xFFFE)
                .then(|| dictionary_vr(tag))
                .flatten();
            return Ok(Some(Header {
                tag,
                vr,
                len,
                offset,
            }));
        }
        let Some(vr) = VR::from_binary([b[4], b[5]]) else {
            return Err(InstanceRefusal::Malformed {
                tag,
                offset,
                what: "its value representation is not one DICOM defines",
            });
        };
        let len = if long_length(vr) {
            let mut l = [0u8; 4];
            self.input.read_exact(&mut l).map_err(truncated)?;
            self.u32(l)
        } else {
            u32::from(self.u16([b[6], b[7]]))
        };
        Ok(Some(Header {
            tag,
            vr: Some(vr),
            len,
            offset,
        }))
    }

    /// A value of `declared` bytes must fit in its container (ending at `end`) and in the
    /// input.
    fn check_fits(&self, h: &Header, end: Option<u64>, declared: u64) -> Result<()> {
        let limit = match (end, self.input.end) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(limit) = limit {
            let available = limit.saturating_sub(self.input.pos);
            if declared > available {
                return Err(InstanceRefusal::Overrun {
                    tag: h.tag,
                    offset: h.offset,
                    declared,
                    available,
                });
            }
        }
        Ok(())
    }

    /// Skips a value that fits; on a stream, a value cut short by the end is an overrun.
    fn skip_value(&mut self, h: &Header) -> Result<()> {
        let want = u64::from(h.len);
        let start = self.input.pos;
        let got = self.input.skip(want)?;
        if got < want {
            return Err(InstanceRefusal::Overrun {
                tag: h.tag,
                offset: h.offset,
                declared: want,
                available: self.input.pos - start,
            });
        }
        self.check_inflated()
    }

    fn check_inflated(&self) -> Result<()> {
        if self.input.end.is_none() && self.input.pos > MAX_INFLATED {
            return Err(InstanceRefusal::Inflated);
        }
        Ok(())
    }

    /// The elements of a data set or item until `end` (defined length), or until an item
    /// delimiter (`end` none, nested), or the end of the input (`end` none, top level).
    fn data_set(&mut self, end: Option<u64>, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(InstanceRefusal::TooDeep);
        }
        loop {
            if end.is_some_and(|e| self.input.pos >= e) {
                return Ok(());
            }
            let Some(h) = self.header()? else {
                return match (end, depth) {
                    (None, 0) => Ok(()),
                    _ => Err(InstanceRefusal::Truncated(self.input.pos)),
                };
            };
            if h.tag == ITEM_END && depth > 0 && end.is_none() {
                return Ok(());
            }
            if h.tag.group() == 0xFFFE {
                return Err(InstanceRefusal::Malformed {
                    tag: h.tag,
                    offset: h.offset,
                    what: "an item or delimiter where an element belongs",
                });
            }
            self.element(&h, end, depth)?;
        }
    }

    fn element(&mut self, h: &Header, end: Option<u64>, depth: usize) -> Result<()> {
        let sequence = match h.vr {
            Some(VR::SQ) => true,
            // An undefined length in implicit VR, or with VR UN, is a sequence encoded in
            // implicit VR little endian (PS3.5 §6.2.2).
            None | Some(VR::UN) if h.len == UNDEFINED => true,
            _ => false,
        };
        if sequence {
            let inner = if h.vr == Some(VR::UN) {
                Encoding::Implicit
            } else {
                self.encoding
            };
            let outer = std::mem::replace(&mut self.encoding, inner);
            let result = self.sequence(h, end, depth);
            self.encoding = outer;
            return result;
        }
        if h.len == UNDEFINED {
            return match h.vr {
                Some(VR::OB | VR::OW) => self.fragments(h, end),
                _ => Err(InstanceRefusal::Malformed {
                    tag: h.tag,
                    offset: h.offset,
                    what: "an undefined length on a value that cannot have one",
                }),
            };
        }
        self.check_fits(h, end, u64::from(h.len))?;
        let keep = depth == 0 && h.len <= MAX_ATTRIBUTE && h.vr.is_some_and(is_textual);
        if !keep {
            return self.skip_value(h);
        }
        let mut value = vec![0u8; h.len as usize];
        self.input
            .read_exact(&mut value)
            .map_err(|_| InstanceRefusal::Overrun {
                tag: h.tag,
                offset: h.offset,
                declared: u64::from(h.len),
                available: 0,
            })?;
        let text = match h.vr {
            Some(vr @ (VR::US | VR::SS | VR::UL | VR::SL | VR::FL | VR::FD)) => {
                self.numbers(vr, &value)
            }
            _ => text_of(&value),
        };
        match h.tag {
            tags::SOP_CLASS_UID => self.facts.sop_class = text.clone(),
            tags::SOP_INSTANCE_UID => self.facts.sop_instance = text.clone(),
            tags::STUDY_INSTANCE_UID => self.facts.study_instance = text.clone(),
            _ => {}
        }
        self.facts.attributes.insert(h.tag, text);
        Ok(())
    }

    /// A sequence: items, each a data set, until its length is used or its delimiter.
    fn sequence(&mut self, h: &Header, end: Option<u64>, depth: usize) -> Result<()> {
        let seq_end = if h.len == UNDEFINED {
            None
        } else {
            self.check_fits(h, end, u64::from(h.len))?;
            Some(self.input.pos + u64::from(h.len))
        };
        loop {
            if seq_end.is_some_and(|e| self.input.pos >= e) {
                return Ok(());
            }
            let Some(item) = self.header()? else {
                return Err(InstanceRefusal::Truncated(self.input.pos));
            };
            match item.tag {
                SEQUENCE_END if seq_end.is_none() => return Ok(()),
                ITEM if item.len == UNDEFINED => self.data_set(None, depth + 1)?,
                ITEM => {
                    self.check_fits(&item, seq_end.or(end), u64::from(item.len))?;
                    let item_end = self.input.pos + u64::from(item.len);
                    self.data_set(Some(item_end), depth + 1)?;
                    if self.input.pos != item_end {
                        return Err(InstanceRefusal::Malformed {
                            tag: item.tag,
                            offset: item.offset,
                            what: "its elements overrun the item's length",
                        });
                    }
                }
                _ => {
                    return Err(InstanceRefusal::Malformed {
                        tag: item.tag,
                        offset: item.offset,
                        what: "not an item where a sequence's item belongs",
                    })
                }
            }
            self.check_inflated()?;
        }
    }

    /// Encapsulated pixel data: items of defined length (the offset table, then the
    /// fragments) until the sequence delimiter.
    fn fragments(&mut self, h: &Header, end: Option<u64>) -> Result<()> {
        loop {
            let Some(item) = self.header()? else {
                return Err(InstanceRefusal::Truncated(self.input.pos));
            };
            match item.tag {
                SEQUENCE_END => return Ok(()),
                ITEM if item.len != UNDEFINED => {
                    self.check_fits(&item, end, u64::from(item.len))?;
                    self.skip_value(&item)?;
                }
                _ => {
                    return Err(InstanceRefusal::Malformed {
                        tag: h.tag,
                        offset: item.offset,
                        what: "its encapsulated pixel data holds something other than fragments",
                    })
                }
            }
        }
    }

    fn numbers(&self, vr: VR, value: &[u8]) -> String {
        let big = self.encoding == Encoding::BigExplicit;
        let width = match vr {
            VR::US | VR::SS => 2,
            VR::FD => 8,
            _ => 4,
        };
        let values: Vec<String> = value
            .chunks_exact(width)
            .map(|c| {
                let mut b = [0u8; 8];
                b[..width].copy_from_slice(c);
                if big {
                    b[..width].reverse();
                }
                match vr {
                    VR::US => u16::from_le_bytes([b[0], b[1]]).to_string(),
                    VR::SS => i16::from_le_bytes([b[0], b[1]]).to_string(),
                    VR::UL => u32::from_le_bytes([b[0], b[1], b[2], b[3]]).to_string(),
                    VR::SL => i32::from_le_bytes([b[0], b[1], b[2], b[3]]).to_string(),
                    VR::FL => f32::from_le_bytes([b[0], b[1], b[2], b[3]]).to_string(),
                    _ => f64::from_le_bytes(b).to_string(),
                }
            })
            .collect();
        values.join("\\")
    }
}

/// VRs whose value has a four-byte length in explicit VR (PS3.5 Table 7.1-1).
fn long_length(vr: VR) -> bool {
    matches!(
        vr,
        VR::OB
            | VR::OD
            | VR::OF
            | VR::OL
            | VR::OV
            | VR::OW
            | VR::SQ
            | VR::SV
            | VR::UC
            | VR::UN
            | VR::UR
            | VR::UT
            | VR::UV
    )
}

/// VRs kept as text when short: strings and single numbers.
fn is_textual(vr: VR) -> bool {
    !matches!(
        vr,
        VR::OB
            | VR::OD
            | VR::OF
            | VR::OL
            | VR::OV
            | VR::OW
            | VR::SQ
            | VR::UN
            | VR::AT
            | VR::SV
            | VR::UV
    )
}

/// In implicit VR the dictionary says what an attribute is; unknown ones are opaque.
fn dictionary_vr(tag: Tag) -> Option<VR> {
    StandardDataDictionary
        .by_tag(tag)
        .and_then(|e| e.vr().exact())
}

/// A string value without its padding.
fn text_of(value: &[u8]) -> String {
    String::from_utf8_lossy(value)
        .trim_end_matches(['\0', ' '])
        .to_string()
}

#[cfg(test)]
mod tests;
