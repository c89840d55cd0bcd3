//! Just enough DER to read GB/T 38540's structures: definite lengths,
//! low tag numbers, every length checked against what is left. Each value
//! keeps its raw encoding, because what a signer signed is the bytes
//! (TBS_Sign, SES_SealInfo) and not our reading of them.

/// A DER value: its tag, its contents, and its whole encoding.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    pub tag: u8,
    pub body: &'a [u8],
    pub raw: &'a [u8],
}

pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const OID: u8 = 0x06;
pub const UTF8_STRING: u8 = 0x0c;
pub const PRINTABLE_STRING: u8 = 0x13;
pub const IA5_STRING: u8 = 0x16;
pub const UTC_TIME: u8 = 0x17;
pub const GENERALIZED_TIME: u8 = 0x18;
pub const SEQUENCE: u8 = 0x30;

/// Why some bytes are not the structure expected, in words for a log and
/// for the clerk's "无法验证" line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DerError(pub String);

fn bad(what: impl Into<String>) -> DerError {
    DerError(what.into())
}

/// Values one after another (a SEQUENCE's contents, or a whole input).
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next value's tag, without taking it.
    pub fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    /// The next value, whatever its tag.
    pub fn any(&mut self) -> Result<Tlv<'a>, DerError> {
        let input = self.rest;
        let (&tag, after) = input.split_first().ok_or_else(|| bad("数据提前结束"))?;
        if tag & 0x1f == 0x1f {
            return Err(bad("不支持的多字节标记"));
        }
        let (&first, mut after) = after.split_first().ok_or_else(|| bad("数据提前结束"))?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return Err(bad("长度编码不是 DER"));
            }
            if after.len() < n {
                return Err(bad("数据提前结束"));
            }
            let (bytes, rest) = after.split_at(n);
            after = rest;
            bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        if after.len() < len {
            return Err(bad("长度超出数据"));
        }
        let header = input.len() - after.len();
        let (body, rest) = after.split_at(len);
        self.rest = rest;
        Ok(Tlv {
            tag,
            body,
            raw: &input[..header + len],
        })
    }

    /// The next value, which must carry `tag` (`what` names it in errors).
    pub fn take(&mut self, tag: u8, what: &str) -> Result<Tlv<'a>, DerError> {
        let tlv = self.any().map_err(|e| bad(format!("{what}：{e}")))?;
        if tlv.tag != tag {
            return Err(bad(format!(
                "{what}：类型不符（标记 0x{:02x}，应为 0x{tag:02x}）",
                tlv.tag
            )));
        }
        Ok(tlv)
    }

    /// The next value if it carries `tag`.
    pub fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, DerError> {
        if self.peek_tag() == Some(tag) {
            self.any().map(Some)
        } else {
            Ok(None)
        }
    }

    /// A SEQUENCE, opened for reading its contents.
    pub fn sequence(&mut self, what: &str) -> Result<(Tlv<'a>, Reader<'a>), DerError> {
        let tlv = self.take(SEQUENCE, what)?;
        Ok((tlv, Reader::new(tlv.body)))
    }
}

