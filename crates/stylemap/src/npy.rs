//! Reading and writing `.npy` arrays of float32 / float64 through the
//! [`npyz`] crate, with no trust in the file.
//!
//! # What is read
//!
//! numpy's format versions 1.0, 2.0 and 3.0. The format itself (the header
//! dict, the dtype, decoding the elements) is handled by `npyz`; this module
//! accepts only little-endian float32 (`'<f4'`) and float64 (`'<f8'`) in C
//! order, and turns everything else into an [`Error::Format`] naming the file
//! and the problem.
//!
//! # Robustness
//!
//! Before `npyz` sees anything, this module checks every number that could
//! make it allocate or overflow against the file's real size: the header
//! length (at most [`MAX_HEADER_LEN`] bytes, and within the file) is read
//! from the preamble, and a small bounded scan of the header text checks
//! that brackets nest at most [`MAX_DEPTH`] deep and that the integers in it
//! (the shape's dimensions) multiply out without overflowing `u64` — `npyz`
//! multiplies the shape unchecked. After `npyz` has parsed the header, the
//! element count times the item size is checked (with checked arithmetic)
//! against the bytes the file holds, before any value is read. So a hostile
//! file can make this module allocate at most its own size plus the
//! caller's buffers, and it never panics or loops. Values are streamed
//! ([`Reader::read_f32`]), so a file of any size is read a batch at a time;
//! NaN and infinities are refused with the row they sit in.
//!
//! # What is written
//!
//! [`Writer`] writes the header with `npyz` (version 1.0, padded with spaces
//! to a multiple of 64 bytes and ending in `\n`, as `np.save` does) and
//! encodes the values with `npyz`'s element writers.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use npyz::{TypeWrite, WriterBuilder};

use crate::error::Error;

/// Largest header (the dict after the preamble) accepted. numpy refuses
/// headers over 10 000 bytes by default; this leaves room for long shapes.
pub const MAX_HEADER_LEN: u64 = 64 * 1024;

/// Deepest nesting of tuples, lists and dicts accepted in a header.
///
/// A header we accept nests 2 deep (the dict, then the shape tuple). The
/// PEG parser under `npyz` backtracks exponentially in the nesting depth of
/// a malformed literal: `(1,(1,(1,...` unclosed 16 deep took 4.6 s (found
/// by the `npy` fuzz target), so the limit is kept small.
pub const MAX_DEPTH: usize = 4;

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The element types read and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// Little-endian float32, `'<f4'`.
    F32,
    /// Little-endian float64, `'<f8'`.
    F64,
}

impl Dtype {
    /// numpy's type string: `<f4` or `<f8`.
    pub const fn descr(self) -> &'static str {
        match self {
            Dtype::F32 => "<f4",
            Dtype::F64 => "<f8",
        }
    }

    /// Bytes per element.
    pub const fn size(self) -> u64 {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 => 8,
        }
    }

    /// The `npyz` dtype.
    fn npyz(self) -> npyz::DType {
        let ty: npyz::TypeStr = self
            .descr()
            .parse()
            .unwrap_or_else(|_| unreachable!("'<f4' and '<f8' are valid type strings"));
        npyz::DType::Plain(ty)
    }
}

/// Formats a shape like numpy's `[3, 512]`.
pub fn shape_str(shape: &[u64]) -> String {
    let items: Vec<String> = shape.iter().map(u64::to_string).collect();
    format!("[{}]", items.join(", "))
}

/// `shape` multiplied out, `None` on overflow.
pub fn element_count(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
}

/// The product of the non-zero dimensions, `None` on overflow. `npyz`
/// multiplies shapes (and their suffixes, for strides) unchecked, so a shape
/// is only handed to it when this fits in `u64`.
fn nonzero_product(shape: &[u64]) -> Option<u64> {
    shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
}

