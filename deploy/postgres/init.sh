#!/usr/bin/env bash
# First-start initialisation of the compose stack's PostgreSQL (the official postgres image
# runs /docker-entrypoint-initdb.d/*.sh once, on an empty data volume, as POSTGRES_USER).
# Creates the schemas `inventory` and `orders` and the login roles `inventory_svc` and
# `order_svc` in POSTGRES_DB; see roles-and-schemas.psql for the exact rights.
#
# Environment (set in docker-compose.yml):
#   INVENTORY_DB_PASSWORD  password of inventory_svc (required)
#   ORDER_DB_PASSWORD      password of order_svc (required)

# A subshell: the entrypoint sources this file instead of running it when it is not
# executable, and these shell options must not leak into the entrypoint.
(
  set -euo pipefail
  psql -X -q -v ON_ERROR_STOP=1 \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    -v inventory_password="${INVENTORY_DB_PASSWORD:?set INVENTORY_DB_PASSWORD}" \
    -v order_password="${ORDER_DB_PASSWORD:?set ORDER_DB_PASSWORD}" \
    -f "$(dirname "${BASH_SOURCE[0]}")/roles-and-schemas.psql"
)
