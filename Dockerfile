# Dockerfile: the xdplb image (agent and operator; the chart in charts/xdplb
# runs both from it). The build stage compiles the BPF objects with clang and
# the product's TypeScript with tsc (`npm ci` then `npm run build:product`:
# src/ only; the lab, the demo and the benchmarks stay out of the image, and
# .dockerignore keeps them out of the build context), then drops the dev
# dependencies. The runtime stage is Node 24 slim with only
# libbpf1 (koffi loads libbpf.so.1 at run time) and iproute2 (the agent reads
# routes and neighbours with `ip`). Base images are pinned to one Node release
# so a rebuild gets the same runtime. Both are build arguments: without a
# registry, scripts/build-image makes a local Debian bookworm base with the
# same Node and passes it; with one, the defaults are the official images.
ARG BUILD_BASE=node:24.21.0-bookworm
ARG RUNTIME_BASE=node:24.21.0-bookworm-slim
FROM ${BUILD_BASE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang llvm libbpf-dev linux-libc-dev make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bpf ./bpf
COPY src ./src
RUN npm run build:product \
 && npm prune --omit=dev --no-audit --no-fund

FROM ${RUNTIME_BASE} AS runtime
LABEL org.opencontainers.image.title="xdplb" \
      org.opencontainers.image.description="Operator and node agent for Katran-style XDP layer-4 load balancers on Kubernetes (Maglev consistent hashing, direct server return)" \
      org.opencontainers.image.source="https://github.com/xdplb/xdplb" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf1 iproute2 \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bpf/build/*.o ./bpf/build/
# Non-root by default (the operator runs as is); the agent's DaemonSet sets
# runAsUser 0 and adds only CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON.
USER 65532:65532
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
