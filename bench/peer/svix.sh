#!/usr/bin/env bash
# Svix's open-source server (svix-server) as the peer of `make bench-peer`:
#   svix.sh build   fetch its public source, patch it to build offline from git deps, build release
#   svix.sh start   PostgreSQL (Debian's cluster) + Redis + svix-server on 127.0.0.1 (SVIX_PORT)
#   svix.sh token   a bearer token for the running server's API
#   svix.sh stop    stop svix-server and Redis (PostgreSQL is stopped only if this script started it)
#   svix.sh pids    "name pid" lines of the server, Redis and PostgreSQL's postmaster
#   svix.sh rev     the svix-webhooks revision it builds
#   svix.sh dbsize  the bytes of the server's database (its stored messages and attempts)
# Everything lives under PEER_DIR (default ~/.cache/hookrelay-peer), outside this repository.
# start and stop drive Debian's PostgreSQL cluster, so they run as root (or as postgres).
# Pre-fetched sources: SVIX_GIT, OMNIQUEUE_GIT, EXECMETA_GIT may name local git repositories
# (bare or not) instead of the GitHub URLs.
set -euo pipefail

PEER_DIR=${PEER_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/hookrelay-peer}
SVIX_GIT=${SVIX_GIT:-https://github.com/svix/svix-webhooks}
OMNIQUEUE_GIT=${OMNIQUEUE_GIT:-https://github.com/svix/omniqueue-rs}
EXECMETA_GIT=${EXECMETA_GIT:-https://github.com/svix/rust-executable-metadata}
# The revision measured in bench/results/peer.md; the two dependency revisions are the ones
# its server/svix-server/Cargo.toml names.
SVIX_REV=${SVIX_REV:-4fc0cfb8b426c87ef7e2b937e7d896a71d456a47}
OMNIQUEUE_REV=acb40983ed65f6cbebb19c05d590249306674a33
EXECMETA_REV=7a32435fbdab53f33e6abab9c1ab500afef0a7a8

SRC=$PEER_DIR/src
BIN=${SVIX_BIN:-${CARGO_TARGET_DIR:-$PEER_DIR/target}/release/svix-server}
RUN=$PEER_DIR/run
SVIX_PORT=${SVIX_PORT:-8071}
REDIS_PORT=${REDIS_PORT:-6390}
PG_VERSION=${PG_VERSION:-15}
PG_PORT=${PG_PORT:-5432}
DB=svixbench

# A git directory holding REV: a local path is used as it is, a URL is cloned once (bare).
git_dir() {
    local url=$1 name=$2
    if [[ -d $url ]]; then echo "$url"; return; fi
    local dir=$PEER_DIR/git/$name.git
    [[ -d $dir ]] || git clone --quiet --bare "$url" "$dir" >&2
    echo "$dir"
}

# Writes REV's tree (or one folder of it) into DEST, fresh.
export_tree() {
    local gitdir=$1 rev=$2 dest=$3
    rm -rf "$dest" && mkdir -p "$dest"
    git --git-dir="$gitdir" archive "$rev" | tar -x -C "$dest"
}

build() {
    mkdir -p "$PEER_DIR"
    # Sources exported and patched once per set of revisions; a second build is cargo's no-op.
    local stamp="$SVIX_REV $OMNIQUEUE_REV $EXECMETA_REV"
    if [[ $(cat "$SRC/.revisions" 2>/dev/null) != "$stamp" ]]; then
        prepare_sources
        echo "$stamp" >"$SRC/.revisions"
    fi
    (cd "$SRC/svix/server" && CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PEER_DIR/target} \
        nice -n 10 cargo build --release --bin svix-server)
    echo "$BIN"
}

prepare_sources() {
    export_tree "$(git_dir "$SVIX_GIT" svix-webhooks)" "$SVIX_REV" "$SRC/svix"
    export_tree "$(git_dir "$OMNIQUEUE_GIT" omniqueue-rs)" "$OMNIQUEUE_REV" "$SRC/omniqueue-rs"
    export_tree "$(git_dir "$EXECMETA_GIT" rust-executable-metadata)" "$EXECMETA_REV" \
        "$SRC/rust-executable-metadata"
    local server=$SRC/svix/server
    # hyper is patched to a fork at a revision no public snapshot holds: use the released hyper.
    # The fork only adds a public HeaderCaseMap (case-preserving outgoing header names);
    # without it header names go out lower-case, which a benchmark does not notice.
    sed -i '/^\[patch\./,$d' "$server/Cargo.toml"
    local client=$server/svix-server/src/core/webhook_http_client.rs
    sed -i 's|^use hyper::{Uri, body::Incoming, ext::HeaderCaseMap};|use hyper::{Uri, body::Incoming};\ntype HeaderCaseMap = hyper::HeaderMap<bytes::Bytes>;|' "$client"
    sed -i 's|hyper::ext::HeaderCaseMap|HeaderCaseMap|' "$client"
    grep -q '^type HeaderCaseMap' "$client" || { echo "svix.sh: patch did not apply" >&2; exit 1; }
    # The git dependencies become path dependencies on the exported trees.
    local manifest=$server/svix-server/Cargo.toml
    sed -i -E "s|^omniqueue = \{ git = \"[^\"]*\", rev = \"[^\"]*\"|omniqueue = { path = \"$SRC/omniqueue-rs/omniqueue\"|" "$manifest"
    sed -i -E "s|^rust-executable-metadata = \{ git = \"[^\"]*\", rev = \"[^\"]*\"|rust-executable-metadata = { path = \"$SRC/rust-executable-metadata\"|" "$manifest"
    grep -q "omniqueue = { path" "$manifest" && grep -q "rust-executable-metadata = { path" "$manifest" \
        || { echo "svix.sh: dependency rewrite did not apply" >&2; exit 1; }
    # The lock file pins the git sources; cargo re-resolves just those entries on the build.
}

# The server's environment: PostgreSQL for storage, Redis for its queue and cache, so the
# comparison is storage + queue against storage + queue; deliveries to loopback allowed.
svix_env() {
    export SVIX_DB_DSN="postgresql://$DB:$DB@127.0.0.1:$PG_PORT/$DB"
    export SVIX_REDIS_DSN="redis://127.0.0.1:$REDIS_PORT"
    export SVIX_QUEUE_TYPE=redis SVIX_CACHE_TYPE=redis
    export SVIX_JWT_SECRET=${SVIX_JWT_SECRET:-hookrelay-peer-bench-secret}
    export SVIX_LISTEN_ADDRESS="127.0.0.1:$SVIX_PORT"
    export SVIX_WHITELIST_SUBNETS='[127.0.0.1/32]'
}

pg_data() { pg_lsclusters -h | awk -v v="$PG_VERSION" '$1 == v && $2 == "main" {print $6}'; }

as_postgres() { if [[ $(id -un) == postgres ]]; then "$@"; else runuser -u postgres -- "$@"; fi; }

start() {
    [[ -x $BIN ]] || { echo "svix.sh: $BIN is missing; run: $0 build" >&2; exit 1; }
    command -v redis-server >/dev/null || { echo "svix.sh: needs redis-server (apt-get install redis-server)" >&2; exit 1; }
    command -v pg_ctlcluster >/dev/null || { echo "svix.sh: needs Debian's postgresql-$PG_VERSION" >&2; exit 1; }
    mkdir -p "$RUN"
    if ! pg_lsclusters -h | awk -v v="$PG_VERSION" '$1 == v && $2 == "main"' | grep -q online; then
        pg_ctlcluster "$PG_VERSION" main start
        touch "$RUN/pg-started-here"
    fi
    # A fresh database each run, so no run reads another's rows.
    as_postgres psql -q -p "$PG_PORT" -v ON_ERROR_STOP=1 <<SQL >/dev/null
DROP DATABASE IF EXISTS $DB;
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB') THEN CREATE ROLE $DB LOGIN PASSWORD '$DB'; END IF;
END \$\$;
CREATE DATABASE $DB OWNER $DB;
SQL
    # In memory only, like the emulator on the other side: no snapshots, no append-only file.
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --daemonize yes --pidfile "$RUN/redis.pid" --dir "$RUN" --logfile "$RUN/redis.log"
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    svix_env
    "$BIN" --run-migrations >"$RUN/svix.log" 2>&1 &
    echo $! >"$RUN/svix.pid"
    for _ in $(seq 300); do
        if curl -fsS "http://127.0.0.1:$SVIX_PORT/api/v1/health/" >/dev/null 2>&1; then return; fi
        kill -0 "$(cat "$RUN/svix.pid")" 2>/dev/null || { tail -20 "$RUN/svix.log" >&2; exit 1; }
        sleep 0.2
    done
    echo "svix.sh: svix-server did not answer within 60 s; see $RUN/svix.log" >&2
    exit 1
}

token() {
    svix_env
    "$BIN" jwt generate | awk '{print $NF}' | tail -1
}

stop() {
    if [[ -f $RUN/svix.pid ]]; then
        kill "$(cat "$RUN/svix.pid")" 2>/dev/null || true
        rm -f "$RUN/svix.pid"
    fi
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    if [[ -f $RUN/pg-started-here ]]; then
        pg_ctlcluster "$PG_VERSION" main stop
        rm -f "$RUN/pg-started-here"
    fi
}

pids() {
    echo "svix-server $(cat "$RUN/svix.pid")"
    echo "redis $(cat "$RUN/redis.pid")"
    echo "postgresql $(head -1 "$(pg_data)/postmaster.pid")"
}

case ${1:-} in
    build) build ;;
    start) start ;;
    token) token ;;
    stop) stop ;;
    pids) pids ;;
    rev) echo "$SVIX_REV" ;;
    dbsize) as_postgres psql -Atq -p "$PG_PORT" -c "SELECT pg_database_size('$DB')" ;;
    *) echo "usage: $0 build|start|token|stop|pids|rev|dbsize" >&2; exit 2 ;;
esac
