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
    /// tollgate patch: a body handed over whole ([`Self::with_body`]), lent, not copied.
    whole: Option<Bytes>,
    capacity: usize,
    truncated: bool,
}

impl FixedBuffer {
    pub fn new(capacity: usize) -> Self {
        FixedBuffer {
            buffer: BytesMut::new(),
            whole: None,
            capacity,
            truncated: false,
        }
    }

    /// tollgate patch: a buffer holding a body that was read whole elsewhere (the gateway
    /// reads it before choosing the upstream); it is replayed without being copied.
    pub fn with_body(body: Bytes) -> Self {
        FixedBuffer {
            buffer: BytesMut::new(),
            capacity: body.len(),
            whole: Some(body),
            truncated: false,
        }
    }

    // TODO: maybe store a Vec of Bytes for zero-copy
    pub fn write_to_buffer(&mut self, data: &Bytes) {
        if self.truncated {
            return;
        }
        if let Some(whole) = self.whole.take() {
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
        self.whole = None;
        self.buffer.clear();
    }
    pub fn is_empty(&self) -> bool {
        self.buffer.len() == 0 && self.whole.as_ref().is_none_or(|w| w.is_empty())
    }
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
    pub fn get_buffer(&self) -> Option<Bytes> {
        // TODO: return None if truncated?
        if let Some(whole) = self.whole.as_ref().filter(|w| !w.is_empty()) {
            return Some(whole.clone());
        }
        if !self.is_empty() {
            Some(self.buffer.clone().freeze())
        } else {
            None
        }
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
