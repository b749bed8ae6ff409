// demo/replay.js: the day demo through the bridge.  Simulated charge points
// (scripts/ocpp_charge_point.js: ocpp-rpc in strict mode) read the day that
// bench/trafficgen wrote and send it to a running evcharge-bridge as OCPP
// 1.6J, in the 5-minute steps demo/day_load.sql worked out (the plan file),
// as fast as the bridge answers: the whole day in a minute or two.  After
// each step, once everything sent is committed, it runs sweep_offline() for
// the step as the COPY replay does; after the last, detect_lost_bills(), then
// the records that came after the day.  How each line and each defect of the
// traffic maps to OCPP is in docs/bridge.md ("The demo day over OCPP").
//
//   node demo/replay.js GEN_DIR PLAN_FILE ws://HOST:PORT/ocpp DATABASE
//
// PLAN_FILE (tab-separated, from demo/day.sh): "d day_start day_end",
// "h line step" per heartbeat line, "r line step" per pile record (step
// empty: after the day), "a pile_order_no member_id" per app start; times
// in Unix milliseconds.  psql reaches DATABASE through PGHOST/PGPORT/PGUSER.
// What it did goes into demo_day.replay_summary and demo_day.app_start.
'use strict';
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');
const cp = require(path.join(__dirname, '..', 'scripts', 'ocpp_charge_point.js'));

const [genDir, planFile, url, db] = process.argv.slice(2);
if (!db) {
	console.error('usage: node demo/replay.js GEN_DIR PLAN_FILE ws://HOST:PORT/ocpp DATABASE');
	process.exit(2);
}
const STEP_MS = 300000;
const OFFLINE_MS = 180000;		// evcharge.offline_after: a pile silent that long has lost its network
// A pile sends the samples of a transaction it took in a step together, as
// one MeterValues with a meterValue per sample, each at its own time (OCPP
// allows several); a status change, the stop or the step's end sends them.
const SAMPLES_PER_MESSAGE = Number(process.env.EV_SAMPLES_PER_MESSAGE || 20);
const began = Date.now();

// ---------------------------------------------------------------- input

// '2026-11-20 00:05:00+08' (COPY text) to Unix ms.
function parseTs(s) {
	const m = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d)(?::?(\d\d))?$/.exec(s);
	if (!m) throw new Error(`not a time: ${s}`);
	return Date.parse(`${m[1]}T${m[2]}${m[3]}:${m[4] || '00'}`);
}
const nul = (s) => (s === '\\N' ? null : s);
const num = (s) => (s === '\\N' ? null : Number(s));
function readLines(file) {
	const text = fs.readFileSync(file, 'utf8');
	return text.split('\n').filter((l) => l !== '').map((l) => l.split('\t'));
}

const piles = new Map();		// registered piles
for (const [id, station, guns, power, firmware] of readLines(path.join(genDir, 'pile.copy')))
	piles.set(id, { id, station, guns: Number(guns), power: Number(power), firmware: nul(firmware) });

const lines = readLines(path.join(genDir, 'heartbeat.copy')).map((f, i) => ({
	n: i + 1, gun: f[0], pile: f[0].slice(0, 20), conn: Number(f[0].slice(20)), ts: parseTs(f[1]), status: f[2],
	meter: num(f[3]), power: num(f[4]), soc: num(f[5]), fault: num(f[6]), order: nul(f[7]),
}));
const records = readLines(path.join(genDir, 'pile_record.copy')).map((f, i) => ({
	n: i + 1, order: f[0], gun: f[1], pile: f[1].slice(0, 20), conn: Number(f[1].slice(20)),
	start: parseTs(f[2]), end: parseTs(f[3]), energy: Number(f[4]), reason: f[5],
}));

let dayStart;
let dayEnd;
const appStarts = new Map();	// pile's order number -> member
for (const f of readLines(planFile)) {
	if (f[0] === 'd') { dayStart = Number(f[1]); dayEnd = Number(f[2]); }
	else if (f[0] === 'h') lines[Number(f[1]) - 1].step = Number(f[2]);
	else if (f[0] === 'r') records[Number(f[1]) - 1].step = f[2] === '' || f[2] === '\\N' ? null : Number(f[2]);
	else if (f[0] === 'a') appStarts.set(f[1], Number(f[2]));
}