/// A parsed and checked `.npy` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Element type.
    pub dtype: Dtype,
    /// The array's shape (C order).
    pub shape: Vec<u64>,
    /// Offset of the first data byte in the file.
    pub data_start: u64,
    /// Number of elements (`shape` multiplied out; fits in u64, and its
    /// bytes fit in the file).
    pub count: u64,
}

/// Reads and checks the preamble and header of a `.npy` file of
/// `file_len` bytes from `r` (positioned at its start), leaving `r` at the
/// first data byte. `name` is the file in error messages.
///
/// Checks everything but the values: magic, version, header length (within
/// the file and at most [`MAX_HEADER_LEN`]), the dict (parsed by `npyz`),
/// the dtype (`<f4` / `<f8`), C order, and that the data the shape needs is
/// present (trailing bytes are allowed, as numpy allows them).
pub fn read_header<R: Read>(r: &mut R, file_len: u64, name: &Path) -> Result<Header, Error> {
    read_header_npyz(r, file_len, name).map(|(header, _)| header)
}

/// [`read_header`], also returning `npyz`'s header for reading the data.
fn read_header_npyz<R: Read>(
    r: &mut R,
    file_len: u64,
    name: &Path,
) -> Result<(Header, npyz::NpyHeader), Error> {
    let err = |msg: String| Error::format(name, msg);
    if file_len == 0 {
        return Err(err("file is empty (0 bytes), not a .npy file".into()));
    }
    if file_len < 10 {
        return Err(err(format!("not a .npy file (only {file_len} bytes)")));
    }
    let io = |e: io::Error| err(format!("cannot read header: {}", one_line(&e.to_string())));
    // The preamble is read here only to bound the header before `npyz`
    // allocates a buffer of the announced length.
    let mut pre = vec![0u8; 8];
    r.read_exact(&mut pre).map_err(io)?;
    if &pre[..6] != MAGIC {
        return Err(err("not a .npy file (bad magic bytes)".into()));
    }
    let (len_bytes, header_len) = match (pre[6], pre[7]) {
        (1, 0) => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).map_err(io)?;
            pre.extend_from_slice(&b);
            (2u64, u64::from(u16::from_le_bytes(b)))
        }
        (2 | 3, 0) => {
            if file_len < 12 {
                return Err(err("truncated .npy header".into()));
            }
            let mut b = [0u8; 4];
            r.read_exact(&mut b).map_err(io)?;
            pre.extend_from_slice(&b);
            (4u64, u64::from(u32::from_le_bytes(b)))
        }
        (major, minor) => {
            return Err(err(format!(
                "unsupported .npy format version {major}.{minor}"
            )));
        }
    };
    let data_start = 8 + len_bytes + header_len;
    if data_start > file_len {
        return Err(err(format!(
            "truncated .npy header ({header_len} bytes announced, {} present)",
            file_len - 8 - len_bytes
        )));
    }
    if header_len > MAX_HEADER_LEN {
        return Err(err(format!(
            ".npy header of {header_len} bytes is larger than the {MAX_HEADER_LEN} allowed"
        )));
    }
    // Bounded above by MAX_HEADER_LEN.
    let text_start = pre.len();
    pre.resize(text_start + header_len as usize, 0);
    r.read_exact(&mut pre[text_start..]).map_err(io)?;
    prescan_header(&pre[text_start..]).map_err(|e| err(format!("malformed .npy header: {e}")))?;
    let npy = npyz::NpyHeader::from_reader(&pre[..]).map_err(|e| {
        err(format!(
            "malformed .npy header: {}",
            one_line(&e.to_string())
        ))
    })?;

    let dtype = match npy.dtype() {
        npyz::DType::Plain(ty) => match ty.to_string().as_str() {
            "<f4" => Dtype::F32,
            "<f8" => Dtype::F64,
            s => {
                return Err(err(format!(
                    "unsupported dtype '{s}' (expected little-endian float32 '<f4' or \
                     float64 '<f8')"
                )));
            }
        },
        npyz::DType::Record(_) | npyz::DType::Array(..) => {
            return Err(err(
                "unsupported structured dtype (expected little-endian float32 '<f4' or \
                 float64 '<f8')"
                    .into(),
            ));
        }
    };
    let shape = npy.shape().to_vec();
    if npy.order() == npyz::Order::Fortran {
        return Err(err(format!(
            "array of shape {} is in Fortran order; save it in C order \
             (np.ascontiguousarray) instead",
            shape_str(&shape)
        )));
    }
    let too_large = || err(format!("shape {} is too large", shape_str(&shape)));
    let count = element_count(&shape).ok_or_else(too_large)?;
    let need = count.checked_mul(dtype.size()).ok_or_else(too_large)?;
    let have = file_len - data_start;
    if have < need {
        return Err(err(format!(
            "truncated: shape {} needs {need} bytes of data but the file holds {have}",
            shape_str(&shape)
        )));
    }
    let header = Header {
        dtype,
        shape,
        data_start,
        count,
    };
    Ok((header, npy))
}

