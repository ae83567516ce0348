# syntax=docker/dockerfile:1
# runway: build the one-file bundle on the official Node image, run it on
# distroless Node.js as the `nonroot` user. Both stages use Node 24 on Debian 13.
# Multi-arch comes from the base images:
#   docker buildx build --platform linux/amd64,linux/arm64 -t IMAGE .
# Behind a proxy that re-signs TLS, pass its CA bundle to the build stage only:
#   docker build --secret id=npm_ca,src=/path/to/ca.pem -t IMAGE .
# (a build secret is mounted for one RUN and never lands in a layer).

# --- build stage ---
# On the builder's own platform, whatever the target's: the bundle is JavaScript, the same for every
# architecture, so an arm64 image needs no emulated npm ci (only its runtime stage is arm64).
FROM --platform=$BUILDPLATFORM node:24-trixie-slim AS build
WORKDIR /src
# Dependencies first, so this layer is cached until the lockfile changes.
COPY package.json package-lock.json ./
RUN --mount=type=secret,id=npm_ca,required=false \
    if [ -f /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi; \
    npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY scripts ./scripts
COPY src ./src
COPY service ./service
RUN npm run build

# --- runtime stage: no shell, no package manager, only the bundle ---
# The target's platform, said again: buildah (1.28) otherwise carries the build stage's into this one.
FROM --platform=$TARGETPLATFORM gcr.io/distroless/nodejs24-debian13:nonroot
WORKDIR /app
COPY --from=build /src/dist/ ./dist/
ENV NODE_ENV=production
USER nonroot
EXPOSE 8080
# The image's entrypoint is `node`; secrets arrive at run time as environment
# variables from the platform's secret manager, never through the image.
CMD ["dist/server.js"]
