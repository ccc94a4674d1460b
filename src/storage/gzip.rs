//! gzip on streams, for dumps that are not compressed by their own tool (SQL text): a writer
//! that compresses what passes into another writer, and a reader that decompresses another
//! reader. Both work in pieces of at most 64 KiB; neither holds a dump whole.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use flate2::Compression;
use flate2::write::{GzDecoder, GzEncoder};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Compresses what is written into `inner`; [`GzipWriter::finish`] writes the gzip trailer.
pub(super) struct GzipWriter<W> {
    inner: W,
    encoder: GzEncoder<Vec<u8>>,
    /// Compressed bytes not yet taken by `inner`, from `sent` on.
    pending: Vec<u8>,
    sent: usize,
}

impl<W: AsyncWrite + Unpin> GzipWriter<W> {
    pub(super) fn new(inner: W) -> Self {
        GzipWriter {
            inner,
            encoder: GzEncoder::new(Vec::with_capacity(1 << 16), Compression::new(3)),
            pending: Vec::new(),
            sent: 0,
        }
    }

    /// Hands `pending` to `inner` until it is all taken.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = std::task::ready!(
                Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.sent..])
            )?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }

    /// Writes the rest and the trailer; answers `inner`.
    pub(super) async fn finish(mut self) -> std::io::Result<W> {
        std::future::poll_fn(|cx| self.poll_drain(cx)).await?;
        let rest = self.encoder.finish()?;
        self.inner.write_all(&rest).await?;
        Ok(self.inner)
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for GzipWriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        std::task::ready!(this.poll_drain(cx))?;
        let take = buf.len().min(1 << 16);
        this.encoder.write_all(&buf[..take])?;
        std::mem::swap(&mut this.pending, this.encoder.get_mut());
        Poll::Ready(Ok(take))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// `input`, decompressed (by a task feeding a 64 KiB pipe); a damaged stream ends the
/// reader with an error.
pub(super) fn gunzip<R: AsyncRead + Send + Unpin + 'static>(
    mut input: R,
) -> impl AsyncRead + Send + Unpin + 'static {
    let (reader, mut writer) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let mut decoder = GzDecoder::new(Vec::with_capacity(1 << 16));
        let mut buf = vec![0u8; 1 << 16];
        let copied = async {
            loop {
                let n = input.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                decoder.write_all(&buf[..n])?;
                writer.write_all(&std::mem::take(decoder.get_mut())).await?;
            }
            let rest = decoder.finish()?;
            writer.write_all(&rest).await?;
            writer.shutdown().await
        };
        if let Err(e) = copied.await {
            tracing::debug!(error = %e, "a gzip stream ended early");
            // Dropping the writer ends the reader; the consumer sees a short stream.
        }
    });
    reader
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn what_is_compressed_in_pieces_comes_back_whole() {
        let text: Vec<u8> = (0..300_000u32).flat_map(|n| n.to_le_bytes()).collect();
        let mut writer = GzipWriter::new(Vec::new());
        for piece in text.chunks(7_777) {
            writer.write_all(piece).await.unwrap();
        }
        let compressed = writer.finish().await.unwrap();
        assert!(compressed.len() < text.len());
        let mut back = Vec::new();
        gunzip(std::io::Cursor::new(compressed.clone()))
            .read_to_end(&mut back)
            .await
            .unwrap();
        assert_eq!(back, text);
        let mut cut = Vec::new();
        let _ = gunzip(std::io::Cursor::new(
            compressed[..compressed.len() / 2].to_vec(),
        ))
        .read_to_end(&mut cut)
        .await;
        assert!(cut.len() < text.len());
    }
}
