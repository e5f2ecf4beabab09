//! Reading a frame's fields, each checked against the frame's end.

use super::ProtocolError;
use crate::metric::{MAX_METRICS_PER_MODULE, MetricKind, MetricSample};

/// A cursor over a frame's fields.
pub(super) struct Fields<'a>(pub(super) &'a [u8]);

impl<'a> Fields<'a> {
    #[inline]
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        if self.0.len() < n {
            return Err(ProtocolError::Malformed("field past the end of the frame"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    #[inline]
    pub(super) fn byte(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.take(1)?[0])
    }

    #[inline]
    pub(super) fn u32(&mut self) -> Result<u32, ProtocolError> {
        let mut n = [0; 4];
        n.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(n))
    }

    #[inline]
    pub(super) fn u64(&mut self) -> Result<u64, ProtocolError> {
        let mut n = [0; 8];
        n.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(n))
    }

    /// A length-prefixed byte field, borrowed from the frame.
    #[inline]
    pub(super) fn slice(&mut self) -> Result<&'a [u8], ProtocolError> {
        let mut n = [0; 4];
        n.copy_from_slice(self.take(4)?);
        let len = u32::from_le_bytes(n) as usize;
        self.take(len)
    }

    /// A length-prefixed UTF-8 field, borrowed from the frame.
    #[inline]
    pub(super) fn str(&mut self) -> Result<&'a str, ProtocolError> {
        std::str::from_utf8(self.slice()?).map_err(|_| ProtocolError::Malformed("invalid UTF-8"))
    }

    #[inline]
    pub(super) fn bytes(&mut self) -> Result<Vec<u8>, ProtocolError> {
        self.slice().map(<[u8]>::to_vec)
    }

    #[inline]
    pub(super) fn text(&mut self) -> Result<String, ProtocolError> {
        self.str().map(str::to_owned)
    }

    /// A `Metrics` frame's samples: at most one per metric a module may have.
    pub(super) fn metric_samples(&mut self) -> Result<Vec<MetricSample>, ProtocolError> {
        let count = self.u32()? as usize;
        if count > MAX_METRICS_PER_MODULE {
            return Err(ProtocolError::Malformed(
                "more metrics than a module may have",
            ));
        }
        (0..count)
            .map(|_| {
                let kind = MetricKind::from_code(self.u32()?)
                    .ok_or(ProtocolError::Malformed("metric kind"))?;
                Ok(MetricSample {
                    kind,
                    name: self.text()?,
                    help: self.text()?,
                    value: f64::from_bits(self.u64()?),
                })
            })
            .collect()
    }
}
