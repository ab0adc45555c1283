//! A response a filter produces itself (CORS preflight, redirect, direct response, errors).

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;

/// A complete response written by the gateway instead of the upstream.
#[derive(Debug, Clone)]
pub struct LocalResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers, in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Bytes,
}

impl LocalResponse {
    /// An empty response with a status.
    pub fn new(status: u16) -> Self {
        LocalResponse { status, headers: Vec::new(), body: Bytes::new() }
    }

    /// A JSON body with the right content type.
    pub fn json(status: u16, body: impl Into<Bytes>) -> Self {
        LocalResponse::new(status).header("content-type", "application/json").body(body)
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Builds the Pingora header (with Content-Length).
    pub fn to_header(&self) -> Result<ResponseHeader> {
        let mut resp = ResponseHeader::build_no_case(self.status, Some(self.headers.len() + 1))?;
        for (name, value) in &self.headers {
            resp.append_header(name.clone(), value.as_str())?;
        }
        resp.insert_header("content-length", self.body.len().to_string())?;
        Ok(resp)
    }

    /// Writes the whole response to the client.
    pub async fn write(&self, session: &mut Session) -> Result<()> {
        let header = self.to_header()?;
        let empty = self.body.is_empty();
        session.write_response_header(Box::new(header), empty).await?;
        if !empty {
            session.write_response_body(Some(self.body.clone()), true).await?;
        }
        Ok(())
    }
}