/// `npyz`'s streaming element reader, by dtype.
enum Values<R: Read> {
    F32(npyz::NpyReader<f32, R>),
    F64(npyz::NpyReader<f64, R>),
}

/// A `.npy` input: header checked, values streamed on demand.
pub struct Reader<R: Read> {
    name: PathBuf,
    header: Header,
    values: Values<R>,
    consumed: u64,
}

impl<R: Read> fmt::Debug for Reader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("name", &self.name)
            .field("header", &self.header)
            .field("consumed", &self.consumed)
            .finish_non_exhaustive()
    }
}

impl<R: Read> Reader<R> {
    /// Reads the header of a `.npy` file of `file_len` bytes from `inner`
    /// (positioned at its start); see [`read_header`].
    pub fn new(mut inner: R, file_len: u64, name: &Path) -> Result<Self, Error> {
        let (header, npy) = read_header_npyz(&mut inner, file_len, name)?;
        let file = npyz::NpyFile::with_header(npy, inner);
        let dtype_err =
            |e: npyz::DTypeError| Error::format(name, format!("unsupported dtype: {e}"));
        let values = match header.dtype {
            Dtype::F32 => Values::F32(file.data::<f32>().map_err(dtype_err)?),
            Dtype::F64 => Values::F64(file.data::<f64>().map_err(dtype_err)?),
        };
        Ok(Reader {
            name: name.to_path_buf(),
            header,
            values,
            consumed: 0,
        })
    }

