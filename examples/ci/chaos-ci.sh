#!/usr/bin/env bash
# payment-chaos in your CI: the steps of examples/ci/payment-chaos.yml, runnable anywhere.
#
#   chaos-ci.sh install   the tool into its own venv ($CHAOS_VENV) from $CHAOS_TOOL
#   chaos-ci.sh start     your service in the background ($SERVICE_START), then wait for
#                         $SERVICE_URL$SERVICE_HEALTH_PATH to answer (at most $SERVICE_WAIT s)
#   chaos-ci.sh replay    the cases committed in $CHAOS_CASES, with --expect (skipped when none)
#   chaos-ci.sh search    a bounded search (--profile ci, $CHAOS_EXAMPLES examples,
#                         --max-seconds $CHAOS_MAX_SECONDS) against $CHAOS_CONFIG
#   chaos-ci.sh shard     one shard of the nightly search: --shard $CHAOS_SHARD (I/N), the
#                         example database $CHAOS_EXAMPLE_DB (redis://... or github://...),
#                         its report and cases in $REPORTS/shard-I.json and $REPORTS/cases-I
#   chaos-ci.sh merge     the shards' reports (under $CHAOS_SHARDS, default shards/) as one
#                         report, JUnit file, HTML page and corpus in $REPORTS
#   chaos-ci.sh stop      stop the service started by `start`
#
# Everything lands in $REPORTS (default reports/): the JSON report, JUnit, the HTML
# timeline, JSON logs, new cases (commit those into $CHAOS_CASES), the service's log.
# The tool talks to $SERVICE_URL and starts its fake Stripe on 127.0.0.1:$CHAOS_STRIPE_PORT:
# point your service's Stripe client there. $CHAOS_OPTIONS (optional) is added to replay
# and search, e.g. "--set database.schema=ci". Exit codes are the tool's: 0 pass,
# 1 an invariant broke, 2 usage or config, 3 the service or the infrastructure.
set -euo pipefail

REPORTS="${REPORTS:-reports}"
CHAOS_VENV="${CHAOS_VENV:-.venv-chaos}"
CHAOS_CONFIG="${CHAOS_CONFIG:-chaos.toml}"
CHAOS_CASES="${CHAOS_CASES:-tests/chaos-cases}"
CHAOS_EXAMPLES="${CHAOS_EXAMPLES:-100}"
CHAOS_MAX_SECONDS="${CHAOS_MAX_SECONDS:-600}"
CHAOS_STRIPE_PORT="${CHAOS_STRIPE_PORT:-12111}"
SERVICE_HEALTH_PATH="${SERVICE_HEALTH_PATH:-/}"
SERVICE_WAIT="${SERVICE_WAIT:-60}"
TOOL="$CHAOS_VENV/bin/payment-chaos"

need() {
    if [ -z "${!1:-}" ]; then
        echo "chaos-ci: error: set $1 ($2)" >&2
        exit 2
    fi
}

# --set the service's URL and the fake Stripe's port, so the workflow is their one source
target_options() {
    need SERVICE_URL "where your service listens, e.g. http://127.0.0.1:8000"
    # shellcheck disable=SC2206  # CHAOS_OPTIONS is a list of words on purpose
    options=(--config "$CHAOS_CONFIG" --set "target.base_url=$SERVICE_URL"
             --set "stripe.port=$CHAOS_STRIPE_PORT" ${CHAOS_OPTIONS:-})
}

case "${1:-}" in
install)
    need CHAOS_TOOL "what pip installs: a wheel, a path, or git+https://...payment-chaos@TAG"
    python3 -m venv "$CHAOS_VENV"
    "$CHAOS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$CHAOS_TOOL"
    "$TOOL" --help > /dev/null
    echo "chaos-ci: installed $("$CHAOS_VENV/bin/python" -c 'import chaos; print(chaos.__version__)')"
    ;;
