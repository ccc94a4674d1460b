# shard in a container. The Docker socket must be mounted for shard to build and run apps:
#   docker run -d -p 8080:8080 -v /var/run/docker.sock:/var/run/docker.sock \
#     -v shard-data:/data shard
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked && cp target/release/shard /shard

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /data shard && mkdir -p /data && chown shard /data
COPY --from=build /shard /usr/local/bin/shard
ENV SHARD_DATA_DIR=/data SHARD_LISTEN=0.0.0.0:8080
VOLUME /data
EXPOSE 8080
# Root is needed only when the mounted Docker socket is root-owned; prefer adding the
# shard user to the socket's group with --group-add.
USER shard
ENTRYPOINT ["/usr/local/bin/shard"]
CMD ["serve"]
