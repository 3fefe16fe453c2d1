//! The byte containers around R serializations: `saveRDS` compression of the
//! `.rdx` index (gzip, xz or none) and the framing of `.rdb` entries (size
//! header, then zlib, or a type byte and raw LZMA2, zlib or stored bytes).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{io_err, RDataError, Result};

/// Ceiling on a decompressed `.rdx` file; real ones are a few kilobytes.
pub(crate) const MAX_INDEX_BYTES: usize = 256 << 20;

/// Undo `saveRDS` compression: gzip, xz, or none (`X\n` header).
pub(crate) fn decompress_rds(raw: &[u8], context: &str) -> Result<Vec<u8>> {
    let fail = |method, detail: String| RDataError::Decompress {
        context: context.to_string(),
        method,
        detail,
    };
    let mut out = CappedSink::new(MAX_INDEX_BYTES);
    if raw.starts_with(&[0x1f, 0x8b]) {
        io::copy(&mut flate2::read::MultiGzDecoder::new(raw), &mut out)
            .map_err(|e| fail("gzip", e.to_string()))?;
        Ok(out.buf)
    } else if raw.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        lzma_rs::xz_decompress(&mut &raw[..], &mut out).map_err(|e| fail("xz", e.to_string()))?;
        Ok(out.buf)
    } else if raw.starts_with(b"BZh") {
        Err(RDataError::UnsupportedCompression {
            context: context.to_string(),
            detail: "bzip2-compressed RDS file".into(),
        })
    } else {
        Ok(raw.to_vec())
    }
}

/// A byte sink that fails instead of growing past `limit`.
struct CappedSink {
    buf: Vec<u8>,
    limit: usize,
}

impl CappedSink {
    fn new(limit: usize) -> Self {
        CappedSink {
            buf: Vec::new(),
            limit,
        }
    }
}

impl io::Write for CappedSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.len() > self.limit - self.buf.len() {
            return Err(io::Error::other(format!(
                "output exceeds {} bytes",
                self.limit
            )));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(crate) fn read_range(path: &Path, offset: u64, length: u64, context: &str) -> Result<Vec<u8>> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let file_len = file.metadata().map_err(io_err(path))?.len();
    if offset.checked_add(length).is_none_or(|end| end > file_len) {
        return Err(RDataError::EntryOutOfRange {
            context: context.to_string(),
            offset,
            length,
            file_len,
        });
    }
    file.seek(SeekFrom::Start(offset)).map_err(io_err(path))?;
    let mut buf = Vec::new();
    file.take(length)
        .read_to_end(&mut buf)
        .map_err(io_err(path))?;
    if buf.len() as u64 != length {
        return Err(RDataError::Io {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::UnexpectedEof, "short read"),
        });
    }
    Ok(buf)
}

/// Turn one `.rdb` entry into serialized bytes, following `compressed`.
pub(crate) fn decode_entry(raw: &[u8], compressed: i64, context: &str) -> Result<Vec<u8>> {
    let unsupported = |detail: String| RDataError::UnsupportedCompression {
        context: context.to_string(),
        detail,
    };
    if compressed == 0 {
        return Ok(raw.to_vec());
    }
    let (size, rest) = match raw {
        [a, b, c, d, rest @ ..] => (u32::from_be_bytes([*a, *b, *c, *d]) as usize, rest),
        _ => {
            return Err(RDataError::Decompress {
                context: context.to_string(),
                method: "entry header",
                detail: format!("entry is only {} bytes", raw.len()),
            });
        }
    };
    match compressed {
        1 => inflate_zlib(rest, size, context),
        2 | 3 => match rest.split_first() {
            Some((b'Z', body)) => unpack_lzma2(body, size, context),
            Some((b'1', body)) => inflate_zlib(body, size, context),
            Some((b'0', body)) if body.len() == size => Ok(body.to_vec()),
            Some((b'0', body)) => Err(RDataError::Decompress {
                context: context.to_string(),
                method: "stored",
                detail: format!("header says {size} bytes, entry holds {}", body.len()),
            }),
            Some((b'2', _)) => Err(unsupported("bzip2 entry (type byte '2')".into())),
            Some((t, _)) => Err(unsupported(format!("unknown type byte 0x{t:02x}"))),
            None => Err(unsupported("entry has no type byte".into())),
        },
        other => Err(unsupported(format!("`compressed` = {other}"))),
    }
}

