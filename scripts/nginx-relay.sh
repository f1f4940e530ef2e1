#!/usr/bin/env bash
# h2 -> nginx -> h1 by hand: ipcbench measures through an nginx it did not start, as it would
# through yours. The plan names the relay (`relay = "127.0.0.1:PORT"`), its master's pid
# (`relay_pid`: the CPU of the master and its workers is the relay's CPU) and where ipcbench's
# origin listens for nginx's upstream (`origin_listen`); every trial alternates the direct path
# (client -> origin) with the relayed one, as with the built-in relay.
#
# With NGINX_PID set, your running nginx is used: it must listen on 127.0.0.1:$RELAY_PORT
# (http2, cleartext) and proxy_pass to 127.0.0.1:$ORIGIN_PORT. Without it, this script starts
# one with the config below (what the harness generates for `relay = "nginx"`, which does all
# of this in one step) and stops it at the end.
# Needs: nginx (apt-get install nginx), a release build of ipcbench. Traffic: 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${IPCBENCH:-target/release/ipcbench}
[ -x "$bin" ] || cargo build --release -p ipcbench
relay_port=${RELAY_PORT:-18080}
origin_port=${ORIGIN_PORT:-18081}
dir=$(mktemp -d)
pid=${NGINX_PID:-}
cleanup() {
    if [ -z "${NGINX_PID:-}" ] && [ -f "$dir/nginx.pid" ]; then
        kill "$(cat "$dir/nginx.pid")" 2>/dev/null || true
        sleep 0.5
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

if [ -z "$pid" ]; then
    command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "nginx is not installed" >&2; exit 2; }
    nginx=$(command -v nginx || echo /usr/sbin/nginx)
    user=$([ "$(id -u)" = 0 ] && echo "user root;" || true)
    # `listen ... http2` is the syntax before nginx 1.25.1; later versions warn and accept it.
    cat >"$dir/nginx.conf" <<CONF
$user
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    keepalive_requests 1000000;
    http2_max_concurrent_streams 128;
    upstream origin {
        server 127.0.0.1:$origin_port;
        keepalive 4;
    }
    server {
        listen 127.0.0.1:$relay_port http2;
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
    # On the client's core, as the harness pins its relays (a sidecar).
    taskset -c 0 "$nginx" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
    for _ in $(seq 50); do
        [ -s "$dir/nginx.pid" ] && break
        sleep 0.1
    done
    pid=$(cat "$dir/nginx.pid")
fi

cat >"$dir/plan.toml" <<PLAN
name = "nginx-relay"
repetitions = ${REPETITIONS:-3}
warmup = "200ms"
duration = "${DURATION:-1s}"
cores = [0, 1]

[[scenario]]
kind = "http"
front = ["h2"]
back = ["h1"]
response_bytes = ["1KiB", "64KiB"]
connections = 4
streams = 8
request_headers = { count = 16, value_bytes = 128 }
relay = "127.0.0.1:$relay_port"
relay_pid = $pid
origin_listen = "127.0.0.1:$origin_port"
PLAN
"$bin" run "$dir/plan.toml" "$@"
