// Copyright 2026 Cloudflare, Inc.
//
// Licensed under the Apache License, Version 2.0 (the "License");
// you may not use this file except in compliance with the License.
// You may obtain a copy of the License at
//
// http://www.apache.org/licenses/LICENSE-2.0
//
// Unless required by applicable law or agreed to in writing, software
// distributed under the License is distributed on an "AS IS" BASIS,
// WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
// See the License for the specific language governing permissions and
// limitations under the License.

use bytes::{Bytes, BytesMut};

/// A buffer with size limit. When the total amount of data written to the buffer is below the limit
/// all the data will be held in the buffer. Otherwise, the buffer will report to be truncated.
pub struct FixedBuffer {
    buffer: BytesMut,
    /// tollgate patch: a body handed over whole ([`Self::with_body`]) or in pieces
    /// ([`Self::with_parts`]), lent, not copied.
    whole: Vec<Bytes>,
    capacity: usize,
    truncated: bool,
}

impl FixedBuffer {
    pub fn new(capacity: usize) -> Self {
        FixedBuffer {
            buffer: BytesMut::new(),
            whole: Vec::new(),
            capacity,
            truncated: false,
        }
    }

    /// tollgate patch: a buffer holding a body that was read whole elsewhere (the gateway
    /// reads it before choosing the upstream); it is replayed without being copied.
    pub fn with_body(body: Bytes) -> Self {
        Self::with_parts(vec![body])
    }

    /// tollgate patch: a body made of pieces, replayed piece by piece ([`Self::get_parts`]):
    /// a large body with a few values replaced is sent as slices of the body that was read,
    /// around the new values, instead of being copied into one buffer.
    pub fn with_parts(parts: Vec<Bytes>) -> Self {
        FixedBuffer {
            buffer: BytesMut::new(),
            capacity: parts.iter().map(Bytes::len).sum(),
            whole: parts,
            truncated: false,
        }
    }

    // TODO: maybe store a Vec of Bytes for zero-copy
    pub fn write_to_buffer(&mut self, data: &Bytes) {
        if self.truncated {
            return;
        }
        for whole in std::mem::take(&mut self.whole) {
            // More body after a whole one: keep both (copied, as buffered bodies are).
            self.buffer.extend_from_slice(&whole);
        }

        if self.buffer.len() + data.len() <= self.capacity {
            self.buffer.extend_from_slice(data);
        } else {
            // Buffered data is no longer usable for a retry, so release its allocation.
            self.buffer = BytesMut::new();
            self.truncated = true;
        }
    }

    pub fn clear(&mut self) {
        self.truncated = false;
        self.whole.clear();
        self.buffer.clear();
    }
    pub fn is_empty(&self) -> bool {
        self.buffer.len() == 0 && self.whole.iter().all(|w| w.is_empty())
    }
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
    pub fn get_buffer(&self) -> Option<Bytes> {
        // TODO: return None if truncated?
        match self.whole.as_slice() {
            [] => {}
            [whole] if whole.is_empty() => {}
            [whole] => return Some(whole.clone()),
            // Pieces asked for as one buffer (an HTTP/2 upstream): joined, a copy.
            parts => return Some(Bytes::from(parts.concat())),
        }
        if !self.is_empty() {
            Some(self.buffer.clone().freeze())
        } else {
            None
        }
    }

    /// tollgate patch: the lent body's pieces, to replay one by one (`None` when the body was
    /// buffered here or is empty).
    pub fn get_parts(&self) -> Option<Vec<Bytes>> {
        (!self.whole.is_empty() && self.buffer.is_empty() && !self.is_empty()).then(|| self.whole.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_body_is_lent_and_more_body_keeps_it() {
        let body = Bytes::from(vec![7u8; 1000]);
        let mut buffer = FixedBuffer::with_body(body.clone());
        let replay = buffer.get_buffer().unwrap();
        assert_eq!(replay.as_ptr(), body.as_ptr());
        buffer.write_to_buffer(&Bytes::from_static(b"x"));
        assert!(buffer.is_truncated());
        let mut buffer = FixedBuffer::with_body(Bytes::from_static(b"ab"));
        buffer.capacity = 3;
        buffer.write_to_buffer(&Bytes::from_static(b"c"));
        assert_eq!(&buffer.get_buffer().unwrap()[..], b"abc");
    }

    #[test]
    fn parts_are_lent_one_by_one_and_joined_when_asked_for_whole() {
        let (a, b) = (Bytes::from(vec![1u8; 100]), Bytes::from_static(b"tail"));
        let buffer = FixedBuffer::with_parts(vec![a.clone(), b.clone()]);
        let parts = buffer.get_parts().unwrap();
        assert_eq!((parts[0].as_ptr(), parts[1].as_ptr()), (a.as_ptr(), b.as_ptr()));
        assert_eq!(buffer.get_buffer().unwrap(), [&a[..], &b[..]].concat());
        assert!(FixedBuffer::new(10).get_parts().is_none());
        assert!(FixedBuffer::with_parts(vec![Bytes::new()]).get_parts().is_none());
    }

    #[test]
    fn releases_storage_when_truncated() {
        let mut buffer = FixedBuffer::new(4);
        buffer.write_to_buffer(&Bytes::from_static(b"1234"));
        assert!(buffer.buffer.capacity() >= 4);

        buffer.write_to_buffer(&Bytes::from_static(b"5"));

        assert!(buffer.is_truncated());
        assert_eq!(buffer.buffer.capacity(), 0);
        assert!(buffer.get_buffer().is_none());
    }
}