start)
    need SERVICE_START "the command that starts your service in the foreground"
    need SERVICE_URL "where your service listens, e.g. http://127.0.0.1:8000"
    mkdir -p "$REPORTS"
    # exec: the pid written is the service's own, so `stop` stops the service itself
    nohup bash -c "exec $SERVICE_START" > "$REPORTS/service.log" 2>&1 < /dev/null &
    echo $! > "$REPORTS/service.pid"
    deadline=$((SECONDS + SERVICE_WAIT))
    until curl --silent --fail --max-time 2 --output /dev/null "$SERVICE_URL$SERVICE_HEALTH_PATH"; do
        if ! kill -0 "$(cat "$REPORTS/service.pid")" 2> /dev/null; then
            echo "chaos-ci: error: the service exited during start-up; its log:" >&2
            tail -n 20 "$REPORTS/service.log" >&2
            exit 3
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "chaos-ci: error: $SERVICE_URL$SERVICE_HEALTH_PATH did not answer within" \
                 "${SERVICE_WAIT} s: check SERVICE_START and SERVICE_URL (log: $REPORTS/service.log)" >&2
            exit 3
        fi
        sleep 0.5
    done
    echo "chaos-ci: the service answers at $SERVICE_URL"
    ;;
replay)
    target_options
    if ! compgen -G "$CHAOS_CASES/*.json" > /dev/null; then
        echo "chaos-ci: no committed cases in $CHAOS_CASES yet: nothing to replay"
        exit 0
    fi
    mkdir -p "$REPORTS"
    "$TOOL" replay --expect "$CHAOS_CASES" "${options[@]}" --log-json "$REPORTS/replay-log.jsonl"
    ;;
search)
    target_options
    mkdir -p "$REPORTS"
    "$TOOL" run "${options[@]}" --profile ci --examples "$CHAOS_EXAMPLES" \
        --max-seconds "$CHAOS_MAX_SECONDS" \
        --report "$REPORTS/chaos-report.json" --junit "$REPORTS/chaos-junit.xml" \
        --html "$REPORTS/chaos-timeline.html" --log-json "$REPORTS/chaos-log.jsonl" \
        --corpus "$REPORTS/new-cases"
    ;;
shard)
    target_options
    need CHAOS_SHARD "this job's part of the search, I/N (e.g. \${{ matrix.shard }}/4)"
    mkdir -p "$REPORTS"
    index="${CHAOS_SHARD%%/*}"
    # the example database travels in the environment (it may hold a password)
    "$TOOL" run "${options[@]}" --profile ci --shard "$CHAOS_SHARD" \
        --examples "$CHAOS_EXAMPLES" --max-seconds "$CHAOS_MAX_SECONDS" \
        --report "$REPORTS/shard-$index.json" --log-json "$REPORTS/shard-$index-log.jsonl" \
        --corpus "$REPORTS/cases-$index"
    ;;
merge)
    shards="${CHAOS_SHARDS:-shards}"
    mkdir -p "$REPORTS"
    mapfile -t reports < <(find "$shards" -name 'shard-*.json' -not -name '*-log*' | sort)
    mapfile -t cases < <(find "$shards" -type d -name 'cases-*' | sort)
    if [ "${#reports[@]}" -eq 0 ]; then
        echo "chaos-ci: error: no shard reports (shard-*.json) under $shards" >&2
        exit 2
    fi
    case_options=()
    for folder in "${cases[@]}"; do case_options+=(--cases "$folder"); done
    "$TOOL" merge "${reports[@]}" "${case_options[@]}" \
        --report "$REPORTS/chaos-report.json" --junit "$REPORTS/chaos-junit.xml" \
        --html "$REPORTS/chaos-timeline.html" --corpus "$REPORTS/new-cases"
    ;;
stop)
    pid_file="$REPORTS/service.pid"
    [ -f "$pid_file" ] || exit 0
    pid="$(cat "$pid_file")"
    kill "$pid" 2> /dev/null || true
    deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2> /dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
    kill -9 "$pid" 2> /dev/null || true
    rm -f "$pid_file"
    echo "chaos-ci: the service stopped"
    ;;
*)
    echo "chaos-ci: usage: chaos-ci.sh install|start|replay|search|shard|merge|stop" >&2
    exit 2
    ;;
esac
