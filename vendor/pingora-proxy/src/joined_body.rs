// tollgate patch (see vendor/README.md): small body pieces read back to back are joined into
// one task before the response filters (used by proxy_fused_h1.rs). Depends only on `bytes`
// and `HttpTask`, so crates/core/tests/vendored_pingora_units.rs compiles its tests too.

use bytes::{Bytes, BytesMut};

use super::HttpTask;

/// Body pieces up to this size, read back to back, are joined into one before the filters.
pub(crate) const JOIN_MAX: usize = 16 * 1024;

/// Consecutive small body pieces already read, joined into one task. Each task costs the
/// response filters, the proxy's own body filters and the downstream writer a few thousand
/// instructions whatever its size: an LLM answer that arrives whole is one task per event.
/// The bytes and their order are unchanged; only where one piece ends is (as it is for any
/// read). One piece alone is not copied.
#[derive(Default)]
pub(crate) struct JoinedBody {
    first: Option<Bytes>,
    rest: Option<BytesMut>,
}

impl JoinedBody {
    /// Takes in `task`. `None`: it was joined (nothing to filter yet). Otherwise the joined
    /// piece that must go first, if any, and `task` itself unless it was joined.
    pub(crate) fn take(&mut self, task: HttpTask) -> Option<(Option<HttpTask>, Option<HttpTask>)> {
        match task {
            HttpTask::Body(Some(data), false) if data.len() <= JOIN_MAX => {
                if self.len() + data.len() > JOIN_MAX {
                    let pending = self.finish();
                    self.first = Some(data);
                    return Some((pending, None));
                }
                match (&mut self.first, &mut self.rest) {
                    (None, _) => self.first = Some(data),
                    (Some(first), rest @ None) => {
                        let mut joined = BytesMut::with_capacity(JOIN_MAX.min(4 * (first.len() + data.len())));
                        joined.extend_from_slice(first);
                        joined.extend_from_slice(&data);
                        *rest = Some(joined);
                    }
                    (Some(_), Some(joined)) => joined.extend_from_slice(&data),
                }
                None
            }
            task => Some((self.finish(), Some(task))),
        }
    }

    fn len(&self) -> usize {
        match (&self.first, &self.rest) {
            (_, Some(joined)) => joined.len(),
            (Some(first), None) => first.len(),
            (None, None) => 0,
        }
    }

    /// The joined piece, if any, as one body task.
    pub(crate) fn finish(&mut self) -> Option<HttpTask> {
        let first = self.first.take()?;
        let data = match self.rest.take() {
            Some(joined) => joined.freeze(),
            None => first,
        };
        Some(HttpTask::Body(Some(data), false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `tasks` as the fused loop does; returns what goes through the filters.
    fn run(tasks: Vec<HttpTask>) -> Vec<HttpTask> {
        let mut joined = JoinedBody::default();
        let mut out = Vec::new();
        for task in tasks {
            if let Some((pending, task)) = joined.take(task) {
                out.extend(pending);
                out.extend(task);
            }
        }
        out.extend(joined.finish());
        out
    }

    fn body(text: &str) -> HttpTask {
        HttpTask::Body(Some(Bytes::copy_from_slice(text.as_bytes())), false)
    }

    fn shape(tasks: &[HttpTask]) -> Vec<String> {
        tasks
            .iter()
            .map(|t| match t {
                HttpTask::Body(Some(b), end) => format!("body({}, {end})", String::from_utf8_lossy(b)),
                HttpTask::Body(None, end) => format!("body(none, {end})"),
                HttpTask::Done => "done".into(),
                _ => "other".into(),
            })
            .collect()
    }

    #[test]
    fn small_pieces_are_joined_in_order_and_the_end_follows_them() {
        let out = run(vec![body("data: 1\n\n"), body("data: 2\n\n"), body("data: 3\n\n"), HttpTask::Body(Some(Bytes::from_static(b"x")), true), HttpTask::Done]);
        assert_eq!(shape(&out), ["body(data: 1\n\ndata: 2\n\ndata: 3\n\n, false)", "body(x, true)", "done"]);
    }

    #[test]
    fn one_piece_alone_is_not_copied() {
        let data = Bytes::from_static(b"data: only\n\n");
        let out = run(vec![HttpTask::Body(Some(data.clone()), false)]);
        match &out[..] {
            [HttpTask::Body(Some(b), false)] => assert_eq!(b.as_ptr(), data.as_ptr()),
            other => panic!("{:?}", shape(other)),
        }
    }

    #[test]
    fn joined_pieces_stay_under_the_bound_and_large_ones_pass_alone() {
        let piece = "a".repeat(JOIN_MAX / 3 + 1);
        let large = "b".repeat(JOIN_MAX + 1);
        let out = run(vec![body(&piece), body(&piece), body(&piece), body(&large), body(&piece), HttpTask::Body(None, false)]);
        let lens: Vec<usize> = out.iter().map(|t| match t { HttpTask::Body(Some(b), _) => b.len(), _ => 0 }).collect();
        assert_eq!(lens, [2 * piece.len(), piece.len(), large.len(), piece.len(), 0]);
        assert!(lens.iter().all(|l| *l <= JOIN_MAX || *l == large.len()));
        let all: String = out.iter().map(|t| match t { HttpTask::Body(Some(b), _) => String::from_utf8_lossy(b).into_owned(), _ => String::new() }).collect();
        assert_eq!(all, format!("{piece}{piece}{piece}{large}{piece}"));
    }
}
