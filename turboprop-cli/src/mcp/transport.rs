//! MCP's stdio transport: one JSON-RPC message per line, read and written here.
//!
//! rmcp's own stdio transport skips a line that is not JSON without a word (as the other
//! official SDKs do); JSON-RPC 2.0 asks for a parse error (-32700), and an agent that sent a
//! broken line is better told than left waiting. So lines are read here: JSON that is not a
//! message gets an invalid-request error (-32600) naming the request's id where it has
//! one, an oversized line ([`MAX_LINE_BYTES`]) is skipped to its end and refused, and the
//! server keeps serving. Everything else is rmcp's.

use std::future::Future;
use std::io;
use std::sync::Arc;

use rmcp::service::{RoleServer, RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

/// The longest message accepted (a search query is capped far below this).
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// JSON-RPC 2.0 error codes.
const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;

/// Newline-delimited JSON-RPC over a reader and a writer (stdin and stdout in `tp mcp`).
pub struct LineTransport<R, W> {
    reader: BufReader<R>,
    writer: Arc<Mutex<W>>,
    /// The line being read. It survives a `receive` future dropped mid-way (rmcp selects
    /// over it), so no byte is lost: the next call goes on where that one stopped.
    line: Vec<u8>,
    /// The line being read is over [`MAX_LINE_BYTES`]: the rest of it is skipped.
    too_long: bool,
}

impl<R, W> LineTransport<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    /// A transport reading messages from `reader` and writing them to `writer`.
    pub fn new(reader: R, writer: W) -> Self {
        LineTransport {
            reader: BufReader::new(reader),
            writer: Arc::new(Mutex::new(writer)),
            line: Vec::new(),
            too_long: false,
        }
    }

    /// Reads until the end of the current line: `Ok(true)` with the line in `self.line`
    /// (and `self.too_long` if it was over the limit), `Ok(false)` at the end of input with
    /// nothing left. Cancel-safe: bytes leave the reader's buffer only into `self.line`, with
    /// no await in between.
    async fn read_line(&mut self) -> io::Result<bool> {
        loop {
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                // End of input: a last line without a newline still counts.
                return Ok(!self.line.is_empty() || self.too_long);
            }
            let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
                Some(i) => (&available[..i], Some(i + 1)),
                None => (available, None),
            };
            if !self.too_long {
                if self.line.len() + chunk.len() > MAX_LINE_BYTES {
                    self.too_long = true;
                    self.line.clear();
                } else {
                    self.line.extend_from_slice(chunk);
                }
            }
            let used = done.unwrap_or(available.len());
            self.reader.consume(used);
            if done.is_some() {
                return Ok(true);
            }
        }
    }

    fn reply_error(
        &self,
        id: Value,
        code: i64,
        message: &str,
    ) -> impl Future<Output = ()> + Send + 'static {
        let writer = Arc::clone(&self.writer);
        let reply = json!({
            "jsonrpc": "2.0",
            "id": id,
            "error": {"code": code, "message": message},
        });
        let mut line = reply.to_string().into_bytes();
        line.push(b'\n');
        async move {
            let mut w = writer.lock().await;
            // A client that is gone is noticed by the next read.
            let _ = w.write_all(&line).await;
            let _ = w.flush().await;
        }
    }
}

/// What to answer a line that is JSON but not a message rmcp knows.
fn refusal(value: &Value) -> Option<(Value, i64, String)> {
    let Some(obj) = value.as_object() else {
        let what = if value.is_array() {
            "batches are not supported (send one message per line)"
        } else {
            "a JSON-RPC message is a JSON object"
        };
        return Some((Value::Null, INVALID_REQUEST, what.to_owned()));
    };
    let id = obj.get("id").cloned();
    match (obj.get("method"), id) {
        // A notification is never answered, even a malformed one.
        (Some(_), None) => None,
        (Some(Value::String(method)), Some(id)) if obj.get("jsonrpc") == Some(&json!("2.0")) => {
            Some((
                id,
                METHOD_NOT_FOUND,
                format!("method {method:?} is not supported, or its params are malformed"),
            ))
        }
        (_, Some(id)) => Some((
            id,
            INVALID_REQUEST,
            "not a JSON-RPC 2.0 request (it needs \"jsonrpc\": \"2.0\", an id and a method)".into(),
        )),
        // A response to nothing we asked, or noise: nobody to answer.
        (None, None) => None,
    }
}

