# The ordercast image: the one binary (migrations and the web client are
# built in) on a minimal glibc base, as a non-root user. The Helm chart
# (charts/ordercast) runs it as `ordercast api`, `ordercast edge` and
# `ordercast migrate`.
#
#   docker build -t ordercast:0.1.0 .
#
# Nothing here reads the network at run time; TLS to PostgreSQL or Redis
# uses rustls with the webpki roots compiled in.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ordercast \
 && cp target/release/ordercast /usr/local/bin/ordercast

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/ordercast /usr/local/bin/ordercast
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/ordercast"]
CMD ["all"]