// What each session's StartTransaction says: the pile's own start (its
// first charging sample, wherever that line travels in the file) and its
// register then.  A pile that reads 0 coming back online still knows its
// register: its StartTransaction carries the last real reading.
const sessionStart = new Map();	// pile's order number -> { ts, meter }
{
	const byGun = new Map();
	for (const l of lines) {
		if (!byGun.has(l.gun)) byGun.set(l.gun, []);
		byGun.get(l.gun).push(l);
	}
	for (const gunLines of byGun.values()) {
		gunLines.sort((a, b) => a.ts - b.ts || a.n - b.n);
		let real = null;		// the highest real reading so far
		for (const l of gunLines) {
			if (l.status === 'charging' && l.order && !sessionStart.has(l.order))
				sessionStart.set(l.order, { ts: l.ts, meter: l.meter > 0 ? l.meter : (real || 0) });
			if (l.meter > 0 && (real === null || l.meter > real)) real = l.meter;
		}
	}
}

// ---------------------------------------------------------------- psql

// One psql for the whole replay (a connection per call would cost more than
// the sweep itself): statements in turn, each answered up to a marker line.
const psqlProc = spawn('psql', ['-X', '-q', '-tA', '-v', 'ON_ERROR_STOP=1', '-d', db], { stdio: ['pipe', 'pipe', 'pipe'] });
let psqlOut = '';
let psqlErr = '';
let psqlQueue = Promise.resolve();
let psqlWaiting = null;
let psqlSeq = 0;
psqlProc.stdout.on('data', (d) => {
	psqlOut += d;
	if (psqlWaiting) psqlWaiting();
});
psqlProc.stderr.on('data', (d) => { psqlErr += d; });
psqlProc.on('exit', () => { if (psqlWaiting) psqlWaiting(); });
function psql(sql) {
	const run = () => new Promise((resolve, reject) => {
		const marker = `__replay_${++psqlSeq}__`;
		psqlWaiting = () => {
			const i = psqlOut.indexOf(`${marker}\n`);
			if (i >= 0) {
				const out = psqlOut.slice(0, i).trim();
				psqlOut = psqlOut.slice(i + marker.length + 1);
				psqlWaiting = null;
				resolve(out);
			} else if (psqlProc.exitCode !== null) {
				psqlWaiting = null;
				reject(new Error(`psql: ${psqlErr}\n${sql}`));
			}
		};
		psqlProc.stdin.write(`${sql};\n\\echo ${marker}\n`);
	});
	const p = psqlQueue.then(run);
	psqlQueue = p.catch(() => {});
	return p;
}
const lit = (s) => `'${String(s).replace(/'/g, "''")}'`;
const tsLit = (ms) => `${lit(cp.iso(ms))}::timestamptz`;

// ---------------------------------------------------------------- OCPP

const stats = {
	messages: {}, callerrors: 0, resends: 0, reconnects: 0, refused: {}, lines_of_refused_piles: 0,
	remote_starts: 0, remote_stops: 0, starts_unknown_card: 0,
};
const failures = [];
const count = (action) => { stats.messages[action] = (stats.messages[action] || 0) + 1; };

// StatusNotification's status and errorCode for a heartbeat's status and
// fault code (the bridge's mapping, docs/bridge.md, read backwards).
const OCPP_STATUS = { idle: 'Available', plugged: 'Preparing', charging: 'Charging', suspended: 'SuspendedEV',
	occupied: 'Finishing', fault: 'Faulted', offline: 'Unavailable' };
const ERROR_CODES = ['ConnectorLockFailure', 'EVCommunicationError', 'GroundFailure', 'HighTemperature',
	'InternalError', 'LocalListConflict', 'OverCurrentFailure', 'PowerMeterFailure', 'PowerSwitchFailure',
	'ReaderFailure', 'ResetFailure', 'UnderVoltage', 'OverVoltage', 'WeakSignal'];
const errorCode = (fault) => (!fault ? 'NoError' : ERROR_CODES[fault - 1] || 'OtherError');
const STOP_REASON = { 'stopped by user': 'Local' };	// the car done, full or at its limit: unplugged

