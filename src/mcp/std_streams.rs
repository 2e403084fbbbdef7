//! The process's stdin and stdout on tokio's reactor when they are pipes or sockets (as an MCP
//! client makes them): tokio's own `stdin()`/`stdout()` do each read and write on the blocking
//! thread pool, a hand-off between threads for every message in and out of a stdio round trip
//! (docs/benchmarks.md, issue 16). A terminal or a file keeps tokio's streams.
//!
//! A reactor stream puts its file description in non-blocking mode, and whoever shares the
//! description sees that too. stderr is written with blocking writes (logs, the audit log), so
//! the reactor is used only when neither stdin nor stdout is the same file as stderr.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use tokio::io::{AsyncRead, AsyncWrite};

pub type Input = Box<dyn AsyncRead + Send + Unpin>;
pub type Output = Box<dyn AsyncWrite + Send + Unpin>;

/// stdin and stdout for the MCP session.
pub fn stdio() -> (Input, Output) {
    match on_reactor() {
        Ok(Some(streams)) => streams,
        Ok(None) => (Box::new(tokio::io::stdin()), Box::new(tokio::io::stdout())),
        Err(e) => {
            tracing::debug!("stdin/stdout stay on tokio's blocking streams: {e}");
            (Box::new(tokio::io::stdin()), Box::new(tokio::io::stdout()))
        }
    }
}

fn on_reactor() -> std::io::Result<Option<(Input, Output)>> {
    let stdin = File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let stdout = File::from(std::io::stdout().as_fd().try_clone_to_owned()?);
    let stderr = identity(std::io::stderr().as_fd())?;
    let (input_kind, output_kind) = (kind(&stdin)?, kind(&stdout)?);
    let (Some(input_kind), Some(output_kind)) = (input_kind, output_kind) else {
        return Ok(None);
    };
    if identity(stdin.as_fd())? == stderr || identity(stdout.as_fd())? == stderr {
        return Ok(None);
    }
    let input: Input = match input_kind {
        Kind::Pipe => Box::new(tokio::net::unix::pipe::Receiver::from_file(stdin)?),
        Kind::Socket => Box::new(socket(stdin)?),
    };
    let output: Output = match output_kind {
        Kind::Pipe => Box::new(tokio::net::unix::pipe::Sender::from_file(stdout)?),
        Kind::Socket => Box::new(socket(stdout)?),
    };
    Ok(Some((input, output)))
}

enum Kind {
    Pipe,
    Socket,
}

fn kind(file: &File) -> std::io::Result<Option<Kind>> {
    let file_type = file.metadata()?.file_type();
    Ok(if file_type.is_fifo() {
        Some(Kind::Pipe)
    } else if file_type.is_socket() {
        Some(Kind::Socket)
    } else {
        None
    })
}

/// Reads and writes on a stream socket are the same whatever its family.
fn socket(file: File) -> std::io::Result<tokio::net::UnixStream> {
    let stream = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(file));
    stream.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(stream)
}

fn identity(fd: BorrowedFd<'_>) -> std::io::Result<(u64, u64)> {
    let file = File::from(fd.try_clone_to_owned()?);
    let metadata = file.metadata()?;
    Ok((metadata.dev(), metadata.ino()))
}
