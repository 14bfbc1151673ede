#!/usr/bin/env bash
# cluster.sh starts or stops a local high-availability setup on 127.0.0.1:
# three etcd members and three pushgate replicas sharing them.
#
#   tools/habench/cluster.sh start     # after `make build`
#   tools/habench/cluster.sh status
#   tools/habench/cluster.sh stop      # stops what start started, removes the data
#
# Ports (PORT_BASE=32300 by default): etcd member i (0..2) listens for
# clients on PORT_BASE+10+2i and for peers on PORT_BASE+11+2i; replica i
# serves HTTP on PORT_BASE+91+i. Data, logs and PIDs go to DIR
# (/tmp/pushgate-ha). ETCD and PUSHGATE pick the binaries.
set -euo pipefail

PORT_BASE=${PORT_BASE:-32300}
DIR=${DIR:-/tmp/pushgate-ha}
ETCD=${ETCD:-/usr/bin/etcd}
PUSHGATE=${PUSHGATE:-./pushgate}

client_url() { echo "http://127.0.0.1:$((PORT_BASE + 10 + 2 * $1))"; }
peer_url() { echo "http://127.0.0.1:$((PORT_BASE + 11 + 2 * $1))"; }
replica_url() { echo "http://127.0.0.1:$((PORT_BASE + 91 + $1))"; }

cluster=""
endpoints=""
for i in 0 1 2; do
	cluster+="${cluster:+,}etcd$i=$(peer_url "$i")"
	endpoints+="${endpoints:+,}$(client_url "$i")"
done

# wait_for URL: poll until it answers 200, for up to 30 s.
wait_for() {
	for _ in $(seq 300); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "cluster.sh: $1 did not come up; see $DIR/*.log" >&2
	return 1
}

start() {
	if [ -e "$DIR" ]; then
		echo "cluster.sh: $DIR exists; run '$0 stop' first" >&2
		exit 1
	fi
	mkdir -p "$DIR"
	for i in 0 1 2; do
		"$ETCD" --name "etcd$i" --data-dir "$DIR/etcd$i" \
			--listen-client-urls "$(client_url "$i")" --advertise-client-urls "$(client_url "$i")" \
			--listen-peer-urls "$(peer_url "$i")" --initial-advertise-peer-urls "$(peer_url "$i")" \
			--initial-cluster "$cluster" --initial-cluster-state new \
			--initial-cluster-token pushgate-ha >"$DIR/etcd$i.log" 2>&1 &
		echo $! >"$DIR/etcd$i.pid"
	done
	for i in 0 1 2; do wait_for "$(client_url "$i")/health"; done
	for i in 0 1 2; do
		"$PUSHGATE" --web.listen-address="127.0.0.1:$((PORT_BASE + 91 + i))" \
			--web.enable-admin-api --storage.etcd.endpoints="$endpoints" >"$DIR/pushgate$i.log" 2>&1 &
		echo $! >"$DIR/pushgate$i.pid"
	done
	for i in 0 1 2; do wait_for "$(replica_url "$i")/-/ready"; done
	status
}

status() {
	echo "etcd endpoints: $endpoints"
	for i in 0 1 2; do
		echo "etcd$i     pid $(cat "$DIR/etcd$i.pid")  $(client_url "$i")"
	done
	for i in 0 1 2; do
		echo "pushgate$i pid $(cat "$DIR/pushgate$i.pid")  $(replica_url "$i")"
	done
}

stop() {
	for f in "$DIR"/pushgate?.pid "$DIR"/etcd?.pid; do
		[ -e "$f" ] || continue
		kill "$(cat "$f")" 2>/dev/null || true
	done
	# Give them a moment to exit before the data goes.
	for f in "$DIR"/pushgate?.pid "$DIR"/etcd?.pid; do
		[ -e "$f" ] || continue
		for _ in $(seq 50); do kill -0 "$(cat "$f")" 2>/dev/null || break; sleep 0.1; done
	done
	rm -rf "$DIR"
}

case "${1:-}" in
start) start ;;
status) status ;;
stop) stop ;;
*)
	echo "usage: $0 start|status|stop" >&2
	exit 2
	;;
esac
