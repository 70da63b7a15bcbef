//! Request and response bodies as streams between the async server and the blocking code
//! that reads and writes files: an upload is handed over a few frames at a time (a bounded
//! channel), a download is written a chunk at a time, so neither is ever whole in memory.

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Frames of a request body in flight between the server and the reader.
const FRAMES_IN_FLIGHT: usize = 4;
/// The size of the chunks a download is written in, and how many may wait to be sent.
const DOWNLOAD_CHUNK: usize = 64 * 1024;
const CHUNKS_IN_FLIGHT: usize = 4;

/// How the pump of a request body ended.
#[derive(Debug)]
pub enum Pumped {
    /// The whole body went to the reader.
    Complete,
    /// The body was over the limit: the reader saw an error.
    TooLarge,
    /// The reader stopped reading (it failed, or needed no more).
    Stopped,
    /// The connection failed.
    Broken(String),
}

/// The request body as a blocking reader; it fails once the body passes its limit.
pub struct BodyReader {
    frames: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    current: Bytes,
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.frames.blocking_recv() {
                Some(frame) => self.current = frame?,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Starts handing `body` to a reader, at most `limit` bytes; read it off the async threads.
pub fn pump(mut body: Body, limit: u64) -> (BodyReader, tokio::task::JoinHandle<Pumped>) {
    let (tx, rx) = tokio::sync::mpsc::channel(FRAMES_IN_FLIGHT);
    let task = tokio::spawn(async move {
        let mut received: u64 = 0;
        while let Some(frame) = body.frame().await {
            let frame = match frame {
                Ok(f) => f,
                Err(e) => {
                    let why = e.to_string();
                    let _ = tx.send(Err(std::io::Error::other(why.clone()))).await;
                    return Pumped::Broken(why);
                }
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            received += data.len() as u64;
            if received > limit {
                let _ = tx
                    .send(Err(std::io::Error::other(format!(
                        "the body is over the {limit} byte limit"
                    ))))
                    .await;
                return Pumped::TooLarge;
            }
            if tx.send(Ok(data)).await.is_err() {
                return Pumped::Stopped;
            }
        }
        Pumped::Complete
    });
    (
        BodyReader {
            frames: rx,
            current: Bytes::new(),
        },
        task,
    )
}

/// Chunks written by the blocking side, sent as the response body.
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(DOWNLOAD_CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(chunk)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client left"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(DOWNLOAD_CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= DOWNLOAD_CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

struct ChunkBody(tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>);

impl http_body::Body for ChunkBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| c.map(http_body::Frame::data)))
    }
}

/// A tar archive of `root`, written while it is sent. A failure midway ends the response
/// early (the client sees a broken transfer, never a short archive that looks whole).
pub fn tar_response(root: PathBuf) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(DOWNLOAD_CHUNK),
        };
        let written = crate::service::archive::pack_to(&root, &mut out).and_then(|w| w.flush());
        if let Err(e) = written {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                tracing::error!(dir = %root.display(), error = %e, "the archive download failed");
                let _ = tx.blocking_send(Err(e));
            }
        }
    });
    (
        [(header::CONTENT_TYPE, "application/x-tar")],
        Body::new(ChunkBody(rx)),
    )
        .into_response()
}
