# Dockerfile: the xdplb image (agent and operator). A build stage compiles the
# BPF objects with clang and the TypeScript; the runtime is Node 24 slim with
# libbpf1 only (koffi loads libbpf.so.1 at run time).
FROM node:24-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends clang llvm libbpf-dev make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bpf ./bpf
COPY src ./src
COPY bench ./bench
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libbpf1 iproute2 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/bpf/build ./bpf/build
USER 65532:65532
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
