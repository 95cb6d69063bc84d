# cmf container image: build on debian:bookworm, run on debian:bookworm-slim as a non-root user.
#   docker build -t cmf:0.1.0 .
# `make image` builds it with podman (Debian base images made from Debian's packages where no registry is
# reachable) and `make test` runs it in the chart's pod shape (make image-test, tests/image/);
# tests/chart/test_image.py checks that the runtime stage installs a package for every shared library
# build/cmf links.

FROM debian:bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      gcc make pkg-config libc6-dev \
      libmicrohttpd-dev libgnutls28-dev libjansson-dev libyaml-dev libpq-dev libssl-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN make -j"$(nproc)" build/cmf && strip --strip-debug build/cmf

FROM debian:bookworm-slim
# Only the runtime libraries build/cmf links (their own dependencies come with them).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libmicrohttpd12 libjansson4 libyaml-0-2 libpq5 libssl3 libcurl4 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 cmf \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin cmf
COPY --from=build /src/build/cmf /usr/local/bin/cmf
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/cmf"]
CMD ["serve"]
