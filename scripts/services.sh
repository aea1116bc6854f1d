# Sourced by scripts/test: makes PostgreSQL and Redis reachable for the tests that use them.
# Exports OODALOO_TEST_POSTGRES_URL / OODALOO_TEST_REDIS_URL when a service is up; otherwise
# says which tests will be skipped and why (and fails when CI=true).

pg_host=${OODALOO_PG_HOST:-127.0.0.1}
pg_port=${OODALOO_PG_PORT:-5432}
redis_port=${OODALOO_REDIS_PORT:-6379}

port_open() {  # host port
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0 || return 1
}

wait_port() {  # host port seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do port_open "$1" "$2" && return 0; sleep 0.1; done
  return 1
}

start_postgres() {
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "PostgreSQL is installed but not answering on $pg_host:$pg_port: starting it."
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    wait_port "$pg_host" "$pg_port" 30
  else
    return 1
  fi
}

start_redis() {
  if command -v redis-server >/dev/null 2>&1; then
    echo "Redis is installed but not answering on 127.0.0.1:$redis_port: starting it."
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$redis_port" --save "" \
      --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    wait_port 127.0.0.1 "$redis_port" 15
  else
    return 1
  fi
}

ensure_services() {
  local missing=""
  if port_open "$pg_host" "$pg_port" || start_postgres; then
    export OODALOO_TEST_POSTGRES_URL=${OODALOO_TEST_POSTGRES_URL:-postgresql+asyncpg://postgres@$pg_host:$pg_port/test}
  else
    missing+=$'\n'"  - PostgreSQL ($pg_host:$pg_port) is not installed or would not start: the PostgreSQL variants of the database tests will be skipped."
  fi
  if port_open 127.0.0.1 "$redis_port" || start_redis; then
    export OODALOO_TEST_REDIS_URL=${OODALOO_TEST_REDIS_URL:-redis://127.0.0.1:$redis_port/0}
  else
    missing+=$'\n'"  - Redis (127.0.0.1:$redis_port) is not installed or would not start: the Redis variants of the limiter, cache and lock tests will be skipped."
  fi
  if [ -n "$missing" ]; then
    echo "Services missing:$missing"
    if [ "${CI:-}" = "true" ]; then
      echo "CI=true: a missing service fails the run." >&2
      return 1
    fi
  fi
  return 0
}
