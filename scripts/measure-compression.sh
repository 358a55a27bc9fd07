#!/usr/bin/env bash
# What compression would cost the edge (docs/performance.md, Compression):
# bytes on the wire per event with and without gzip, the time to compress
# one, and the resident memory of one SSE gzip stream and of one
# permessage-deflate context. Pass --release for timings worth quoting (a
# debug build's are not); the memory and byte counts do not depend on it.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test -p ordercast-edge --lib "$@" gzip::cost -- --ignored --nocapture --test-threads=1 2>&1 |
  grep -E '^(event|gzip|resident)'
