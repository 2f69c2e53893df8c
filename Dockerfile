# One image for every role: `api`, `worker` or `all` as the command.
# Production installs leave out the development tools and the embedded engines
# (chdb and embedded-postgres are optional dependencies, loaded only when no URL
# is configured): the image reaches Postgres and ClickHouse by URL.
FROM node:22.23.3-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# The CLI's client package is an npm workspace: its package.json lets npm link it.
COPY clients/node/package.json ./clients/node/package.json
# Install scripts must run: esbuild (used by tsx to load the TypeScript sources)
# fetches its platform binary in its own install script when optional
# dependencies are omitted.
RUN npm install --omit=dev --omit=optional --no-audit --no-fund \
 && npm cache clean --force

FROM node:22.23.3-bookworm-slim
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY gen ./gen
COPY services ./services
COPY cli ./cli
COPY clients/node ./clients/node
COPY console ./console
# `funnel` (the ops CLI) on PATH: `docker compose exec api funnel status`. Then
# a smoke test: loading the entry point imports every module, so a runtime import
# of a package that the production install lacks fails the build, not the start.
# The console's bundle is built here, into node_modules/.cache/funnel-console,
# which the unprivileged user below could not write: the API serves it from there.
RUN printf '#!/bin/sh\nexec node /app/cli/bin.js "$@"\n' > /usr/local/bin/funnel \
 && node services/bin.js build-console \
 && chmod 755 /usr/local/bin/funnel \
 && node services/bin.js --help 2>&1 | grep -q 'usage: funnel-server'
USER node
ENV PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "services/bin.js"]
CMD ["api"]
