# Shared by scripts/up and scripts/test: make sure Postgres (with pgvector and RUM),
# RabbitMQ and Redis answer on their usual local ports, reusing running servers
# and otherwise starting (or installing, from Debian/Ubuntu packages) local ones.
# Sourced, not run.

FOLIO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

# Each step's line says how long its script has run (bash's SECONDS), so a CI
# log shows where the time goes.
say() { printf '\033[1m==> %s\033[0m (%ss)\n' "$*" "$SECONDS" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2
  for _ in $(seq 1 120); do
    port_open "$port" && return 0
    sleep 0.5
  done
  echo "$name did not start listening on port $port" >&2
  return 1
}

apt_install() {
  if [ -z "${FOLIO_APT_UPDATED:-}" ]; then
    $SUDO apt-get update -qq
    FOLIO_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
  if ! port_open 5432; then
    if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
      say "installing PostgreSQL"
      apt_install postgresql
    fi
    say "starting PostgreSQL"
    local version
    version=$(ls /etc/postgresql | sort -n | tail -1)
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_port 5432 PostgreSQL
    # A fresh Debian install asks for a password on TCP; give the postgres role
    # the one the default URLs use.
    $SUDO -u postgres psql -qc "ALTER ROLE postgres PASSWORD 'postgres'" >/dev/null 2>&1 || \
      su postgres -c "psql -qc \"ALTER ROLE postgres PASSWORD 'postgres'\"" >/dev/null 2>&1 || true
  fi
  if ! psql "$PG_ADMIN_URL" -Atqc "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'" | grep -q 1; then
    say "installing pgvector"
    "$FOLIO_ROOT/scripts/install-pgvector"
  fi
  # RUM: the full-text index that returns matches already ranked (keyword
  # search's top-k without ranking every match). Debian packages it per
  # PostgreSQL major version.
  if ! psql "$PG_ADMIN_URL" -Atqc "SELECT 1 FROM pg_available_extensions WHERE name = 'rum'" | grep -q 1; then
    say "installing RUM"
    local major
    major=$(psql "$PG_ADMIN_URL" -Atqc "SHOW server_version_num" | cut -c1-2)
    apt_install "postgresql-${major}-rum"
  fi
}

ensure_rabbitmq() {
  if port_open 5672; then return 0; fi
  if ! command -v rabbitmq-server >/dev/null; then
    say "installing RabbitMQ"
    apt_install rabbitmq-server
  fi
  say "starting RabbitMQ"
  $SUDO rabbitmq-server -detached >/dev/null 2>&1 || true
  wait_port 5672 RabbitMQ
}

ensure_redis() {
  if port_open 6379; then return 0; fi
  if ! command -v redis-server >/dev/null; then
    say "installing Redis"
    apt_install redis-server
  fi
  say "starting Redis"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  wait_port 6379 Redis
}

ensure_client_tools() {
  command -v psql >/dev/null || apt_install postgresql-client
  command -v cargo >/dev/null || { echo "cargo is missing: install a Rust toolchain (rustup) first" >&2; return 1; }
}

# Loads .env (if any) and sets the default URLs for what is still unset.
folio_env() {
  if [ -f "$FOLIO_ROOT/.env" ]; then
    set -a
    # shellcheck disable=SC1091
    . "$FOLIO_ROOT/.env"
    set +a
  fi
  export DATABASE_URL="${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/folio}"
  export AMQP_URL="${AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}"
  export REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
  # The first admin, created at start if absent (README's walkthrough logs in as it).
  export FOLIO_ADMIN_EMAIL="${FOLIO_ADMIN_EMAIL:-admin@folio.local}"
  export FOLIO_ADMIN_PASSWORD="${FOLIO_ADMIN_PASSWORD:-change me, folio admin}"
  PG_ADMIN_URL="${DATABASE_URL%/*}/postgres"
  export PG_ADMIN_URL
}

ensure_services() {
  folio_env
  ensure_client_tools
  ensure_postgres
  ensure_rabbitmq
  ensure_redis
}

ensure_database() {
  local name=${DATABASE_URL##*/}
  name=${name%%\?*}
  if ! psql "$PG_ADMIN_URL" -Atqc "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1; then
    say "creating database $name"
    psql "$PG_ADMIN_URL" -qc "CREATE DATABASE \"$name\""
  fi
}
