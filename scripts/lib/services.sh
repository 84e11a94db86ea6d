# shellcheck shell=bash
# shellcheck disable=SC2034 # the SVC_* results are read by scripts/test
#
# Helpers for scripts/test: find, or start privately, the PostgreSQL server and the MQTT broker that
# the integration suites talk to. Sourced by scripts/test (which runs with `set -euo pipefail`);
# nothing here runs on its own.
#
# Entry points:
#   svc_setup_postgres   exports PDM_TEST_DATABASE_URL, or records why PostgreSQL is skipped
#   svc_setup_mqtt       exports PDM_TEST_MQTT_URL (and PDM_MOSQUITTO_BIN), or records the skip
#   svc_cleanup          stops and deletes whatever private instance this run started (EXIT trap)
#
# Knobs, mostly to exercise the fallback paths on a machine where the system services run:
#   PDM_TEST_PG_PORT_DEFAULT    port probed for an already running PostgreSQL (default 5432)
#   PDM_TEST_MQTT_PORT_DEFAULT  port probed for an already running broker (default 1883)
#   PDM_TEST_SERVICE_PATH       colon-separated dirs searched for initdb/pg_ctl/psql/mosquitto/...
#                               (default: $PATH, /usr/local/bin, /usr/sbin, /sbin and
#                               /usr/lib/postgresql/*/bin); point it at an empty dir to hide them
#   PDM_TEST_NO_INSTALL=1       never apt-get install, even with CI=true
#   PDM_TEST_TMPDIR             where private instances live (default /tmp: it must be reachable
#                               by the unprivileged user PostgreSQL runs as)

# Results read by scripts/test for its summary. *_SKIPPED is the reason when a service is missing.
SVC_PG_STATUS=""
SVC_PG_SKIPPED=""
SVC_MQTT_STATUS=""
SVC_MQTT_SKIPPED=""

# State of the private instances, for svc_cleanup.
SVC_PG_DIR=""
SVC_PG_BINDIR=""
SVC_PG_USER=""
SVC_MQTT_DIR=""
SVC_MQTT_PID=""
SVC_APT_UPDATED=""
SVC_INSTALL_NOTE="" # what the last install attempt did, for a skip banner

svc_log() { printf '[test] %s\n' "$*" >&2; }
svc_warn() { printf '[test] WARNING: %s\n' "$*" >&2; }
svc_die() {
    printf '\n[test] ERROR: %s\n\n' "$*" >&2
    exit 1
}

# A banner that cannot be missed in a long CI log: a skipped suite must never look like a pass.
svc_banner() {
    local line='##########################################################################'
    {
        printf '\n%s\n%s\n' "$line" "$line"
        local l
        for l in "$@"; do printf '###  %s\n' "$l"; done
        printf '%s\n%s\n\n' "$line" "$line"
    } >&2
}

# Run a command with a time limit when coreutils' timeout exists (a wedged server must not hang CI).
svc_timeout() {
    local secs=$1
    shift
    if command -v timeout >/dev/null 2>&1; then
        timeout "$secs" "$@"
    else
        "$@"
    fi
}

# The dirs searched for service binaries. Debian keeps initdb/pg_ctl/postgres out of PATH, in
# /usr/lib/postgresql/<major>/bin, and mosquitto in /usr/sbin, which a non-root PATH may lack.
svc_search_path() {
    if [[ -n ${PDM_TEST_SERVICE_PATH+x} ]]; then
        printf '%s' "$PDM_TEST_SERVICE_PATH"
        return
    fi
    local p="${PATH}:/usr/local/bin:/usr/local/sbin:/usr/sbin:/sbin" d
    # Newest major first.
    while IFS= read -r d; do
        [[ -n $d ]] && p+=":$d"
    done < <(compgen -G '/usr/lib/postgresql/*/bin' | sort -t/ -k4,4 -rV)
    printf '%s' "$p"
}

# svc_find_bin NAME: print the first executable NAME on the search path; fail if there is none.
svc_find_bin() {
    local name=$1 d
    local -a dirs
    IFS=: read -r -a dirs <<<"$(svc_search_path)"
    for d in "${dirs[@]}"; do
        if [[ -n $d && -x $d/$name && ! -d $d/$name ]]; then
            printf '%s\n' "$d/$name"
            return 0
        fi
    done
    return 1
}

