//! The connector's log for one invocation: lines from the `log` import plus whatever it
//! writes to stdout and stderr. Capped in bytes; past the cap lines are dropped and counted,
//! never an error, so a log flood cannot fail or slow the host. Secret values are redacted
//! when the log leaves the sandbox.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use serde::Serialize;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use crate::secrets::Redactor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Log,
    Stdout,
    Stderr,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub level: LogLevel,
    pub stream: LogStream,
    pub message: String,
}

/// The log as it leaves the sandbox: redacted, with a count of what the cap dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GuestLogRecord {
    pub lines: Vec<LogLine>,
    pub dropped_lines: u64,
}

#[derive(Debug, Default)]
struct Buffer {
    lines: Vec<LogLine>,
    bytes: usize,
    dropped_lines: u64,
    partial_stdout: Vec<u8>,
    partial_stderr: Vec<u8>,
}

/// Shared by the `log` import and the stdout/stderr streams of one store.
#[derive(Debug, Clone)]
pub struct GuestLog {
    buffer: Arc<Mutex<Buffer>>,
    cap: usize,
}

/// Lines longer than this are cut, so one line cannot take the whole budget unnoticed.
const MAX_LINE_BYTES: usize = 8 << 10;

impl GuestLog {
    pub fn new(cap: usize) -> Self {
        GuestLog {
            buffer: Arc::default(),
            cap,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self, level: LogLevel, stream: LogStream, message: &str) {
        let mut buffer = self.lock();
        push(&mut buffer, self.cap, level, stream, message);
    }

    fn write_bytes(&self, stream: LogStream, bytes: &[u8]) {
        let mut buffer = self.lock();
        let level = if stream == LogStream::Stderr {
            LogLevel::Warn
        } else {
            LogLevel::Info
        };
        let mut pending = std::mem::take(match stream {
            LogStream::Stderr => &mut buffer.partial_stderr,
            _ => &mut buffer.partial_stdout,
        });
        pending.extend_from_slice(bytes);
        while let Some(newline) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=newline).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            push(&mut buffer, self.cap, level, stream, &text);
        }
        if pending.len() > MAX_LINE_BYTES {
            let text = String::from_utf8_lossy(&pending).into_owned();
            pending.clear();
            push(&mut buffer, self.cap, level, stream, &text);
        }
        *match stream {
            LogStream::Stderr => &mut buffer.partial_stderr,
            _ => &mut buffer.partial_stdout,
        } = pending;
    }

    /// Takes the log out, redacted. Unterminated stdout/stderr text becomes a last line.
    pub fn finish(&self, redactor: &Redactor) -> GuestLogRecord {
        let mut buffer = self.lock();
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            let rest = std::mem::take(match stream {
                LogStream::Stderr => &mut buffer.partial_stderr,
                _ => &mut buffer.partial_stdout,
            });
            if !rest.is_empty() {
                let level = if stream == LogStream::Stderr {
                    LogLevel::Warn
                } else {
                    LogLevel::Info
                };
                push(
                    &mut buffer,
                    self.cap,
                    level,
                    stream,
                    &String::from_utf8_lossy(&rest),
                );
            }
        }
        let lines = std::mem::take(&mut buffer.lines)
            .into_iter()
            .map(|mut line| {
                line.message = redactor.redact(&line.message);
                line
            })
            .collect();
        GuestLogRecord {
            lines,
            dropped_lines: std::mem::take(&mut buffer.dropped_lines),
        }
    }

    /// A stdout or stderr stream for the WASI context that writes into this log.
    pub fn stream(&self, stream: LogStream) -> CapturedOutput {
        CapturedOutput {
            log: self.clone(),
            stream,
        }
    }
}

fn push(buffer: &mut Buffer, cap: usize, level: LogLevel, stream: LogStream, message: &str) {
    let mut message = message.to_owned();
    if message.len() > MAX_LINE_BYTES {
        let mut end = MAX_LINE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push_str(" [line cut]");
    }
    if buffer.bytes + message.len() > cap {
        buffer.dropped_lines += 1;
        return;
    }
    buffer.bytes += message.len();
    buffer.lines.push(LogLine {
        level,
        stream,
        message,
    });
}

/// stdout or stderr of a sandbox, captured into the [`GuestLog`].
#[derive(Debug, Clone)]
pub struct CapturedOutput {
    log: GuestLog,
    stream: LogStream,
}

impl IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CapturedOutput {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        // Always accept everything: past the cap the log drops lines, the guest never blocks.
        self.log.write_bytes(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_and_counts_past_the_cap() {
        let log = GuestLog::new(10);
        log.write(LogLevel::Info, LogStream::Log, "12345");
        log.write(LogLevel::Info, LogStream::Log, "123456");
        log.write(LogLevel::Info, LogStream::Log, "12345");
        let record = log.finish(&Redactor::default());
        assert_eq!(record.lines.len(), 2);
        assert_eq!(record.dropped_lines, 1);
    }

    #[test]
    fn splits_stdout_into_lines() {
        let log = GuestLog::new(1000);
        log.write_bytes(LogStream::Stdout, b"one\ntw");
        log.write_bytes(LogStream::Stdout, b"o\nthree");
        let record = log.finish(&Redactor::default());
        let messages: Vec<_> = record.lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(messages, ["one", "two", "three"]);
    }
}
