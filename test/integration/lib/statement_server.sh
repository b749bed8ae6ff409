# test/integration/lib/statement_server.sh: the loopback statement server
# (statement_server.py) for the integration scripts, sourced after tap.sh.
#   start_statement_server WORK PROVIDER_CSV PARTNER_CSV
# makes a certificate for 127.0.0.1 (WORK/cert.pem, WORK/key.pem), starts
# the server with secret $statement_secret and sets server_pid, port (https),
# plain_port (plain http, same handler) and silent_port (accepts, never
# answers); requests are logged to WORK/server.log.  stop_statement_server
# ends it (the scripts call it from their EXIT trap).

statement_secret=s3cret-s3cret-s3cret
server_pid=

start_statement_server() {
	local work=$1 ports
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
		-keyout "$work/key.pem" -out "$work/cert.pem" >/dev/null 2>&1 || return 1
	chmod 644 "$work/cert.pem" "$work/key.pem" "$2" "$3"
	python3 "$EV_ROOT/test/integration/lib/statement_server.py" 0 "$work/cert.pem" "$work/key.pem" \
		"$statement_secret" "$2" "$3" >"$work/ports" 2>"$work/server.log" &
	server_pid=$!
	for _ in $(seq 1 50); do [ "$(wc -l <"$work/ports")" -ge 3 ] && break; sleep 0.1; done
	ports=($(cat "$work/ports"))
	port=${ports[0]:-}
	plain_port=${ports[1]:-}
	silent_port=${ports[2]:-}
	[ -n "$silent_port" ]
}

stop_statement_server() {
	[ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
	server_pid=
}

# The pid of the one other backend whose query contains $1, waiting at most
# 5 s for it to appear.
backend_running() {
	local pid
	for _ in $(seq 1 50); do
		pid=$(q -d "$db" -c "SELECT pid FROM pg_stat_activity WHERE query LIKE '%$1%' AND pid <> pg_backend_pid() AND state = 'active'")
		[ -n "$pid" ] && { echo "$pid"; return 0; }
		sleep 0.1
	done
	return 1
}

# Milliseconds since the epoch.
now_ms() { date +%s%3N; }
