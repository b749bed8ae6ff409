# scripts/lib.sh: what scripts/demo and scripts/test share.
#
# - install_deps: the Debian 12 packages evcharge needs (as root; otherwise
#   only checks they are there).
# - build_install: make WERROR=1 && make install.
# - cluster_up NAME [CRON_DB]: a private PostgreSQL 15 cluster in
#   .cluster/NAME of the checkout, initialised as an unprivileged user on a
#   free loopback port, with pg_cron preloaded; reused when it exists.
# - cluster_down NAME: stops it.
# - cluster_dir NAME: the cluster's directory as the server reaches it.
# - ocpp_rpc_install: Node.js, npm and the npm package ocpp-rpc for the
#   simulated charge points (the demo's replay, the bridge's test).
# After cluster_up, PGHOST/PGPORT/PGUSER are exported for psql and friends.

set -euo pipefail

EV_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_BIN=/usr/lib/postgresql/15/bin
export PG_CONFIG=${PG_CONFIG:-/usr/bin/pg_config}

# Debian packages: server, headers, pg_cron, pgTAP and pg_prove, libcurl,
# OpenSSL, libpq, a compiler, clang with its libFuzzer runtime for the fuzz
# target, rsvg-convert (librsvg2-bin), which renders the evidence chart in
# the integration test (with fonts-wqy-microhei, a small font with Chinese
# glyphs, for the driver's chart in Chinese), and python3 and openssl for the loopback HTTPS
# statement server of the reconciliation test; for the OCPP bridge
# libwebsockets and jansson (docs/bridge.md says why), and Node.js for the
# ocpp-rpc charge points of its test.
EV_PACKAGES=(
	postgresql-15 postgresql-server-dev-15 postgresql-15-cron postgresql-15-pgtap
	libtap-parser-sourcehandler-pgtap-perl libcurl4-openssl-dev libssl-dev libpq-dev
	build-essential clang libclang-rt-14-dev cppcheck clang-tidy librsvg2-bin fonts-wqy-microhei python3 openssl
	libwebsockets-dev libjansson-dev nodejs
)
# npm, which the bridge test installs itself where the machine has none
# (NodeSource's nodejs bundles npm and conflicts with Debian's package).
EV_NODE_PACKAGES=(nodejs npm)
# Where ocpp-rpc is installed with npm: an ignored folder of the checkout.
EV_NODE_DIR=$EV_ROOT/.node

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

install_deps() {
	local missing=() p
	for p in "${EV_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		die "missing Debian packages: ${missing[*]} (run this command as root once, or apt-get install them)"
	fi
	say "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build_install() {
	say "building evcharge"
	make -C "$EV_ROOT" -s WERROR=1 >/dev/null
	if [ "$(id -u)" -eq 0 ]; then
		make -C "$EV_ROOT" -s install >/dev/null
	else
		sudo -n make -C "$EV_ROOT" -s install >/dev/null 2>&1 ||
			die "make install needs root: run this command as root"
	fi
}

# The unprivileged user that owns private clusters: ourselves, or, as root,
# Debian's postgres user.
cluster_owner() {
	if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi
}

# As root, from / : postgres may not be allowed into the caller's directory
# (a checkout in root's home), and every path given is absolute.
as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		(cd / && runuser -u postgres -- "$@")
	else
		"$@"
	fi
}

port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The cluster lives in .cluster/NAME.  As root, the server runs as postgres,
# which must be able to reach that directory; when the checkout sits where
# postgres cannot go (a clone under /root or in a mktemp -d, both mode 700),
# the data lives in /var/lib/evcharge/<checkout hash>/NAME and .cluster/NAME
# links to it.  Everything postgres itself opens (initdb's and pg_ctl's -D,
# the server log) is then named by that real path, never through the link,
# which postgres could not follow.
cluster_place() {
	local name=$1 dir="$EV_ROOT/.cluster/$1" real base
	# A link whose data directory was deleted is made again.
	if [ -L "$dir" ] && [ ! -e "$dir" ]; then rm -f "$dir"; fi
	[ -e "$dir" ] && return 0
	if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$EV_ROOT/.cluster" 2>/dev/null; then
		base="/var/lib/evcharge/$(echo "$EV_ROOT" | sha1sum | cut -c1-12)"
		real="$base/$name"
		say "postgres cannot reach $EV_ROOT; keeping cluster $name in $real"
		mkdir -p "$real"
		# Reachable whatever root's umask: postgres must traverse both.
		chmod 755 /var/lib/evcharge "$base"
		ln -s "$real" "$dir"
	else
		mkdir -p "$dir"
	fi
	[ "$(id -u)" -eq 0 ] && chown postgres: "$(cluster_dir "$name")"
	return 0
}