# The dir holding both initdb and pg_ctl (taking them from one dir keeps their versions equal).
svc_find_pg_bindir() {
    local d
    local -a dirs
    IFS=: read -r -a dirs <<<"$(svc_search_path)"
    for d in "${dirs[@]}"; do
        if [[ -n $d && -x $d/initdb && -x $d/pg_ctl ]]; then
            printf '%s\n' "$d"
            return 0
        fi
    done
    return 1
}

# svc_tcp_open HOST PORT: does anything accept a TCP connection there? Needs no client tools.
svc_tcp_open() {
    # shellcheck disable=SC2016 # expanded by the inner bash, from its arguments
    svc_timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# A port nobody listens on right now. The kernel picks it (bind to port 0) when python3 is there;
# otherwise random ports are tried until one refuses connections. Either way another process could
# take it before we do, so the callers retry a start that fails.
svc_free_port() {
    local port
    if command -v python3 >/dev/null 2>&1 &&
        port=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' 2>/dev/null) && [[ -n $port ]]; then
        printf '%s\n' "$port"
        return 0
    fi
    local i
    for i in $(seq 1 50); do
        port=$((20000 + RANDOM % 40000))
        if ! svc_tcp_open 127.0.0.1 "$port"; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    return 1
}

# Only a CI run may install system packages: on a developer's machine that is their call.
svc_can_install() {
    [[ ${CI:-} == true ]] || return 1
    [[ ${PDM_TEST_NO_INSTALL:-0} != 1 ]] || return 1
    command -v apt-get >/dev/null 2>&1 || return 1
    ((EUID == 0)) || { command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; }
}

# svc_apt_install PKG...: noninteractive apt-get install, output to a log shown only on failure.
svc_apt_install() {
    SVC_INSTALL_NOTE="apt-get install $* failed (log: ${SVC_LOG_DIR:-/tmp}/apt.log)"
    svc_can_install || return 1
    local -a sudo=()
    ((EUID == 0)) || sudo=(sudo -n)
    local log="${SVC_LOG_DIR:-/tmp}/apt.log"
    mkdir -p "$(dirname "$log")" 2>/dev/null || log=$(mktemp /tmp/pdm-test-apt.XXXXXX.log)
    local -a apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y
        -o DPkg::Lock::Timeout=300)
    if [[ -z $SVC_APT_UPDATED ]]; then
        svc_log "CI: apt-get update (log: $log)"
        if ! "${apt[@]}" update >>"$log" 2>&1; then
            tail -n 30 "$log" >&2
            svc_warn "apt-get update failed"
            return 1
        fi
        SVC_APT_UPDATED=1
    fi
    svc_log "CI: apt-get install $* (log: $log)"
    if ! "${apt[@]}" install --no-install-recommends "$@" >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        svc_warn "apt-get install $* failed"
        return 1
    fi
    SVC_INSTALL_NOTE="apt-get install $* succeeded, yet the binaries are not on the search path"
}

# svc_install_note PKG: why PKG was not installed, in a few words, for a skip banner.
svc_install_note() {
    if [[ ${CI:-} != true ]]; then
        echo "not installed: only CI=true runs apt-get install $1"
    elif [[ ${PDM_TEST_NO_INSTALL:-0} == 1 ]]; then
        echo "not installed: PDM_TEST_NO_INSTALL=1"
    elif ! svc_can_install; then
        echo "not installed: no apt-get, or not root and no password-less sudo"
    else
        echo "${SVC_INSTALL_NOTE:-no install attempted}"
    fi
}

svc_mktemp_dir() {
    mktemp -d "${PDM_TEST_TMPDIR:-/tmp}/$1.XXXXXX"
}

###################################################################################################
# PostgreSQL
###################################################################################################

# svc_pg_query URL SQL: run one query with a short connect timeout, print the unaligned result.
svc_pg_query() {
    local psql
    psql=$(svc_find_bin psql) || return 1
    PGCONNECT_TIMEOUT=5 svc_timeout 20 "$psql" "$1" -X -q -A -t -v ON_ERROR_STOP=1 -c "$2" \
        2>/dev/null </dev/null
}

