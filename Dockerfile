# selfheal's API and control worker (docker-compose.yml runs both from this image).
# The host worker (`selfheal worker --host NAME`) runs systemctl on the host it guards, so it is not
# containerised: install it on each host with deploy/systemd/selfheal-worker.service.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
RUN npm run build && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    SELFHEAL_CONFIG=/etc/selfheal/selfheal.yaml
WORKDIR /app
COPY --from=build /app /app
RUN mkdir -p /var/lib/selfheal && chown node:node /var/lib/selfheal
USER node
VOLUME ["/var/lib/selfheal"]
# 5000: API (webhook, /metrics); 9464: the worker's Temporal SDK metrics.
EXPOSE 5000 9464
ENTRYPOINT ["node", "bin/selfheal.js"]
CMD ["api"]
