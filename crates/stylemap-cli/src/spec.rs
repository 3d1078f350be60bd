//! Seed and layer lists: `0-15`, `1,5,9`, `0-3,10`.
//!
//! The syntax is NVlabs' `parse_range` from `gen_images.py` /
//! `style_mixing.py`: comma-separated items, each a non-negative decimal
//! number `a` or an inclusive range `a-b` with `a <= b`. Spaces around items
//! and around the `-` are ignored. Duplicates are kept, in order (seed `3`
//! listed twice gives two identical latents).
//!
//! Ranges are stored, not expanded, so `0-4294967295` costs nothing until it
//! is iterated.

use std::fmt;

/// The largest value a spec may hold: numpy's `RandomState` takes seeds in
/// `0..=2^32-1`, and layer indices are far below that.
pub const MAX_VALUE: u32 = u32::MAX;

/// A parsed list of values: a sequence of inclusive ranges, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSpec {
    ranges: Vec<(u32, u32)>,
}

impl IndexSpec {
    /// Parses a spec. See the module documentation for the syntax.
    pub fn parse(text: &str) -> Result<Self, SpecError> {
        if text.trim().is_empty() {
            return Err(SpecError::Empty);
        }
        let mut ranges = Vec::new();
        for (index, item) in text.split(',').enumerate() {
            let item = item.trim();
            if item.is_empty() {
                return Err(SpecError::EmptyItem(index + 1));
            }
            ranges.push(parse_item(item)?);
        }
        Ok(IndexSpec { ranges })
    }

    /// How many values the spec lists (with duplicates).
    pub fn len(&self) -> u64 {
        self.ranges
            .iter()
            .map(|&(a, b)| u64::from(b) - u64::from(a) + 1)
            .fold(0, u64::saturating_add)
    }

    /// The values, in order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.ranges.iter().flat_map(|&(a, b)| a..=b)
    }

    /// The largest value listed.
    pub fn max(&self) -> u32 {
        self.ranges.iter().map(|&(_, b)| b).max().unwrap_or(0)
    }
}

impl fmt::Display for IndexSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(a, b)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if a == b {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}-{b}")?;
            }
        }
        Ok(())
    }
}

fn parse_item(item: &str) -> Result<(u32, u32), SpecError> {
    if item.starts_with('-') && item[1..].starts_with(|c: char| c.is_ascii_digit()) {
        return Err(SpecError::Negative(item.to_owned()));
    }
    match item.split_once('-') {
        None => {
            let v = parse_number(item, item)?;
            Ok((v, v))
        }
        Some((a, b)) => {
            let (a, b) = (a.trim(), b.trim());
            if a.is_empty() || b.is_empty() || b.starts_with('-') {
                return Err(SpecError::NotANumber(item.to_owned()));
            }
            let (start, end) = (parse_number(a, item)?, parse_number(b, item)?);
            if end < start {
                return Err(SpecError::Descending(item.to_owned()));
            }
            Ok((start, end))
        }
    }
}

fn parse_number(digits: &str, item: &str) -> Result<u32, SpecError> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SpecError::NotANumber(item.to_owned()));
    }
    // Only digits: the parse can fail on overflow alone.
    digits
        .parse::<u32>()
        .map_err(|_| SpecError::TooLarge(item.to_owned()))
}

/// Why a spec did not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecError {
    /// Nothing at all.
    Empty,
    /// An empty item (`1,,2`, trailing comma); 1-based position.
    EmptyItem(usize),
    /// An item that is neither `a` nor `a-b`.
    NotANumber(String),
    /// An item starting with `-`.
    Negative(String),
    /// `a-b` with `b < a`.
    Descending(String),
    /// A value above [`MAX_VALUE`].
    TooLarge(String),
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::Empty => f.write_str("empty list (expected e.g. 0-15, 1,5,9 or 0-3,10)"),
            SpecError::EmptyItem(i) => write!(f, "item {i} is empty"),
            SpecError::NotANumber(s) => {
                write!(f, "'{s}' is not a number or an inclusive range like 0-15")
            }
            SpecError::Negative(s) => write!(f, "'{s}': negative values are not allowed"),
            SpecError::Descending(s) => write!(f, "range '{s}' ends before it starts"),
            SpecError::TooLarge(s) => write!(f, "'{s}': values must be at most {MAX_VALUE}"),
        }
    }
}

