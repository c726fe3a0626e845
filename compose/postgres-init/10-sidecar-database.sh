#!/bin/sh
# The sidecar's store beside HAPI's database in the same PostgreSQL: its own role and database. The official image
# runs this once, when the data volume is first initialised.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -v password="$SIDECAR_DB_PASSWORD" <<'SQL'
CREATE ROLE sidecar LOGIN PASSWORD :'password';
CREATE DATABASE sidecar OWNER sidecar;
SQL