# The directory of cluster NAME as postgres reaches it: .cluster/NAME, or
# where that links to (see cluster_place).
cluster_dir() {
	local dir="$EV_ROOT/.cluster/$1"
	if [ -L "$dir" ]; then readlink -f "$dir"; else echo "$dir"; fi
}

cluster_up() {
	local name=$1 cron_db=${2:-evcharge}
	local dir port

	mkdir -p "$EV_ROOT/.cluster"
	cluster_place "$name"
	dir=$(cluster_dir "$name")
	if [ ! -f "$dir/data/PG_VERSION" ]; then
		say "creating cluster $name in .cluster/$name"
		rm -rf "${dir:?}"/*
		port=5440
		while ! port_free "$port"; do port=$((port + 1)); done
		echo "$port" > "$dir/port"
		[ "$(id -u)" -eq 0 ] && chown -R postgres: "$dir/"
		as_owner "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust \
			--encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; die "initdb failed"; }
		cat >>"$dir/data/postgresql.conf" <<-EOF

		# evcharge private cluster (scripts/lib.sh)
		listen_addresses = '127.0.0.1'
		port = $port
		unix_socket_directories = ''
		shared_preload_libraries = 'pg_cron'
		cron.database_name = '$cron_db'
		cron.use_background_workers = on
		max_worker_processes = 16
		timezone = 'Asia/Shanghai'
		log_min_messages = warning
		EOF
	fi
	port=$(cat "$dir/port")
	if ! as_owner "$PG_BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
		# The port was free when the cluster was made; another program (or
		# another private cluster) may hold it now: take the next free one.
		while ! port_free "$port"; do port=$((port + 1)); done
		echo "$port" > "$dir/port"
		say "starting cluster $name on port $port"
		as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "-p $port" -w -t 60 start >/dev/null ||
			{ tail -20 "$dir/server.log" >&2; die "cluster $name did not start"; }
	fi
	export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres
	# pg_cron's launcher waits for its database: make it, so it stops retrying.
	psql -X -q -tA -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$cron_db'" | grep -q 1 ||
		psql -X -q -d postgres -c "CREATE DATABASE \"$cron_db\"" >/dev/null
}

cluster_down() {
	local dir
	dir=$(cluster_dir "$1")
	[ -f "$dir/data/PG_VERSION" ] || return 0
	as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# Node.js and npm (Debian's nodejs and npm, as root, where the machine has
# no npm) and ocpp-rpc in .node/ of the checkout; prints the node_modules
# directory, which the charge points' code takes from $OCPP_NODE_MODULES.
ocpp_rpc_install() {
	if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
		[ "$(id -u)" -eq 0 ] || die "Node.js and npm are missing (run this command as root once, or apt-get install ${EV_NODE_PACKAGES[*]})"
		say "installing ${EV_NODE_PACKAGES[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -qq --no-install-recommends "${EV_NODE_PACKAGES[@]}" >/dev/null 2>&1 ||
			{ apt-get update -qq && apt-get install -y -qq --no-install-recommends "${EV_NODE_PACKAGES[@]}" >/dev/null; }
	fi
	if [ ! -d "$EV_NODE_DIR/node_modules/ocpp-rpc" ]; then
		say "installing ocpp-rpc with npm into .node/"
		mkdir -p "$EV_NODE_DIR"
		npm install --prefix "$EV_NODE_DIR" --no-audit --no-fund --no-save --silent ocpp-rpc@2 >/dev/null ||
			die "npm could not install ocpp-rpc"
	fi
	echo "$EV_NODE_DIR/node_modules"
}

# Run psql quietly, stopping at the first error.
pq() {
	psql -X -q -v ON_ERROR_STOP=1 "$@"
}