impl std::error::Error for SpecError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(s: &str) -> Vec<u32> {
        IndexSpec::parse(s).unwrap().iter().collect()
    }

    #[test]
    fn single_values_and_lists() {
        assert_eq!(values("7"), [7]);
        assert_eq!(values("1,5,9"), [1, 5, 9]);
        assert_eq!(values("0"), [0]);
    }

    #[test]
    fn inclusive_ranges() {
        assert_eq!(values("0-3"), [0, 1, 2, 3]);
        assert_eq!(values("0-3,10"), [0, 1, 2, 3, 10]);
        assert_eq!(values("5-5"), [5]);
        assert_eq!(IndexSpec::parse("0-15").unwrap().len(), 16);
    }

    #[test]
    fn duplicates_and_order_are_kept() {
        assert_eq!(values("3,1,3"), [3, 1, 3]);
        assert_eq!(values("2-3,1-2"), [2, 3, 1, 2]);
    }

    #[test]
    fn spaces_are_tolerated() {
        assert_eq!(values(" 1 , 2 - 4 "), [1, 2, 3, 4]);
    }

    #[test]
    fn full_u32_range_is_lazy() {
        let spec = IndexSpec::parse("0-4294967295").unwrap();
        assert_eq!(spec.len(), 1 << 32);
        assert_eq!(spec.max(), u32::MAX);
        assert_eq!(spec.iter().take(2).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(values("4294967295"), [u32::MAX]);
        let twice = IndexSpec::parse("0-4294967295,0-4294967295").unwrap();
        assert_eq!(twice.len(), 1 << 33);
    }

    #[test]
    fn errors() {
        assert_eq!(IndexSpec::parse(""), Err(SpecError::Empty));
        assert_eq!(IndexSpec::parse("  "), Err(SpecError::Empty));
        assert_eq!(IndexSpec::parse("1,,2"), Err(SpecError::EmptyItem(2)));
        assert_eq!(IndexSpec::parse("1,"), Err(SpecError::EmptyItem(2)));
        assert_eq!(IndexSpec::parse(",1"), Err(SpecError::EmptyItem(1)));
        assert_eq!(
            IndexSpec::parse("5-2"),
            Err(SpecError::Descending("5-2".into()))
        );
        assert_eq!(
            IndexSpec::parse("a"),
            Err(SpecError::NotANumber("a".into()))
        );
        assert_eq!(
            IndexSpec::parse("-1"),
            Err(SpecError::Negative("-1".into()))
        );
        assert_eq!(
            IndexSpec::parse("4294967296"),
            Err(SpecError::TooLarge("4294967296".into()))
        );
        assert_eq!(
            IndexSpec::parse("0-4294967296"),
            Err(SpecError::TooLarge("0-4294967296".into()))
        );
        for bad in ["+5", "1.5", "1-", "-", "1-2-3", "1--2", "0x10", "1e3", "١"] {
            assert!(
                matches!(IndexSpec::parse(bad), Err(SpecError::NotANumber(_))),
                "{bad:?} should not parse"
            );
        }
    }

    #[test]
    fn messages_are_one_line() {
        for bad in ["", "1,,2", "a", "-1", "5-2", "99999999999"] {
            let msg = IndexSpec::parse(bad).unwrap_err().to_string();
            assert!(!msg.contains('\n'), "{msg}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["0-15", "1,5,9", "0-3,10", "3,3"] {
            assert_eq!(IndexSpec::parse(s).unwrap().to_string(), s);
        }
    }
}