fn inflate_zlib(data: &[u8], size: usize, context: &str) -> Result<Vec<u8>> {
    let fail = |detail: String| RDataError::Decompress {
        context: context.to_string(),
        method: "zlib",
        detail,
    };
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(data)
        .take(size as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| fail(e.to_string()))?;
    if out.len() != size {
        return Err(fail(format!(
            "header says {size} bytes, stream gave {}",
            out.len()
        )));
    }
    Ok(out)
}

/// Decode a raw LZMA2 stream. The chunk headers are walked first, so that a
/// stream whose chunks add up to a size other than the header's is rejected
/// before anything is allocated for it.
fn unpack_lzma2(data: &[u8], size: usize, context: &str) -> Result<Vec<u8>> {
    let fail = |detail: String| RDataError::Decompress {
        context: context.to_string(),
        method: "LZMA2",
        detail,
    };
    let total = lzma2_unpacked_size(data).map_err(fail)?;
    if total != size as u64 {
        return Err(fail(format!(
            "header says {size} bytes, LZMA2 chunks hold {total}"
        )));
    }
    let mut out = CappedSink::new(size);
    lzma_rs::lzma2_decompress(&mut &data[..], &mut out).map_err(|e| fail(e.to_string()))?;
    let out = out.buf;
    if out.len() != size {
        return Err(fail(format!(
            "header says {size} bytes, stream gave {}",
            out.len()
        )));
    }
    Ok(out)
}

/// Sum of the unpacked sizes declared by the chunk headers of an LZMA2 stream.
fn lzma2_unpacked_size(data: &[u8]) -> std::result::Result<u64, String> {
    let mut pos = 0usize;
    let mut total = 0u64;
    let be16 = |p: usize| -> std::result::Result<usize, String> {
        match data.get(p..p + 2) {
            Some(&[a, b]) => Ok(usize::from(u16::from_be_bytes([a, b]))),
            _ => Err(format!("truncated chunk header at byte {p}")),
        }
    };
    loop {
        let control = *data
            .get(pos)
            .ok_or_else(|| format!("missing end marker at byte {pos}"))?;
        match control {
            0x00 => return Ok(total),
            0x01 | 0x02 => {
                let n = be16(pos + 1)? + 1;
                total += n as u64;
                pos += 3 + n;
            }
            0x80..=0xff => {
                let unpacked = ((usize::from(control & 0x1f) << 16) | be16(pos + 1)?) + 1;
                let packed = be16(pos + 3)? + 1;
                let props = usize::from(control >= 0xc0);
                total += unpacked as u64;
                pos += 5 + props + packed;
            }
            c => {
                return Err(format!(
                    "invalid LZMA2 control byte 0x{c:02x} at byte {pos}"
                ));
            }
        }
        if pos > data.len() {
            return Err("LZMA2 chunk runs past the end of the entry".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serialize::writer::small_frame;

    #[test]
    fn entry_decoding_zlib_lzma2_stored() {
        use std::io::Write;
        let payload = small_frame();
        let size = (payload.len() as u32).to_be_bytes();

        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&payload).unwrap();
        let zlib = z.finish().unwrap();
        let plain_zlib = [&size[..], &zlib].concat();
        assert_eq!(decode_entry(&plain_zlib, 1, "t").unwrap(), payload);

        let mut lz = Vec::new();
        lzma_rs::lzma2_compress(&mut &payload[..], &mut lz).unwrap();
        let xz_entry = [&size[..], b"Z", &lz].concat();
        assert_eq!(decode_entry(&xz_entry, 3, "t").unwrap(), payload);

        let stored = [&size[..], b"0", &payload].concat();
        assert_eq!(decode_entry(&stored, 3, "t").unwrap(), payload);

        let wrong_size = [&(payload.len() as u32 + 1).to_be_bytes()[..], b"Z", &lz].concat();
        assert!(matches!(
            decode_entry(&wrong_size, 3, "t"),
            Err(RDataError::Decompress { .. })
        ));
        let bz = [&size[..], b"2", b"BZh9"].concat();
        assert!(matches!(
            decode_entry(&bz, 2, "t"),
            Err(RDataError::UnsupportedCompression { .. })
        ));
        for cut in 0..xz_entry.len() {
            assert!(decode_entry(&xz_entry[..cut], 3, "t").is_err());
        }
    }
}