impl<'a> Tlv<'a> {
    /// A small non-negative INTEGER.
    pub fn small_int(&self, what: &str) -> Result<u64, DerError> {
        if self.tag != INTEGER || self.body.is_empty() || self.body.len() > 8 {
            return Err(bad(format!("{what}：不是整数")));
        }
        if self.body[0] & 0x80 != 0 {
            return Err(bad(format!("{what}：是负数")));
        }
        Ok(self
            .body
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// A BIT STRING's bits, which must fill whole bytes.
    pub fn bits(&self, what: &str) -> Result<&'a [u8], DerError> {
        match self.body.split_first() {
            Some((0, bits)) if self.tag == BIT_STRING => Ok(bits),
            _ => Err(bad(format!("{what}：不是完整字节的位串"))),
        }
    }

    /// A string type's text (IA5, Printable, UTF8).
    pub fn text(&self, what: &str) -> Result<String, DerError> {
        match self.tag {
            IA5_STRING | PRINTABLE_STRING | UTF8_STRING => std::str::from_utf8(self.body)
                .map(str::to_owned)
                .map_err(|_| bad(format!("{what}：不是有效文字"))),
            _ => Err(bad(format!("{what}：不是文字"))),
        }
    }

    /// An OBJECT IDENTIFIER in dotted form.
    pub fn oid(&self, what: &str) -> Result<String, DerError> {
        if self.tag != OID || self.body.is_empty() {
            return Err(bad(format!("{what}：不是对象标识符")));
        }
        let mut arcs: Vec<u64> = Vec::new();
        let mut value: u64 = 0;
        for (i, b) in self.body.iter().enumerate() {
            if value > (u64::MAX >> 7) {
                return Err(bad(format!("{what}：对象标识符过长")));
            }
            value = (value << 7) | u64::from(b & 0x7f);
            if b & 0x80 == 0 {
                if arcs.is_empty() {
                    let first = (value / 40).min(2);
                    arcs.push(first);
                    arcs.push(value - first * 40);
                } else {
                    arcs.push(value);
                }
                value = 0;
            } else if i + 1 == self.body.len() {
                return Err(bad(format!("{what}：对象标识符不完整")));
            }
        }
        Ok(arcs
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("."))
    }

    /// A GeneralizedTime or UTCTime, to the second (fractions dropped),
    /// in UTC (`Z`) or with an offset.
    pub fn time(&self, what: &str) -> Result<time::OffsetDateTime, DerError> {
        let text =
            std::str::from_utf8(self.body).map_err(|_| bad(format!("{what}：时间格式不对")))?;
        let (year, rest) = match self.tag {
            GENERALIZED_TIME if text.len() >= 14 => (
                text[..4].parse::<i32>().ok(),
                text.get(4..).unwrap_or_default(),
            ),
            UTC_TIME if text.len() >= 12 => {
                let yy = text[..2].parse::<i32>().ok();
                // RFC 5280 4.1.2.5.1: 50–99 are 19xx.
                (
                    yy.map(|y| if y >= 50 { 1900 + y } else { 2000 + y }),
                    text.get(2..).unwrap_or_default(),
                )
            }
            _ => (None, ""),
        };
        let fail = || bad(format!("{what}：时间格式不对（{text}）"));
        let year = year.ok_or_else(fail)?;
        let field = |i: usize| -> Result<u8, DerError> {
            rest.get(i..i + 2)
                .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse().ok())
                .ok_or_else(fail)
        };
        let (month, day, hour, minute, second) =
            (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
        let mut zone = &rest[10..];
        if let Some(frac) = zone.strip_prefix('.') {
            zone = frac.trim_start_matches(|c: char| c.is_ascii_digit());
        }
        let offset = match zone {
            "Z" => time::UtcOffset::UTC,
            z if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
                let h: i8 = z[1..3].parse().map_err(|_| fail())?;
                let m: i8 = z[3..5].parse().map_err(|_| fail())?;
                let sign = if z.starts_with('-') { -1 } else { 1 };
                time::UtcOffset::from_hms(sign * h, sign * m, 0).map_err(|_| fail())?
            }
            // No zone: GB/T 38540 implementations write local (Beijing) time.
            "" => time::UtcOffset::from_hms(8, 0, 0).map_err(|_| fail())?,
            _ => return Err(fail()),
        };
        let month = time::Month::try_from(month).map_err(|_| fail())?;
        let date = time::Date::from_calendar_date(year, month, day).map_err(|_| fail())?;
        let clock = time::Time::from_hms(hour, minute, second).map_err(|_| fail())?;
        Ok(time::PrimitiveDateTime::new(date, clock).assume_offset(offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_nested_values_and_keeps_their_encoding() {
        // SEQUENCE { INTEGER 4, IA5String "ES" }
        let bytes = [0x30, 0x07, 0x02, 0x01, 0x04, 0x16, 0x02, b'E', b'S'];
        let mut outer = Reader::new(&bytes);
        let (seq, mut inner) = outer.sequence("印章").unwrap();
        assert_eq!(seq.raw, &bytes[..]);
        assert_eq!(inner.any().unwrap().small_int("版本").unwrap(), 4);
        assert_eq!(
            inner
                .take(IA5_STRING, "标识")
                .unwrap()
                .text("标识")
                .unwrap(),
            "ES"
        );
        assert!(inner.is_empty() && outer.is_empty());
    }

    #[test]
    fn refuses_lengths_past_the_end_and_indefinite_forms() {
        assert!(Reader::new(&[0x30, 0x05, 0x02, 0x01]).any().is_err());
        assert!(Reader::new(&[0x30, 0x80, 0x00, 0x00]).any().is_err());
        assert!(Reader::new(&[0x30, 0x85, 1, 0, 0, 0, 0]).any().is_err());
        assert!(Reader::new(&[0x1f, 0x81, 0x01, 0x00]).any().is_err());
        assert!(Reader::new(&[]).any().is_err());
    }

    #[test]
    fn reads_oids_and_times() {
        // 1.2.156.10197.1.501 (SM2 with SM3)
        let oid = [0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x83, 0x75];
        let tlv = Reader::new(&oid).any().unwrap();
        assert_eq!(tlv.oid("算法").unwrap(), "1.2.156.10197.1.501");
        let gt = [&[0x18, 15][..], b"20261201093000Z"].concat();
        let t = Reader::new(&gt).any().unwrap().time("时间").unwrap();
        assert_eq!(t.unix_timestamp(), 1_796_117_400);
        let utc = [&[0x17, 13][..], b"261201093000Z"].concat();
        assert_eq!(Reader::new(&utc).any().unwrap().time("时间").unwrap(), t);
        let bad = [&[0x18, 15][..], b"20261301093000Z"].concat();
        assert!(Reader::new(&bad).any().unwrap().time("时间").is_err());
    }
}
