// scripts/ocpp_charge_point.js: what every simulated OCPP 1.6J charge point of
// this repository shares, on the npm package ocpp-rpc in strict mode (every
// call made and every answer received is checked against the spec's JSON
// schemas; a failed check of an answer is collected in `failures`).  Used
// by the demo's replay of a day through the bridge (demo/replay.js) and by
// the bridge's integration test (test/integration/lib/ocpp_pile.js).
// ocpp-rpc is looked up in $OCPP_NODE_MODULES, where scripts/lib.sh's
// ocpp_rpc_install puts it.
'use strict';
const path = require('path');
const fs = require('fs');

if (!process.env.OCPP_NODE_MODULES)
	throw new Error('OCPP_NODE_MODULES is not set (scripts/lib.sh, ocpp_rpc_install)');
const { RPCClient } = require(path.join(process.env.OCPP_NODE_MODULES, 'ocpp-rpc'));
const WebSocket = require(path.join(process.env.OCPP_NODE_MODULES, 'ws'));

const iso = (ms) => new Date(ms).toISOString();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A charge point's connection to url (ws://HOST:PORT/ocpp) as identity, with
// subprotocol ocpp1.6, strict validation and no automatic reconnect (the
// callers decide when a pile reconnects).  opt: password (HTTP Basic), ca (a
// PEM file for wss://), callTimeoutMs, failures (an array the strict check's
// failures are pushed to); extra: more RPCClient options.
function client(url, identity, opt = {}, extra = {}) {
	const cli = new RPCClient({
		endpoint: url, identity, protocols: ['ocpp1.6'], strictMode: true,
		reconnect: false, callTimeoutMs: opt.callTimeoutMs || 5000,
		...(opt.password ? { password: opt.password } : {}),
		...(opt.ca ? { wsOpts: { ca: fs.readFileSync(opt.ca) } } : {}),
		...extra,
	});
	if (opt.failures)
		cli.on('strictValidationFailure', (e) => opt.failures.push(String(e.error && e.error.message || e)));
	return cli;
}

// A call that a charge point queues and resends until it is answered (OCPP
// requires it of transaction messages): on a timeout or a lost connection,
// reconnect with state.reconnect() and send it again.  state.cli is the
// client; state.resends counts the resends.  opt: timeoutMs (3000),
// maxAttempts (60), giveUpOnCallError (a CALLERROR is an answer too: throw
// it instead of sending the same message again).
async function durable(state, method, params, opt = {}) {
	for (let attempt = 0; ; attempt++) {
		try {
			return await state.cli.call(method, params, { callTimeoutMs: opt.timeoutMs || 3000 });
		} catch (e) {
			if (attempt > (opt.maxAttempts || 60) || (opt.giveUpOnCallError && e && e.rpcErrorCode)) throw e;
			state.resends = (state.resends || 0) + 1;
			if (state.cli.state !== 1) {
				try { await state.cli.close({ force: true }); } catch (_) { /* already gone */ }
				state.cli = state.reconnect();
				for (;;) {
					try { await state.cli.connect(); break; } catch (_) { await sleep(300); }
				}
			}
		}
	}
}

module.exports = { client, durable, iso, sleep, WebSocket };