// One meterValue of a line: the register (Wh), power (W) and state of
// charge it has, at the line's own time.
function meterValue(l, context) {
	const sv = [];
	if (l.meter !== null) sv.push({ value: String(l.meter), measurand: 'Energy.Active.Import.Register', unit: 'Wh', context });
	if (l.power !== null) sv.push({ value: String(l.power), measurand: 'Power.Active.Import', unit: 'W', context });
	if (l.soc !== null) sv.push({ value: String(l.soc), measurand: 'SoC', unit: 'Percent', location: 'EV', context });
	return sv.length ? { timestamp: cp.iso(l.ts), sampledValue: sv } : null;
}

class ChargePoint {
	constructor(info) {
		this.info = info;
		this.cli = null;
		this.booted = false;
		this.status = {};		// connector -> what the last StatusNotification said
		this.tx = new Map();	// pile's order number -> { id, idTag, meterStart }
		this.lastTs = null;		// the newest time it has sent
		this.remoteWait = {};	// connector -> resolve of a RemoteStartTransaction awaited
		this.samples = {};		// connector -> { tx, meterValue: [...] } not yet sent
	}

	reconnect() {
		const cli = cp.client(url, this.info.id, { failures, callTimeoutMs: 10000 });
		cli.handle('RemoteStartTransaction', ({ params }) => {
			stats.remote_starts++;
			const w = this.remoteWait[params.connectorId];
			if (!w) return { status: 'Rejected' };
			delete this.remoteWait[params.connectorId];
			w(params);
			return { status: 'Accepted' };
		});
		// The replayed traffic says when each charge stops; a stop from the
		// platform (the balance guard) is counted, and the demo says so.
		cli.handle('RemoteStopTransaction', () => { stats.remote_stops++; return { status: 'Accepted' }; });
		return cli;
	}

	get connected() { return this.cli !== null && this.cli.state === 1; }

	async connect() {
		if (this.booted) stats.reconnects++;
		this.cli = this.reconnect();
		await this.cli.connect();
		if (!this.booted) {
			const kind = this.info.id.slice(13, 15) === '01' ? 'AC' : 'DC';
			await this.call('BootNotification', {
				chargePointVendor: 'evcharge-demo', chargePointModel: `${kind}${Math.round(this.info.power / 1000)}`,
				...(this.info.firmware ? { firmwareVersion: this.info.firmware } : {}),
			});
			this.booted = true;
		}
	}

	async disconnect() {
		if (this.cli) await this.cli.close({ code: 1000 }).catch(() => {});
		this.cli = null;
	}

	// A message answered at once (not a transaction message).
	async call(action, payload) {
		count(action);
		try {
			return await this.cli.call(action, payload);
		} catch (e) {
			stats.callerrors++;
			throw new Error(`${this.info.id} ${action}: ${e && e.message}`);
		}
	}

	// A transaction message: answered once stored, resent until it is.
	async durable(action, payload) {
		count(action);
		const before = this.resends || 0;
		const r = await cp.durable(this, action, payload, { timeoutMs: 10000, giveUpOnCallError: true });
		stats.resends += (this.resends || 0) - before;
		return r;
	}

	async start(order, conn, gun) {
		const s = sessionStart.get(order);
		let idTag = `PILE-${this.info.id.slice(15)}-${String(conn).padStart(3, '0')}`;
		const member = appStarts.get(order);
		let orderNo = null;
		if (member !== undefined) {
			// An app start: the member starts the charge from the app, the
			// platform tells the pile (RemoteStartTransaction), the pile
			// starts with the idTag it was given.
			const remote = new Promise((resolve) => { this.remoteWait[conn] = resolve; });
			orderNo = await psql(`SELECT evcharge.start_session(${lit(gun)}, ${member}, 'app')`);
			const params = await Promise.race([remote, cp.sleep(15000).then(() => null)]);
			if (!params) throw new Error(`no RemoteStartTransaction for ${orderNo} on ${gun}`);
			idTag = params.idTag;
		}
		const ans = await this.durable('StartTransaction', { connectorId: conn, idTag, meterStart: s.meter, timestamp: cp.iso(s.ts) });
		// A start at the pile whose idTag is no member's card is answered
		// Invalid; the pile charges on (StopTransactionOnInvalidId false),
		// as the traffic says it did, and nobody known pays.
		if (ans.idTagInfo.status !== 'Accepted') stats.starts_unknown_card++;
		const tx = { id: ans.transactionId, idTag, meterStart: s.meter };
		this.tx.set(order, tx);
		if (orderNo !== null)
			await psql(`UPDATE demo_day.app_start SET order_no = ${lit(orderNo)}, transaction_id = ${tx.id} WHERE pile_order_no = ${lit(order)}`);
		await this.call('StatusNotification', { connectorId: conn, errorCode: 'NoError', status: 'Charging', timestamp: cp.iso(s.ts) });
		this.status[conn] = 'charging/0';
		return tx;
	}