    /// The file name used in messages.
    pub fn name(&self) -> &Path {
        &self.name
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The array's shape.
    pub fn shape(&self) -> &[u64] {
        &self.header.shape
    }

    /// The element type.
    pub fn dtype(&self) -> Dtype {
        self.header.dtype
    }

    /// Elements not read yet.
    pub fn remaining(&self) -> u64 {
        self.header.count - self.consumed
    }

    /// Reads the next `out.len()` values (float64 is rounded to float32),
    /// rejecting NaN and infinities: the error names the row, counting rows
    /// of `row_len` elements from the start of the array. Asking for more
    /// values than remain is an error, before anything is read.
    pub fn read_f32(&mut self, out: &mut [f32], row_len: usize) -> Result<(), Error> {
        if out.len() as u64 > self.remaining() {
            return Err(Error::format(
                &self.name,
                format!(
                    "unexpected end of data ({} values wanted, {} left)",
                    out.len(),
                    self.remaining()
                ),
            ));
        }
        let name = &self.name;
        let read_err = |e: Option<io::Error>| {
            let e = e.map_or_else(|| "no more values".to_string(), |e| e.to_string());
            Error::format(name, format!("cannot read values: {}", one_line(&e)))
        };
        for (i, v) in out.iter_mut().enumerate() {
            // `finite_f64`: the value was finite before rounding to f32.
            let finite_f64 = match &mut self.values {
                Values::F32(r) => {
                    *v = r
                        .next()
                        .ok_or(None)
                        .and_then(|x| x.map_err(Some))
                        .map_err(read_err)?;
                    false
                }
                Values::F64(r) => {
                    let x = r
                        .next()
                        .ok_or(None)
                        .and_then(|x| x.map_err(Some))
                        .map_err(read_err)?;
                    #[allow(clippy::cast_possible_truncation)]
                    {
                        *v = x as f32;
                    }
                    x.is_finite()
                }
            };
            if !v.is_finite() {
                let flat = self.consumed + i as u64;
                let row = flat / row_len.max(1) as u64;
                let what = if v.is_nan() {
                    "NaN"
                } else if finite_f64 {
                    "a value beyond float32's range"
                } else {
                    "an infinity"
                };
                return Err(Error::format(
                    &self.name,
                    format!("row {row} holds {what} (values must be finite)"),
                ));
            }
        }
        self.consumed += out.len() as u64;
        Ok(())
    }
}

/// Reads a whole `.npy` array held in memory as f32 (float64 is rounded):
/// `(shape, values)`. Same checks as [`Reader`]; `name` is used in messages.
/// Allocates at most `4 * bytes.len()` bytes of values (the data must be in
/// `bytes`).
pub fn read_f32_bytes(bytes: &[u8], name: &Path) -> Result<(Vec<u64>, Vec<f32>), Error> {
    let mut r = Reader::new(bytes, bytes.len() as u64, name)?;
    // count * size <= bytes.len(), so this fits in memory.
    let count = usize::try_from(r.header.count)
        .map_err(|_| Error::format(name, "array too large for this platform"))?;
    let mut values = vec![0.0f32; count];
    let row = r.shape().last().copied().unwrap_or(1).max(1);
    r.read_f32(&mut values, usize::try_from(row).unwrap_or(usize::MAX))?;
    Ok((r.header.shape, values))
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

/// An element type that can be written: f32 or f64 (encoded by `npyz`).
pub trait Element: Copy + npyz::Serialize {
    /// Its dtype.
    const DTYPE: Dtype;
}

impl Element for f32 {
    const DTYPE: Dtype = Dtype::F32;
}

impl Element for f64 {
    const DTYPE: Dtype = Dtype::F64;
}

/// Largest header text [`header_bytes`] writes: well inside both what a
/// version 1.0 header can hold and [`MAX_HEADER_LEN`].
const MAX_WRITTEN_HEADER: usize = 60_000;

/// The preamble and header of an array of `shape` and `dtype`, as `np.save`
/// writes them (written by `npyz`). Errors if the element count or byte size
/// overflows u64, or if the shape has so many dimensions that the header
/// would not be read back.
pub fn header_bytes(dtype: Dtype, shape: &[u64]) -> Result<Vec<u8>, Error> {
    let count = element_count(shape).and_then(|n| n.checked_mul(dtype.size()));
    if count.is_none() || nonzero_product(shape).is_none() {
        return Err(Error::invalid(format!(
            "an array of shape {} is too large",
            shape_str(shape)
        )));
    }
    // npyz writes each dimension as "{d}, " after ~60 bytes of dict.
    let dims_len: usize = shape.iter().map(|d| d.to_string().len() + 2).sum();
    if dims_len + 128 > MAX_WRITTEN_HEADER {
        return Err(Error::invalid(format!(
            "npy header too long (an array of {} dimensions)",
            shape.len()
        )));
    }
    npyz::WriteOptions::<T0>::new()
        .dtype(dtype.npyz())
        .shape(shape)
        .writer(Vec::new())
        .write_header_only()
        .map_err(write_err)
}

/// The element type named for [`header_bytes`]'s header-only writer.
type T0 = f32;

/// Writes one `.npy` array of `T` to `W`, value by value; [`finish`]
/// checks that exactly the announced number of values was written.
///
/// [`finish`]: Writer::finish
pub struct Writer<W: Write, T: Element> {
    inner: W,
    expected: u64,
    written: u64,
    buf: Vec<u8>,
    encode: T::TypeWriter,
}

impl<W: Write + fmt::Debug, T: Element> fmt::Debug for Writer<W, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("inner", &self.inner)
            .field("expected", &self.expected)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

impl<W: Write, T: Element> Writer<W, T> {
    /// Writes the header of an array of `shape` to `inner`.
    pub fn new(mut inner: W, shape: &[u64]) -> Result<Self, Error> {
        let header = header_bytes(T::DTYPE, shape)?;
        let encode =
            T::writer(&T::DTYPE.npyz()).map_err(|e| Error::invalid(format!("npy output: {e}")))?;
        let expected = element_count(shape).unwrap_or(u64::MAX);
        inner.write_all(&header).map_err(write_err)?;
        Ok(Writer {
            inner,
            expected,
            written: 0,
            buf: Vec::new(),
            encode,
        })
    }

    /// Appends values in C order; more than the shape holds is an error.
    pub fn write(&mut self, values: &[T]) -> Result<(), Error> {
        let n = values.len() as u64;
        if self
            .written
            .checked_add(n)
            .is_none_or(|t| t > self.expected)
        {
            return Err(Error::invalid(format!(
                "npy output: more values than its shape holds ({})",
                self.expected
            )));
        }
        self.buf.clear();
        for v in values {
            self.encode.write_one(&mut self.buf, v).map_err(write_err)?;
        }
        self.inner.write_all(&self.buf).map_err(write_err)?;
        self.written += n;
        Ok(())
    }

    /// Checks the element count, flushes and returns the inner writer.
    pub fn finish(mut self) -> Result<W, Error> {
        if self.written != self.expected {
            return Err(Error::invalid(format!(
                "npy output: {} values written, its shape holds {}",
                self.written, self.expected
            )));
        }
        self.inner.flush().map_err(write_err)?;
        Ok(self.inner)
    }
}

fn write_err(e: io::Error) -> Error {
    Error::invalid(format!("cannot write: {}", one_line(&e.to_string())))
}

/// A whole `.npy` file of `T` in memory.
pub fn to_bytes<T: Element>(shape: &[u64], values: &[T]) -> Result<Vec<u8>, Error> {
    let mut w = Writer::<Vec<u8>, T>::new(Vec::new(), shape)?;
    w.write(values)?;
    w.finish()
}

// ---------------------------------------------------------------------------
// Guards around npyz
// ---------------------------------------------------------------------------

/// An error message on one line, at most ~200 characters (the Python
/// literal parser under `npyz` reports errors over several lines).
fn one_line(msg: &str) -> String {
    let mut out = msg.split_whitespace().collect::<Vec<_>>().join(" ");
    if out.len() > 200 {
        let mut end = 200;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push_str("...");
    }
    out
}

/// A bounded, linear scan of the header text before `npyz` parses it:
/// brackets nest at most [`MAX_DEPTH`] deep (the parser recurses), strings
/// are terminated, integers are plain decimal, and the non-zero integers
/// outside strings (the shape's dimensions, in a header we accept) multiply
/// out within `u64` — `npyz` multiplies the shape unchecked. This is not a
/// parser: anything it lets through is still parsed and checked by `npyz`.
fn prescan_header(text: &[u8]) -> Result<(), String> {
    let mut depth = 0usize;
    let mut product = 1u64;
    let mut i = 0usize;
    while let Some(&c) = text.get(i) {
        match c {
            b'\'' | b'"' => {
                // A string, as the parser under npyz reads one: up to the
                // next unescaped matching quote (it has no triple-quoted
                // strings: `'''` is an empty string then a quote).
                i += 1;
                loop {
                    match text.get(i) {
                        None => return Err("unterminated string".into()),
                        Some(b'\\') => i += 2,
                        Some(&q) if q == c => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err("nested too deeply".into());
                }
                i += 1;
            }
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'0'..=b'9' => {
                let start = i;
                while text
                    .get(i)
                    .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
                {
                    i += 1;
                }
                let token = &text[start..i];
                if !token.iter().all(u8::is_ascii_digit) {
                    return Err(format!(
                        "unsupported number literal {:?} (dimensions must be plain decimal integers)",
                        String::from_utf8_lossy(token)
                    ));
                }
                let value = token
                    .iter()
                    .try_fold(0u64, |v, &d| {
                        v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
                    })
                    .ok_or("a dimension is too large")?;
                if value != 0 {
                    product = product
                        .checked_mul(value)
                        .ok_or("the shape is too large (its element count overflows 64 bits)")?;
                }
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'_' => {
                // A name (True, False, None, a string prefix): its digits
                // are not numbers.
                while text
                    .get(i)
                    .is_some_and(|&b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> &'static Path {
        Path::new("t.npy")
    }

    fn with_header(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut text = dict.to_string();
        while !(10 + text.len() + 1).is_multiple_of(64) {
            text.push(' ');
        }
        text.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(text.len() as u16).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn round_trip_f32_and_f64() {
        let v: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 2.0).collect();
        let bytes = to_bytes(&[3, 4], &v).unwrap();
        assert_eq!(
            (bytes.len() - 12 * 4) % 64,
            0,
            "data starts on a multiple of 64"
        );
        assert_eq!(read_f32_bytes(&bytes, name()).unwrap(), (vec![3, 4], v));
        let d = [0.1f64, -2.0, 3.5];
        let (shape, got) = read_f32_bytes(&to_bytes(&[3], &d).unwrap(), name()).unwrap();
        assert_eq!(shape, [3]);
        assert_eq!(got, [0.1f64 as f32, -2.0, 3.5]);
        // -1e300 rounds to -inf in f32: refused.
        let e = read_f32_bytes(&to_bytes(&[3], &[0.0, -1e300, 0.0]).unwrap(), name());
        let e = e.unwrap_err().to_string();
        assert!(
            e.contains("row 0 holds a value beyond float32's range"),
            "{e}"
        );
        let e = read_f32_bytes(&to_bytes(&[1, 2], &[0.0, f64::INFINITY]).unwrap(), name());
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("row 0 holds an infinity")
        );
        let scalar = to_bytes::<f32>(&[], &[1.5]).unwrap();
        assert_eq!(
            read_f32_bytes(&scalar, name()).unwrap(),
            (vec![], vec![1.5])
        );
        let empty = to_bytes::<f32>(&[0, 7], &[]).unwrap();
        assert_eq!(
            read_f32_bytes(&empty, name()).unwrap(),
            (vec![0, 7], vec![])
        );
    }

    #[test]
    fn header_dict_variants() {
        let ok = |dict: &str| read_f32_bytes(&with_header(dict, &[0u8; 8]), name());
        ok("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }").unwrap();
        ok("{\"shape\": (1, 2), \"descr\": \"<f4\", \"fortran_order\": False}").unwrap();
        ok("{'descr': '<f4', 'fortran_order': False, 'shape': [2]}").unwrap();
        ok("{'descr':'<f8','fortran_order':False,'shape':(1,)}").unwrap();
        for (dict, needle) in [
            (
                "{'descr': '<i4', 'fortran_order': False, 'shape': (2,)}",
                "'<i4'",
            ),
            (
                "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}",
                "structured",
            ),
            (
                "{'descr': '<f4', 'fortran_order': True, 'shape': (2,)}",
                "Fortran",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}",
                "negative",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}",
                "too large",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16)}",
                "too large",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False}",
                "missing key 'shape'",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': [2L]}",
                "unsupported number literal",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (0x10,)}",
                "unsupported number literal",
            ),
            (
                // npyz multiplies the shape (and its suffixes) unchecked.
                "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 0)}",
                "too large",
            ),
            (
                "{'descr': '<f4\\', 'fortran_order': False, 'shape': (2,)}",
                "unterminated",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)}",
                "truncated",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} junk",
                "malformed .npy header",
            ),
            ("{'descr': '<f4", "unterminated"),
            ("(((((((((((((((((((((((((((((((((((((", "deeply"),
        ] {
            let e = ok(dict).unwrap_err().to_string();
            assert!(e.contains(needle), "{dict}: {e}");
            assert!(e.starts_with("t.npy: "), "{e}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        // 2 deep (dict, shape) is what a valid header needs.
        let ok = with_header(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }",
            &[0; 4],
        );
        assert!(read_f32_bytes(&ok, name()).is_ok());
        let deep = format!(
            "{{'descr': '<f4', 'fortran_order': False, 'shape': {}1{}}}",
            "(1,".repeat(MAX_DEPTH),
            ")".repeat(MAX_DEPTH - 1)
        );
        let err = read_f32_bytes(&with_header(&deep, &[]), name()).unwrap_err();
        assert!(err.to_string().contains("nested too deeply"), "{err}");
    }

    #[test]
    fn preamble_errors() {
        let e = |b: &[u8]| read_f32_bytes(b, name()).unwrap_err().to_string();
        assert!(e(b"").contains("empty"));
        assert!(e(b"\x93NUMPY\x01").contains("only 7 bytes"));
        assert!(e(b"hello, not numpy at all").contains("bad magic"));
        assert!(e(b"\x93NUMPY\x04\x00\x00\x00\x00\x00").contains("version 4.0"));
        assert!(e(b"\x93NUMPY\x02\x00\xff\xff\xff\xff{}").contains("truncated .npy header"));
        assert!(e(b"\x93NUMPY\x02\x00\x01\x00\x00").contains("truncated"));
        let mut big = b"\x93NUMPY\x02\x00".to_vec();
        big.extend_from_slice(&(70_000u32).to_le_bytes());
        big.resize(big.len() + 70_000, b' ');
        assert!(e(&big).contains("larger than"));
    }

    #[test]
    fn non_finite_values_name_the_row() {
        let mut v = vec![0.5f32; 12];
        v[7] = f32::NAN;
        let e = read_f32_bytes(&to_bytes(&[3, 4], &v).unwrap(), name()).unwrap_err();
        assert!(e.to_string().contains("row 1 holds NaN"), "{e}");
        v[7] = f32::NEG_INFINITY;
        let e = read_f32_bytes(&to_bytes(&[3, 4], &v).unwrap(), name()).unwrap_err();
        assert!(e.to_string().contains("row 1 holds an infinity"), "{e}");
    }

    #[test]
    fn streaming_reads_and_overreads() {
        let v: Vec<f32> = (0..3000).map(|i| i as f32).collect();
        let bytes = to_bytes(&[1000, 3], &v).unwrap();
        let mut r = Reader::new(&bytes[..], bytes.len() as u64, name()).unwrap();
        let mut got = vec![0.0f32; 3000];
        r.read_f32(&mut got[..1234], 3).unwrap();
        r.read_f32(&mut got[1234..], 3).unwrap();
        assert_eq!(got, v);
        assert!(r.read_f32(&mut [0.0], 3).is_err());
    }

    #[test]
    fn writer_counts_values() {
        let mut w = Writer::<Vec<u8>, f32>::new(Vec::new(), &[2]).unwrap();
        w.write(&[1.0]).unwrap();
        assert!(w.write(&[1.0, 2.0]).is_err());
        assert!(w.finish().is_err());
        assert!(header_bytes(Dtype::F64, &[u64::MAX, 2]).is_err());
    }
}