# Does the server behind URL answer? psql proves the credentials too; pg_isready or a bare TCP
# connect are the fallbacks when the client tools are not installed.
svc_pg_answers() {
    local url=$1
    if svc_find_bin psql >/dev/null; then
        [[ $(svc_pg_query "$url" 'select 1') == 1 ]]
        return
    fi
    local isready
    if isready=$(svc_find_bin pg_isready); then
        svc_timeout 20 "$isready" -q -t 5 -d "$url" </dev/null
        return
    fi
    # postgres://user@host:port/db -> host, port
    local hostport=${url#*://}
    hostport=${hostport#*@}
    hostport=${hostport%%/*}
    hostport=${hostport%%\?*}
    local host=${hostport%:*} port=5432
    [[ $hostport == *:* ]] && port=${hostport##*:}
    svc_tcp_open "${host:-127.0.0.1}" "$port"
}

# The tests create one database per test, so the role must be allowed to CREATE DATABASE.
svc_pg_can_createdb() {
    if ! svc_find_bin psql >/dev/null; then
        return 0 # cannot tell without psql; the tests will say so if not
    fi
    [[ $(svc_pg_query "$1" \
        'select rolcreatedb or rolsuper from pg_roles where rolname = current_user') == t ]]
}

# Step b: a server already running on 127.0.0.1 (the system one on a developer or CI machine).
svc_pg_try_running() {
    local port=$1 db url
    if ! svc_find_bin psql >/dev/null; then
        if svc_tcp_open 127.0.0.1 "$port"; then
            svc_warn "something listens on 127.0.0.1:$port but psql is not installed to check" \
                "it; assuming PostgreSQL with trust auth for user postgres"
            export PDM_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
            SVC_PG_STATUS="running server at 127.0.0.1:$port (unchecked: no psql)"
            return 0
        fi
        return 1
    fi
    for db in test postgres; do
        url="postgres://postgres@127.0.0.1:$port/$db"
        if svc_pg_answers "$url"; then
            if ! svc_pg_can_createdb "$url"; then
                svc_warn "$url answers but its role may not CREATE DATABASE; not using it"
                return 1
            fi
            export PDM_TEST_DATABASE_URL="$url"
            SVC_PG_STATUS="running server at 127.0.0.1:$port (database $db)"
            return 0
        fi
    done
    return 1
}

# Run a command as the user that owns the private cluster: PostgreSQL refuses to run as root.
# Runs from the cluster dir, since that user may not be allowed into the caller's working dir.
svc_as_pg_user() {
    if [[ -z $SVC_PG_USER ]]; then
        (cd "$SVC_PG_DIR" && "$@")
    elif command -v runuser >/dev/null 2>&1; then
        (cd "$SVC_PG_DIR" && runuser -u "$SVC_PG_USER" -- "$@")
    else
        local cmd
        printf -v cmd '%q ' "$@"
        (cd "$SVC_PG_DIR" && su -s /bin/sh "$SVC_PG_USER" -c "$cmd")
    fi
}

# When running as root, pick (or make) an unprivileged user for the private cluster: the distro's
# `postgres` user when the package made one, else a system user of our own.
svc_pg_pick_user() {
    SVC_PG_USER=""
    ((EUID == 0)) || return 0
    if id -u postgres >/dev/null 2>&1; then
        SVC_PG_USER=postgres
    elif id -u pdm-test >/dev/null 2>&1; then
        SVC_PG_USER=pdm-test
    elif command -v useradd >/dev/null 2>&1 &&
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin pdm-test >/dev/null 2>&1; then
        SVC_PG_USER=pdm-test
    else
        svc_warn "running as root and could not find or create an unprivileged user for PostgreSQL"
        return 1
    fi
}

# Step c: a throwaway cluster in a temp dir on a free port, trust auth, listening on 127.0.0.1
# only, with its socket in the temp dir (so no /run/postgresql is needed). svc_cleanup removes it.
svc_pg_start_private() {
    local bindir=$1 port attempt
    SVC_PG_BINDIR=$bindir
    SVC_PG_DIR=$(svc_mktemp_dir pdm-test-pg) || return 1
    svc_pg_pick_user || return 1
    if [[ -n $SVC_PG_USER ]]; then
        chown "$SVC_PG_USER:" "$SVC_PG_DIR" || return 1
    fi
    svc_log "PostgreSQL: initdb in $SVC_PG_DIR (binaries: $bindir${SVC_PG_USER:+, user $SVC_PG_USER})"
    # --no-sync only skips initdb's final flush of a cluster that dies with this run anyway;
    # the server itself runs with fsync=on, as the durability tests expect.
    if ! svc_as_pg_user "$bindir/initdb" -D "$SVC_PG_DIR/data" -U postgres -A trust -E UTF8 \
        --locale=C --no-sync >"$SVC_PG_DIR/initdb.log" 2>&1; then
        cat "$SVC_PG_DIR/initdb.log" >&2
        svc_warn "initdb failed"
        return 1
    fi
    for attempt in 1 2 3; do
        port=$(svc_free_port) || return 1
        # One database per test, several tests at once, each with a pool: allow plenty.
        if svc_as_pg_user "$bindir/pg_ctl" -D "$SVC_PG_DIR/data" -l "$SVC_PG_DIR/postgres.log" \
            -w -t 60 -o "-c listen_addresses=127.0.0.1 -p $port \
-c unix_socket_directories=$SVC_PG_DIR -c fsync=on -c max_connections=300" \
            start >"$SVC_PG_DIR/pg_ctl.log" 2>&1; then
            export PDM_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
            if ! svc_pg_answers "$PDM_TEST_DATABASE_URL"; then
                svc_warn "private PostgreSQL started but does not answer at $PDM_TEST_DATABASE_URL"
                tail -n 30 "$SVC_PG_DIR/postgres.log" >&2 || true
                return 1
            fi
            SVC_PG_STATUS="private cluster at 127.0.0.1:$port ($SVC_PG_DIR)"
            svc_log "PostgreSQL: private cluster up at 127.0.0.1:$port"
            return 0
        fi
        svc_warn "pg_ctl start failed on port $port (attempt $attempt)"
        tail -n 20 "$SVC_PG_DIR/postgres.log" >&2 2>/dev/null || cat "$SVC_PG_DIR/pg_ctl.log" >&2
    done
    return 1
}

svc_pg_stop_private() {
    [[ -n $SVC_PG_DIR ]] || return 0
    if [[ -f $SVC_PG_DIR/data/postmaster.pid ]]; then
        svc_log "PostgreSQL: stopping private cluster"
        if ! svc_as_pg_user "$SVC_PG_BINDIR/pg_ctl" -D "$SVC_PG_DIR/data" -m fast -w -t 30 stop \
            >/dev/null 2>&1; then
            # Last resort: the postmaster's own pid, read from its pid file (ours, not a pattern).
            local pid
            pid=$(head -n 1 "$SVC_PG_DIR/data/postmaster.pid" 2>/dev/null || true)
            if [[ $pid =~ ^[0-9]+$ ]]; then kill -9 "$pid" 2>/dev/null || true; fi
        fi
    fi
    rm -rf "$SVC_PG_DIR"
    SVC_PG_DIR=""
}

svc_setup_postgres() {
    # a. The caller named a server: use it, and say so loudly when it does not answer.
    if [[ -n ${PDM_TEST_DATABASE_URL:-} ]]; then
        if svc_pg_answers "$PDM_TEST_DATABASE_URL"; then
            SVC_PG_STATUS="given by PDM_TEST_DATABASE_URL ($PDM_TEST_DATABASE_URL)"
            export PDM_TEST_DATABASE_URL
            svc_log "PostgreSQL: using PDM_TEST_DATABASE_URL=$PDM_TEST_DATABASE_URL"
            return 0
        fi
        svc_die "PDM_TEST_DATABASE_URL=$PDM_TEST_DATABASE_URL does not answer (checked with" \
            "psql/pg_isready). Start that server, or unset the variable to let scripts/test" \
            "find or start one."
    fi

    # b. A server already running locally.
    local port=${PDM_TEST_PG_PORT_DEFAULT:-5432}
    if svc_pg_try_running "$port"; then
        svc_log "PostgreSQL: using $PDM_TEST_DATABASE_URL"
        return 0
    fi
    svc_log "PostgreSQL: nothing usable on 127.0.0.1:$port; looking for initdb/pg_ctl"

    # c/d. A private cluster, from installed binaries or (CI only) freshly installed ones.
    local bindir=""
    bindir=$(svc_find_pg_bindir) || bindir=""
    if [[ -z $bindir ]] && svc_can_install; then
        if svc_apt_install postgresql; then
            bindir=$(svc_find_pg_bindir) || bindir=""
        fi
    fi
    if [[ -n $bindir ]]; then
        if svc_pg_start_private "$bindir"; then
            return 0
        fi
        svc_die "could not start a private PostgreSQL from $bindir (logs above). Fix that, or" \
            "point PDM_TEST_DATABASE_URL at a server."
    fi

    # e. Nothing to run: skip, loudly.
    local why="no server on 127.0.0.1:$port and no initdb/pg_ctl found"
    why+="; $(svc_install_note postgresql)"
    SVC_PG_SKIPPED=$why
    SVC_PG_STATUS="SKIPPED: $why"
    unset PDM_TEST_DATABASE_URL
    svc_banner "PostgreSQL test suites will be SKIPPED" \
        "why: $why" \
        "The store conformance suite runs on SQLite only, and the server tests" \
        "that need PostgreSQL skip themselves. To run them: start PostgreSQL on" \
        "127.0.0.1:5432 (trust auth, user postgres), install it (initdb/pg_ctl)," \
        "or export PDM_TEST_DATABASE_URL=postgres://USER@HOST:PORT/DB"
}

###################################################################################################
# MQTT (Mosquitto)
###################################################################################################

# svc_mqtt_probe HOST PORT: does an MQTT broker answer? A QoS 1 publish proves a real broker (it
# must send PUBACK); without mosquitto_pub a TCP connect is the best we can do.
svc_mqtt_probe() {
    local pub
    if pub=$(svc_find_bin mosquitto_pub); then
        svc_timeout 10 "$pub" -h "$1" -p "$2" -q 1 -t pdm-test/probe -m probe \
            >/dev/null 2>&1 </dev/null
    else
        svc_tcp_open "$1" "$2"
    fi
}

# Probe a URL given by the caller: mqtt://[user[:password]@]host[:port]
svc_mqtt_probe_url() {
    local url=$1 pub
    local re='^(mqtt|mqtts|tcp|ssl)://([^@/]+@)?([^:/@]+)(:([0-9]+))?/?$'
    [[ $url =~ $re ]] || {
        svc_warn "PDM_TEST_MQTT_URL=$url is not of the form mqtt://[user[:password]@]host[:port]"
        return 1
    }
    local scheme=${BASH_REMATCH[1]} host=${BASH_REMATCH[3]} port=${BASH_REMATCH[5]}
    if [[ -z $port ]]; then
        port=1883
        [[ $scheme == mqtts || $scheme == ssl ]] && port=8883
    fi
    if [[ $scheme == mqtt || $scheme == tcp ]] && pub=$(svc_find_bin mosquitto_pub); then
        # -L takes the credentials of the URL, if any, along with host and port.
        local rest=${url#*://}
        svc_timeout 10 "$pub" -L "mqtt://${rest%/}/pdm-test/probe" -q 1 -m probe \
            >/dev/null 2>&1 </dev/null
    else
        # TLS needs certificates we do not have here: check that the port takes connections.
        svc_tcp_open "$host" "$port"
    fi
}

# Step c: a private broker on a free port. Unlimited queues and in-flight windows, so that a test
# that piles up messages for a disconnected client (the crash test) never sees the broker drop
# them (max_queued_messages 0 and max_inflight_messages 0 mean "no maximum" in Mosquitto 2.0).
svc_mqtt_start_private() {
    local bin=$1 port attempt i
    SVC_MQTT_DIR=$(svc_mktemp_dir pdm-test-mqtt) || return 1
    mkdir -p "$SVC_MQTT_DIR/data"
    for attempt in 1 2 3; do
        port=$(svc_free_port) || return 1
        {
            echo "# generated by scripts/test for one test run"
            echo "listener $port 127.0.0.1"
            echo "allow_anonymous true"
            echo "persistence true"
            echo "persistence_location $SVC_MQTT_DIR/data/"
            echo "max_queued_messages 0"
            echo "max_inflight_messages 0"
            echo "log_dest file $SVC_MQTT_DIR/mosquitto.log"
            # As root, Mosquitto 2 drops to the `mosquitto` user, which could not write the temp
            # dir; this broker only ever listens on 127.0.0.1 for one test run.
            if ((EUID == 0)); then echo "user root"; fi
        } >"$SVC_MQTT_DIR/mosquitto.conf"
        "$bin" -c "$SVC_MQTT_DIR/mosquitto.conf" >"$SVC_MQTT_DIR/mosquitto.out" 2>&1 </dev/null &
        SVC_MQTT_PID=$!
        for i in $(seq 1 50); do
            if ! kill -0 "$SVC_MQTT_PID" 2>/dev/null; then
                break
            fi
            if svc_mqtt_probe 127.0.0.1 "$port"; then
                export PDM_TEST_MQTT_URL="mqtt://127.0.0.1:$port"
                SVC_MQTT_STATUS="private broker at 127.0.0.1:$port ($SVC_MQTT_DIR)"
                svc_log "MQTT: private mosquitto up at 127.0.0.1:$port (pid $SVC_MQTT_PID)"
                return 0
            fi
            sleep 0.2
        done
        svc_warn "private mosquitto did not come up on port $port (attempt $attempt):"
        cat "$SVC_MQTT_DIR/mosquitto.out" "$SVC_MQTT_DIR/mosquitto.log" >&2 2>/dev/null || true
        svc_mqtt_kill
    done
    return 1
}

# Stop the private broker: its own pid, TERM first (it saves its state), KILL if it hangs.
svc_mqtt_kill() {
    [[ -n $SVC_MQTT_PID ]] || return 0
    local _
    kill -TERM "$SVC_MQTT_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$SVC_MQTT_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$SVC_MQTT_PID" 2>/dev/null || true
    wait "$SVC_MQTT_PID" 2>/dev/null || true
    SVC_MQTT_PID=""
}

svc_mqtt_stop_private() {
    if [[ -n $SVC_MQTT_PID ]]; then
        svc_log "MQTT: stopping private mosquitto"
        svc_mqtt_kill
    fi
    if [[ -n $SVC_MQTT_DIR ]]; then
        rm -rf "$SVC_MQTT_DIR"
        SVC_MQTT_DIR=""
    fi
}

svc_setup_mqtt() {
    # Some tests start a broker of their own with special settings: tell them where mosquitto is.
    # In CI, install it for them even when a broker already answers.
    local bin=""
    if [[ -n ${PDM_MOSQUITTO_BIN:-} ]]; then
        [[ -x $PDM_MOSQUITTO_BIN ]] ||
            svc_die "PDM_MOSQUITTO_BIN=$PDM_MOSQUITTO_BIN is not an executable file"
        bin=$PDM_MOSQUITTO_BIN
    else
        bin=$(svc_find_bin mosquitto) || bin=""
        if [[ -z $bin ]] && svc_can_install; then
            if svc_apt_install mosquitto mosquitto-clients; then
                bin=$(svc_find_bin mosquitto) || bin=""
            fi
        fi
    fi
    if [[ -n $bin ]]; then
        export PDM_MOSQUITTO_BIN=$bin
    else
        unset PDM_MOSQUITTO_BIN
    fi

    # a. The caller named a broker.
    if [[ -n ${PDM_TEST_MQTT_URL:-} ]]; then
        if svc_mqtt_probe_url "$PDM_TEST_MQTT_URL"; then
            export PDM_TEST_MQTT_URL
            SVC_MQTT_STATUS="given by PDM_TEST_MQTT_URL ($PDM_TEST_MQTT_URL)"
            svc_log "MQTT: using PDM_TEST_MQTT_URL=$PDM_TEST_MQTT_URL"
            return 0
        fi
        svc_die "PDM_TEST_MQTT_URL=$PDM_TEST_MQTT_URL does not answer. Start that broker, or" \
            "unset the variable to let scripts/test find or start one."
    fi

    # b. A broker already running locally.
    local port=${PDM_TEST_MQTT_PORT_DEFAULT:-1883}
    if svc_mqtt_probe 127.0.0.1 "$port"; then
        export PDM_TEST_MQTT_URL="mqtt://127.0.0.1:$port"
        SVC_MQTT_STATUS="running broker at 127.0.0.1:$port"
        svc_log "MQTT: using $PDM_TEST_MQTT_URL"
        return 0
    fi
    svc_log "MQTT: no broker on 127.0.0.1:$port; looking for mosquitto"

    # c/d. A private broker (the binary was installed above in CI if it was missing).
    if [[ -n $bin ]]; then
        if svc_mqtt_start_private "$bin"; then
            return 0
        fi
        svc_die "could not start a private mosquitto from $bin (logs above). Fix that, or point" \
            "PDM_TEST_MQTT_URL at a broker."
    fi

    # e. Nothing to run: skip, loudly.
    local why="no broker on 127.0.0.1:$port and no mosquitto binary found"
    why+="; $(svc_install_note mosquitto)"
    SVC_MQTT_SKIPPED=$why
    SVC_MQTT_STATUS="SKIPPED: $why"
    unset PDM_TEST_MQTT_URL
    svc_banner "MQTT test suites will be SKIPPED" \
        "why: $why" \
        "The MQTT source tests and the crash test skip themselves. To run them:" \
        "start a broker on 127.0.0.1:1883, install mosquitto, or" \
        "export PDM_TEST_MQTT_URL=mqtt://HOST:PORT"
}

# Stop and delete every private instance this run started. Safe to call more than once.
svc_cleanup() {
    svc_mqtt_stop_private || true
    svc_pg_stop_private || true
}