impl<R, W> Transport<RoleServer> for LineTransport<R, W>
where
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), io::Error>> + Send + 'static {
        let writer = Arc::clone(&self.writer);
        let line = serde_json::to_vec(&item);
        async move {
            let mut line = line.map_err(io::Error::other)?;
            line.push(b'\n');
            let mut w = writer.lock().await;
            w.write_all(&line).await?;
            w.flush().await
        }
    }

    // The trait's signature asks for a `Send` future: spelled out, not `async fn`.
    #[allow(clippy::manual_async_fn)]
    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleServer>>> + Send {
        async move {
            loop {
                match self.read_line().await {
                    Ok(true) => {}
                    // The client hung up (or stdin broke): the session ends.
                    Ok(false) | Err(_) => return None,
                }
                // From here to the end of the iteration nothing awaits: the line is handled
                // whole even if rmcp drops this future at its next await. Error replies are
                // written by tasks of their own for the same reason.
                let line = std::mem::take(&mut self.line);
                if std::mem::take(&mut self.too_long) {
                    let message = format!("message longer than {MAX_LINE_BYTES} bytes: skipped");
                    tokio::spawn(self.reply_error(Value::Null, INVALID_REQUEST, &message));
                    continue;
                }
                let text = line.trim_ascii();
                if text.is_empty() {
                    continue;
                }
                let value: Value = match serde_json::from_slice(text) {
                    Ok(v) => v,
                    Err(e) => {
                        let message = format!("parse error: the line is not JSON ({e})");
                        tokio::spawn(self.reply_error(Value::Null, PARSE_ERROR, &message));
                        continue;
                    }
                };
                match serde_json::from_value::<RxJsonRpcMessage<RoleServer>>(value.clone()) {
                    Ok(message) => return Some(message),
                    Err(_) => {
                        if let Some((id, code, message)) = refusal(&value) {
                            tokio::spawn(self.reply_error(id, code, &message));
                        }
                    }
                }
            }
        }
    }

    fn close(&mut self) -> impl Future<Output = Result<(), io::Error>> + Send {
        let writer = Arc::clone(&self.writer);
        async move { writer.lock().await.flush().await }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, DuplexStream};

    /// A transport over an in-memory pipe, the client's ends, and what it writes.
    fn pipe() -> (
        LineTransport<tokio::io::ReadHalf<DuplexStream>, tokio::io::WriteHalf<DuplexStream>>,
        DuplexStream,
    ) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (r, w) = tokio::io::split(server);
        (LineTransport::new(r, w), client)
    }

    async fn next_reply(client: &mut DuplexStream) -> Value {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            client.read_exact(&mut byte).await.expect("a reply");
            if byte[0] == b'\n' {
                break;
            }
            line.push(byte[0]);
        }
        serde_json::from_slice(&line).expect("replies are JSON")
    }

    const PING: &[u8] = b"{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\"}\n";

    #[tokio::test]
    async fn a_line_that_is_not_json_gets_a_parse_error_and_serving_goes_on() {
        let (mut t, mut client) = pipe();
        client.write_all(b"not json at all\n").await.expect("write");
        client.write_all(PING).await.expect("write");
        let got = t.receive().await.expect("the ping after the bad line");
        assert_eq!(serde_json::to_value(&got).expect("json")["method"], "ping");
        let reply = next_reply(&mut client).await;
        assert_eq!(reply["error"]["code"], -32700, "{reply}");
        assert_eq!(reply["id"], Value::Null);
    }

    #[tokio::test]
    async fn json_that_is_no_message_is_an_invalid_request_naming_its_id() {
        let (mut t, mut client) = pipe();
        client
            .write_all(b"[1,2]\n{\"id\":3,\"method\":5}\n{\"jsonrpc\":\"2.0\",\"method\":7}\n")
            .await
            .expect("write");
        client.write_all(PING).await.expect("write");
        let got = t.receive().await.expect("the ping");
        assert_eq!(serde_json::to_value(&got).expect("json")["id"], 7);
        let batch = next_reply(&mut client).await;
        assert_eq!(batch["error"]["code"], -32600, "{batch}");
        let bad = next_reply(&mut client).await;
        assert_eq!(bad["error"]["code"], -32600, "{bad}");
        assert_eq!(bad["id"], 3, "the reply names the request's id");
        // The malformed notification (no id) is not answered: the ping is next.
        t.send(rmcp::model::ServerJsonRpcMessage::response(
            rmcp::model::ServerResult::empty(()),
            rmcp::model::NumberOrString::Number(7),
        ))
        .await
        .expect("send");
        let pong = next_reply(&mut client).await;
        assert_eq!(pong["id"], 7, "{pong}");
    }

    #[tokio::test]
    async fn an_oversized_line_is_skipped_whole_and_refused() {
        let (mut t, mut client) = pipe();
        let writer = tokio::spawn(async move {
            let big = vec![b'x'; MAX_LINE_BYTES + 100];
            client.write_all(&big).await.expect("write");
            client.write_all(b"\n").await.expect("write");
            client.write_all(PING).await.expect("write");
            client
        });
        let got = t.receive().await.expect("the ping after the long line");
        assert_eq!(serde_json::to_value(&got).expect("json")["id"], 7);
        let mut client = writer.await.expect("writer");
        let reply = next_reply(&mut client).await;
        assert_eq!(reply["error"]["code"], -32600, "{reply}");
    }

    /// rmcp selects over `receive`, dropping it when something else is ready first: a line
    /// read half before the drop must not be lost (it was: a reply went missing under load).
    #[tokio::test]
    async fn a_receive_dropped_mid_line_loses_nothing() {
        let (mut t, mut client) = pipe();
        let (head, tail) = PING.split_at(15);
        client.write_all(b"[1,2]\n").await.expect("write");
        client.write_all(head).await.expect("write");
        let cut = tokio::time::timeout(Duration::from_millis(50), t.receive()).await;
        assert!(cut.is_err(), "half a line is not a message");
        client.write_all(tail).await.expect("write");
        let got = tokio::time::timeout(Duration::from_secs(10), t.receive())
            .await
            .expect("the rest of the line completes a message")
            .expect("the whole ping");
        assert_eq!(serde_json::to_value(&got).expect("json")["id"], 7);
        let batch = next_reply(&mut client).await;
        assert_eq!(
            batch["error"]["code"], -32600,
            "the reply to the batch still comes"
        );
    }

    #[tokio::test]
    async fn the_client_hanging_up_ends_the_session() {
        let (mut t, client) = pipe();
        drop(client);
        assert!(t.receive().await.is_none());
    }
}