	// The samples of a transaction the pile holds: one MeterValues, a
	// meterValue per sample, each at its own time.
	async sendSamples(conn) {
		const q = this.samples[conn];
		if (!q) return;
		delete this.samples[conn];
		await this.durable('MeterValues', { connectorId: conn, transactionId: q.tx.id, meterValue: q.meterValue });
	}

	async flushSamples() {
		for (const conn of Object.keys(this.samples)) await this.sendSamples(Number(conn));
	}

	async line(l) {
		if (!this.connected) await this.connect();
		if (l.status === 'charging' && l.order) {
			let tx = this.tx.get(l.order);
			if (!tx) {
				await this.sendSamples(l.conn);
				tx = await this.start(l.order, l.conn, l.gun);
			}
			const mv = meterValue(l, 'Sample.Periodic');
			if (mv) {
				const q = this.samples[l.conn];
				if (q && q.tx !== tx) await this.sendSamples(l.conn);
				if (!this.samples[l.conn]) this.samples[l.conn] = { tx, meterValue: [] };
				this.samples[l.conn].meterValue.push(mv);
				if (this.samples[l.conn].meterValue.length >= SAMPLES_PER_MESSAGE) await this.sendSamples(l.conn);
			}
		} else {
			await this.sendSamples(l.conn);
			const key = `${l.status}/${l.fault || 0}`;
			if (this.status[l.conn] !== key) {
				await this.call('StatusNotification', {
					connectorId: l.conn, errorCode: errorCode(l.fault), status: OCPP_STATUS[l.status] || 'Unavailable',
					timestamp: cp.iso(l.ts), ...(l.fault > 14 && l.fault !== 99 ? { vendorErrorCode: String(l.fault) } : {}),
				});
				this.status[l.conn] = key;
			}
			// The register between sessions: a clock-aligned meter value.
			const mv = meterValue(l, 'Sample.Clock');
			if (mv && l.meter !== null) await this.call('MeterValues', { connectorId: l.conn, meterValue: [mv] });
		}
		if (this.lastTs === null || l.ts > this.lastTs) this.lastTs = l.ts;
	}

	// The pile's own record of a session: its StopTransaction (sent again
	// when the record was sent twice).
	async record(r) {
		if (!this.connected) await this.connect();
		await this.sendSamples(r.conn);
		let tx = this.tx.get(r.order);
		if (!tx) {
			// A session the platform saw nothing of: the pile sends its
			// queued StartTransaction first.
			if (!sessionStart.has(r.order)) sessionStart.set(r.order, { ts: r.start, meter: 0 });
			tx = await this.start(r.order, r.conn, r.gun);
		}
		await this.durable('StopTransaction', {
			transactionId: tx.id, meterStop: tx.meterStart + r.energy, timestamp: cp.iso(r.end),
			reason: STOP_REASON[r.reason] || 'EVDisconnected', idTag: tx.idTag,
		});
	}
}

// A pile that is not registered: the bridge refuses it at the handshake.
function probeRefused(id) {
	return new Promise((resolve) => {
		const ws = new cp.WebSocket(`${url}/${id}`, ['ocpp1.6']);
		ws.on('unexpected-response', (req, res) => { res.resume(); resolve(res.statusCode); });
		ws.on('open', () => { ws.close(); resolve(101); });
		ws.on('error', () => resolve(0));
	});
}

// ---------------------------------------------------------------- the day

