# Multi-stage build of folio-api and folio-worker, with folioctl beside them
# (`docker compose exec api folioctl --help`).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bins --locked \
 && cp target/release/folio-api target/release/folio-worker target/release/folioctl /usr/local/bin/

FROM debian:bookworm-slim
# The worker reads scanned pages and images with Tesseract, rendering PDF pages
# with poppler and splitting TIFFs with libtiff (see worker/src/ocr.rs).
RUN apt-get update \
 && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng poppler-utils libtiff-tools \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 folio
COPY --from=build /usr/local/bin/folio-api /usr/local/bin/folio-worker /usr/local/bin/folioctl /usr/local/bin/
USER folio
WORKDIR /home/folio
EXPOSE 50051
CMD ["folio-api"]
