//! gzip for an SSE stream (`ORDERCAST_SSE_GZIP`, off by default): one
//! compressor per connection, flushed after every write so the client can
//! decode each batch of events at once. It costs the compressor's state for
//! the whole life of the connection (docs/performance.md): worth it only
//! where bandwidth is dearer than edge memory.

use std::io::Write as _;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;

/// One connection's compressor.
pub(crate) struct SseGzip {
    encoder: GzEncoder<Vec<u8>>,
}

impl SseGzip {
    pub(crate) fn new() -> SseGzip {
        SseGzip {
            encoder: GzEncoder::new(Vec::new(), Compression::fast()),
        }
    }

    /// `chunk` compressed and sync-flushed: complete on arrival.
    pub(crate) fn chunk(&mut self, chunk: &[u8]) -> std::io::Result<Bytes> {
        self.encoder.write_all(chunk)?;
        self.encoder.flush()?;
        Ok(Bytes::from(std::mem::take(self.encoder.get_mut())))
    }

    /// The end of the gzip stream.
    pub(crate) fn finish(self) -> std::io::Result<Bytes> {
        self.encoder.finish().map(Bytes::from)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn every_chunk_decodes_on_arrival() {
        let mut gzip = SseGzip::new();
        let mut wire = Vec::new();
        let mut decoded = String::new();
        for n in 1..=3 {
            let event = format!("id: {n}\nevent: order.created\ndata: {{\"seq\":{n}}}\n\n");
            wire.extend_from_slice(&gzip.chunk(event.as_bytes()).unwrap());
            // What arrived so far decodes to every event so far.
            let mut partial = flate2::read::GzDecoder::new(&wire[..]);
            let mut text = String::new();
            let _ = partial.read_to_string(&mut text);
            assert!(text.ends_with(&event), "{text:?}");
            decoded = text;
        }
        wire.extend_from_slice(&gzip.finish().unwrap());
        let mut all = String::new();
        flate2::read::GzDecoder::new(&wire[..])
            .read_to_string(&mut all)
            .unwrap();
        assert_eq!(all, decoded);
    }
}

/// What compression costs per connection and per event: run with
/// `scripts/measure-compression.sh` (numbers in docs/performance.md).
#[cfg(test)]
mod cost {
    use std::time::Instant;

    use flate2::{Compress, Decompress};

    use super::*;

    /// An `order.created` of two items as the SSE stream writes it.
    const EVENT: &str = concat!(
        "id: 1057\nevent: order.created\ndata: {\"restaurant_id\":\"6f1c0d2e-5a8e-4c1b-9f3a-0d3e7c9b1a42\",",
        "\"seq\":1057,\"type\":\"order.created\",\"ts\":\"2026-12-05T10:42:07.250123Z\",\"audience\":{\"roles\":",
        "[\"owner\",\"kitchen\",\"waiter\"]},\"data\":{\"id\":\"01939a8e-7d2c-7c4e-9a1b-3f5e6d7c8b9a\",\"restaurant_id\":",
        "\"6f1c0d2e-5a8e-4c1b-9f3a-0d3e7c9b1a42\",\"status\":\"new\",\"version\":1,\"table\":\"12\",\"channel\":\"pos\",",
        "\"items\":[{\"id\":\"01939a8e-7d2c-7c4e-9a1b-3f5e6d7c8b9b\",\"sku\":\"burger\",\"name\":\"Smash burger\",",
        "\"quantity\":2,\"unit_price_cents\":1250,\"station\":\"grill\",\"notes\":\"no onions\",\"status\":\"queued\"},",
        "{\"id\":\"01939a8e-7d2c-7c4e-9a1b-3f5e6d7c8b9c\",\"sku\":\"fries\",\"name\":\"Fries\",\"quantity\":1,",
        "\"unit_price_cents\":450,\"station\":\"fryer\",\"status\":\"queued\"}],\"total_cents\":2950,",
        "\"created_at\":\"2026-12-05T10:42:07.250123Z\",\"updated_at\":\"2026-12-05T10:42:07.250123Z\"}}\n\n"
    );

    fn rss_kib() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        pages * 4
    }

    /// Resident memory per live value made by `make`, in KiB.
    fn kib_each<T>(n: usize, make: impl Fn() -> T) -> f64 {
        let before = rss_kib();
        let held: Vec<T> = (0..n).map(|_| make()).collect();
        let after = rss_kib();
        drop(held);
        (after - before) as f64 / n as f64
    }

    #[test]
    #[ignore = "a measurement, not a test: scripts/measure-compression.sh"]
    #[expect(clippy::print_stdout, reason = "a measurement reports its numbers")]
    fn compression_cost() {
        let n = 2_000;
        let gzip = kib_each(n, || {
            let mut g = SseGzip::new();
            g.chunk(EVENT.as_bytes()).unwrap();
            g
        });
        // permessage-deflate holds a compressor and a decompressor per
        // socket (context takeover, window 2^15, the only one miniz offers).
        let deflate = kib_each(n, || {
            let mut c = Compress::new(Compression::fast(), false);
            let mut out = Vec::with_capacity(1024);
            c.compress_vec(EVENT.as_bytes(), &mut out, flate2::FlushCompress::Sync)
                .unwrap();
            (c, Decompress::new(false))
        });
        let mut g = SseGzip::new();
        let first = g.chunk(EVENT.as_bytes()).unwrap().len();
        let rounds = 2_000;
        let mut later = 0;
        // Each event its own seq and ids, as a real stream's.
        let events: Vec<String> = (0..rounds)
            .map(|i| {
                EVENT
                    .replace("1057", &(2_000 + i).to_string())
                    .replace("8b9", &format!("{:03x}", i % 4096))
            })
            .collect();
        let started = Instant::now();
        for event in &events {
            later += g.chunk(event.as_bytes()).unwrap().len();
        }
        let per_event = started.elapsed() / rounds;
        println!();
        println!("event bytes plain: {}", EVENT.len());
        println!("gzip bytes, first event of a stream: {first}");
        println!(
            "gzip bytes, later events (same shape): {}",
            later / events.len()
        );
        println!("gzip time per event (this build): {per_event:?}");
        println!("resident KiB per SSE gzip stream: {gzip:.1}");
        println!("resident KiB per deflate compressor + decompressor: {deflate:.1}");
    }
}