async function main() {
	const cps = new Map();
	for (const info of piles.values()) cps.set(info.id, new ChargePoint(info));
	const refused = new Set();
	for (const l of lines) {
		if (!cps.has(l.pile) && !refused.has(l.pile)) {
			refused.add(l.pile);
			const status = await probeRefused(l.pile);
			stats.refused[l.pile] = status;
			if (status === 101) throw new Error(`pile ${l.pile} is not registered, yet the bridge admitted it`);
		}
	}
	const byStep = (items) => {
		const m = new Map();
		for (const it of items) {
			if (!m.has(it.step)) m.set(it.step, []);
			m.get(it.step).push(it);
		}
		return m;
	};
	const linesAt = byStep(lines);
	const recordsAt = byStep(records);

	// Everything sent before is committed once a message the bridge answers
	// only after its commit comes back (the writer stores in arrival order).
	async function barrier() {
		const cpx = [...cps.values()].find((c) => c.connected);
		if (cpx) await cpx.durable('Authorize', { idTag: 'REPLAY-STEP' });
	}
	// One step: per pile, its lines in the order they arrived, then its
	// records; the piles side by side.
	async function step(hs, rs) {
		const work = new Map();
		const add = (id, f) => {
			if (!work.has(id)) work.set(id, []);
			work.get(id).push(f);
		};
		for (const l of hs) {
			const c = cps.get(l.pile);
			if (!c) { stats.lines_of_refused_piles++; continue; }
			add(l.pile, () => c.line(l));
		}
		for (const r of rs) {
			const c = cps.get(r.pile);
			if (c) add(r.pile, () => c.record(r));
		}
		await Promise.all([...work.entries()].map(async ([id, fs]) => {
			const c = cps.get(id);
			if (c.connected) await c.call('Heartbeat', {});
			for (const f of fs) await f();
			await c.flushSamples();
		}));
	}

	let t;
	const tm = { step: 0, barrier: 0, sweep: 0 };
	for (t = dayStart + STEP_MS; t <= dayEnd; t += STEP_MS) {
		const hs = linesAt.get(t) || [];
		const rs = recordsAt.get(t) || [];
		let t0 = Date.now();
		await step(hs, rs);
		tm.step += Date.now() - t0; t0 = Date.now();
		await barrier();
		tm.barrier += Date.now() - t0; t0 = Date.now();
		await psql(`INSERT INTO demo_day.sweep SELECT ${tsLit(t)}, ${hs.length}, ${rs.length}, s.went_offline, s.incidents
			FROM evcharge.sweep_offline(${tsLit(t)}) s`);
		tm.sweep += Date.now() - t0;
		// A pile silent longer than offline_after has lost its network: its
		// socket goes; it connects again with its next message.
		await Promise.all([...cps.values()].filter((c) => c.connected && c.lastTs !== null && t - c.lastTs > OFFLINE_MS)
			.map((c) => c.disconnect()));
	}
	// Where the time went (ms): sending the steps, waiting for their commits, sweeping.
	if (process.env.EV_REPLAY_TIMING) console.error(`replay: ${JSON.stringify(tm)}`);
	await psql(`INSERT INTO demo_day.lost SELECT * FROM evcharge.detect_lost_bills(${tsLit(dayEnd)})`);
	const late = recordsAt.get(null) || [];
	await step([], late);
	await barrier();
	await psql(`INSERT INTO demo_day.sweep VALUES (NULL, 0, ${late.length}, 0, 0)`);
	await Promise.all([...cps.values()].map((c) => c.disconnect()));

	stats.validation_failures = failures.length;
	stats.seconds = Math.round((Date.now() - began) / 1000);
	const rows = [];
	for (const [a, n] of Object.entries(stats.messages)) rows.push(`('message', ${lit(a)}, ${n})`);
	for (const [p, s] of Object.entries(stats.refused)) rows.push(`('refused', ${lit(`${p} HTTP ${s}`)}, 1)`);
	for (const k of ['callerrors', 'resends', 'reconnects', 'lines_of_refused_piles', 'remote_starts', 'remote_stops',
		'starts_unknown_card', 'validation_failures', 'seconds'])
		rows.push(`('replay', ${lit(k)}, ${stats[k]})`);
	await psql(`INSERT INTO demo_day.replay_summary (kind, what, n) VALUES ${rows.join(', ')}`);
	if (failures.length) console.error(`strict validation failures: ${failures.slice(0, 5).join('; ')}`);
}

main().then(() => { psqlProc.stdin.end(); process.exit(0); }, (e) => {
	console.error(`demo/replay.js: ${e && e.stack || e}`);
	process.exit(1);
});
