// test/integration/lib/ocpp_pile.js: OCPP 1.6J charge points for the bridge's
// integration test (bridge_ocpp.sh), built on the npm package ocpp-rpc in
// strict mode: every call we make and every answer the bridge gives is
// checked against the spec's JSON schemas, and a failure of that check fails
// the scenario.  Usage: node ocpp_pile.js SCENARIO URL PILE [JSON options];
// prints one JSON object with what it saw.
'use strict';
const path = require('path');
const fs = require('fs');
// The charge point itself (ocpp-rpc, strict mode, resends) is shared with
// the demo's replay: scripts/ocpp_charge_point.js.
const cp = require(path.join(__dirname, '..', '..', '..', 'scripts', 'ocpp_charge_point.js'));
const { WebSocket, iso, sleep } = cp;

const [scenario, url, pile, optJson] = process.argv.slice(2);
const opt = optJson ? JSON.parse(optJson) : {};
const failures = [];

function client(extra = {}) {
	return cp.client(url, pile, { password: opt.password, ca: opt.ca, failures }, extra);
}

// A call that a charge point queues and resends until it is answered (OCPP
// requires it of transaction messages): on a timeout or a lost connection,
// reconnect and send it again.
function durable(state, method, params) {
	state.reconnect = () => client();
	return cp.durable(state, method, params, { timeoutMs: opt.callTimeoutMs || 3000 });
}

function meter(ts, wh, extra = true) {
	const sv = [{ value: String(wh), measurand: 'Energy.Active.Import.Register', unit: 'Wh', context: 'Sample.Periodic' }];
	if (extra) {
		sv.push({ value: '7.0', measurand: 'Power.Active.Import', unit: 'kW' });
		sv.push({ value: '230.5', measurand: 'Voltage', unit: 'V' });
		sv.push({ value: '30.4', measurand: 'Current.Import', unit: 'A' });
		sv.push({ value: '55', measurand: 'SoC', unit: 'Percent', location: 'EV' });
	}
	return { timestamp: iso(ts), sampledValue: sv };
}

// A whole session: boot, plug, start, a sample a minute, stop, unplug.
// opt: start (ISO), minutes, whPerMin, meterStart, connector, idTag,
// pauseAfter (samples, then wait for the file opt.resumeFile, writing
// opt.midFile first), stopAfterSamples (no stop: leave it charging).
async function charge() {
	const state = { cli: client() };
	await state.cli.connect();
	const t0 = Date.parse(opt.start);
	const c = opt.connector || 1;
	const out = {};
	const boot = await state.cli.call('BootNotification', {
		chargePointVendor: 'evcharge-test', chargePointModel: 'AC7', firmwareVersion: opt.firmware || 'AC-2.3.1',
	});
	out.boot = { status: boot.status, interval: boot.interval, clockSkewMs: Math.abs(Date.parse(boot.currentTime) - Date.now()) };
	out.heartbeat = !!(await state.cli.call('Heartbeat', {})).currentTime;
	await state.cli.call('StatusNotification', { connectorId: c, errorCode: 'NoError', status: 'Preparing', timestamp: iso(t0 - 60000) });
	let wh = opt.meterStart || 1000000;
	const start = await durable(state, 'StartTransaction', { connectorId: c, idTag: opt.idTag || '1234567890123456', meterStart: wh, timestamp: iso(t0) });
	out.transactionId = start.transactionId;
	out.startStatus = start.idTagInfo.status;
	await state.cli.call('StatusNotification', { connectorId: c, errorCode: 'NoError', status: 'Charging', timestamp: iso(t0) });
	for (let m = 1; m <= opt.minutes; m++) {
		wh += opt.whPerMin;
		await durable(state, 'MeterValues', { connectorId: c, transactionId: start.transactionId, meterValue: [meter(t0 + m * 60000, wh)] });
		if (opt.pauseAfter && m === opt.pauseAfter) {
			fs.writeFileSync(opt.midFile, 'mid');
			if (opt.resumeFile) while (!fs.existsSync(opt.resumeFile)) await sleep(100);
		}
		if (opt.sampleDelayMs) await sleep(opt.sampleDelayMs);
	}
	const tEnd = t0 + opt.minutes * 60000;
	const stop = await durable(state, 'StopTransaction', {
		transactionId: start.transactionId, meterStop: wh, timestamp: iso(tEnd), reason: 'EVDisconnected', idTag: opt.idTag || '1234567890123456',
		transactionData: [meter(tEnd, wh, false)],
	});
	out.stop = stop;
	await state.cli.call('StatusNotification', { connectorId: c, errorCode: 'NoError', status: 'Finishing', timestamp: iso(tEnd) });
	await state.cli.call('StatusNotification', { connectorId: c, errorCode: 'NoError', status: 'Available', timestamp: iso(tEnd + 120000) });
	out.meterStop = wh;
	out.resends = state.resends || 0;
	await state.cli.close();
	return out;
}

// Resend a whole session's transaction messages on a new connection, as a
// pile does after a reboot: the same StartTransaction, MeterValues and
// StopTransaction again.
async function resend() {
	const r = await charge();
	const again = await charge();
	return { first: r.transactionId, again: again.transactionId };
}

// A connection the bridge must refuse: the HTTP status it answered (101
// when it was admitted) and how long the handshake took (ms);
// opt.password (and opt.user) for HTTP Basic.
async function refused() {
	return new Promise((resolve) => {
		const headers = opt.password ? { authorization: 'Basic ' + Buffer.from((opt.user || pile) + ':' + opt.password).toString('base64') } : {};
		const t0 = Date.now();
		const ws = new WebSocket(url + '/' + pile, ['ocpp1.6'], { headers, ...(opt.ca ? { ca: fs.readFileSync(opt.ca) } : {}) });
		ws.on('unexpected-response', (req, res) => {
			let body = '';
			res.on('data', (d) => { body += d; });
			res.on('end', () => resolve({ status: res.statusCode, body: body.trim(), challenge: res.headers['www-authenticate'] || null, ms: Date.now() - t0 }));
		});
		ws.on('open', () => { ws.close(); resolve({ status: 101, ms: Date.now() - t0 }); });
		ws.on('error', (e) => resolve({ status: 0, error: String(e) }));
	});
}

// Frames that are not what OCPP-J allows: the CALLERROR code of each, and
// that the connection still works afterwards.
async function badFrames() {
	const ws = new WebSocket(url + '/' + pile, ['ocpp1.6']);
	await new Promise((r, j) => { ws.on('open', r); ws.on('error', j); });
	const answers = [];
	ws.on('message', (m) => answers.push(JSON.parse(String(m))));
	const frames = [
		'this is not json',
		'{"an":"object"}',
		'[2,"b1","NoSuchAction",{}]',
		'[2,"b2","StartTransaction",{"connectorId":1,"idTag":"x","timestamp":"2026-01-01T00:00:00Z"}]',
		'[2,"b3","StartTransaction",{"connectorId":"1","idTag":"x","meterStart":0,"timestamp":"2026-01-01T00:00:00Z"}]',
		'[2,"b4","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Dancing"}]',
		'[2,"b5","Heartbeat",{"extra":1}]',
		'[2,"b6","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Available","timestamp":"yesterday"}]',
		'[2,"b7","RemoteStartTransaction",{"idTag":"x"}]',
		'[2,"b8","DataTransfer",{"vendorId":"acme"}]',
		'[2,"b9","Heartbeat",{}]',
	];
	for (const f of frames) { ws.send(f); await sleep(50); }
	await sleep(300);
	const big = await new Promise((resolve) => {
		ws.on('close', (code) => resolve(code));
		ws.send('[2,"big","DataTransfer",{"vendorId":"acme","data":"' + 'x'.repeat(70000) + '"}]');
	});
	return { answers, bigCloseCode: big };
}

// Connect, then wait until the bridge closes us: the close code.
async function waitClose() {
	const ws = new WebSocket(url + '/' + pile, ['ocpp1.6']);
	await new Promise((r, j) => { ws.on('open', r); ws.on('error', j); });
	if (opt.openFile) fs.writeFileSync(opt.openFile, 'open');
	return new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })));
}

// A pile started and stopped from the platform: boot, Available, then wait
// for a RemoteStartTransaction (answered Accepted, or Rejected with
// opt.reject); an accepted one is followed by StartTransaction with its
// idTag and a sample every opt.sampleDelayMs (opt.stepS seconds of the
// pile's clock, opt.whPerSample each, the clock starting opt.backS seconds
// ago) until a RemoteStopTransaction comes, then StopTransaction (Remote).
// Writes opt.openFile once booted; gives up after opt.waitMs.  With
// opt.stopOnly it only waits for a RemoteStopTransaction.
async function remote() {
	const state = { cli: client() };
	const c = opt.connector || 1;
	const out = { remoteStart: null, remoteStop: null };
	let startReq = null;
	let stopReq = null;
	state.cli.handle('RemoteStartTransaction', ({ params }) => {
		out.remoteStart = { at: Date.now(), params };
		startReq = params;
		return { status: opt.reject ? 'Rejected' : 'Accepted' };
	});
	state.cli.handle('RemoteStopTransaction', ({ params }) => {
		out.remoteStop = { at: Date.now(), params, meterWh: out.meterNow };
		stopReq = params;
		return { status: 'Accepted' };
	});
	await state.cli.connect();
	await state.cli.call('BootNotification', { chargePointVendor: 'evcharge-test', chargePointModel: 'AC22' });
	let t = Date.now() - (opt.backS || 600) * 1000;
	await state.cli.call('StatusNotification', { connectorId: c, errorCode: 'NoError', status: 'Available', timestamp: iso(t) });
	if (opt.openFile) fs.writeFileSync(opt.openFile, 'open');
	const deadline = Date.now() + (opt.waitMs || 15000);
	if (opt.stopOnly) {
		// Only a RemoteStopTransaction is expected (a command made while away).
		out.connectedAt = Date.now();
		while (!stopReq && Date.now() < deadline) await sleep(20);
		await sleep(300);
		await state.cli.close();
		return out;
	}
	while (!startReq && Date.now() < deadline) await sleep(20);
	if (!startReq || opt.reject) { await sleep(300); await state.cli.close(); return out; }
	t += 1000;
	await state.cli.call('StatusNotification', { connectorId: c, errorCode: 'NoError', status: 'Preparing', timestamp: iso(t) });
	let wh = opt.meterStart || 2000000;
	out.meterNow = wh;
	const start = await durable(state, 'StartTransaction', { connectorId: startReq.connectorId || c, idTag: startReq.idTag, meterStart: wh, timestamp: iso(t) });
	out.transactionId = start.transactionId;
	out.startStatus = start.idTagInfo.status;
	await state.cli.call('StatusNotification', { connectorId: c, errorCode: 'NoError', status: 'Charging', timestamp: iso(t) });
	out.samples = 0;
	while (!stopReq && Date.now() < deadline && out.samples < (opt.maxSamples || 200)) {
		t += (opt.stepS || 10) * 1000;
		wh += opt.whPerSample || 60;
		const mv = meter(t, wh);
		mv.sampledValue[1].value = String(opt.powerKw || 22);
		await durable(state, 'MeterValues', { connectorId: c, transactionId: start.transactionId, meterValue: [mv] });
		out.meterNow = wh;
		out.samples++;
		await sleep(opt.sampleDelayMs || 100);
	}
	out.stoppedRemotely = !!stopReq && stopReq.transactionId === start.transactionId;
	t += 1000;
	out.stop = await durable(state, 'StopTransaction', { transactionId: start.transactionId, meterStop: wh, timestamp: iso(t), reason: 'Remote' });
	out.meterStop = wh;
	await state.cli.call('StatusNotification', { connectorId: c, errorCode: 'NoError', status: 'Finishing', timestamp: iso(t) });
	await state.cli.call('StatusNotification', { connectorId: c, errorCode: 'NoError', status: 'Available', timestamp: iso(t + 60000) });
	await state.cli.close();
	return out;
}

// Connect (opt.password, opt.ca for wss://), boot and leave.
async function boot() {
	const cli = client();
	await cli.connect();
	const b = await cli.call('BootNotification', { chargePointVendor: 'evcharge-test', chargePointModel: 'AC7' });
	await cli.close();
	return { status: b.status };
}

// Authorize an idTag (opt.idTag) after a boot: the idTagInfo status.
async function authorize() {
	const cli = client();
	await cli.connect();
	await cli.call('BootNotification', { chargePointVendor: 'evcharge-test', chargePointModel: 'AC7' });
	const a = await cli.call('Authorize', { idTag: opt.idTag });
	await cli.close();
	return { status: a.idTagInfo.status };
}


// A StopTransaction with a transactionId the bridge never issued (-1), as a
// pile sends it after an offline start whose StartTransaction it never got
// answered: boot, Finishing on opt.connector, the stop with transactionData
// (a Transaction.Begin reading at opt.start and one a minute), the same stop
// again on a new connection (a resend after a reboot), then Available.
// With opt.sendStart the pile first sends a StartTransaction whose answer it
// then "loses" (the stop still says -1).
async function stopUnknown() {
	const state = { cli: client() };
	await state.cli.connect();
	const c = opt.connector || 1;
	const t0 = Date.parse(opt.start);
	const tEnd = t0 + opt.minutes * 60000;
	const wh0 = opt.meterStart || 3000000;
	const out = {};
	await state.cli.call('BootNotification', { chargePointVendor: 'evcharge-test', chargePointModel: 'AC7' });
	if (opt.sendStart) {
		const st = await durable(state, 'StartTransaction', { connectorId: c, idTag: opt.idTag || '1234567890123456', meterStart: wh0, timestamp: iso(t0) });
		out.lostTransactionId = st.transactionId;
	}
	await state.cli.call('StatusNotification', { connectorId: c, errorCode: 'NoError', status: 'Finishing', timestamp: iso(tEnd) });
	const data = [{ timestamp: iso(t0), sampledValue: [{ value: String(wh0), context: 'Transaction.Begin', measurand: 'Energy.Active.Import.Register', unit: 'Wh' }] }];
	for (let m = 1; m < opt.minutes; m++) data.push(meter(t0 + m * 60000, wh0 + m * opt.whPerMin, false));
	const wh = wh0 + opt.minutes * opt.whPerMin;
	data.push({ timestamp: iso(tEnd), sampledValue: [{ value: String(wh / 1000), context: 'Transaction.End', unit: 'kWh' }] });
	const stop = { transactionId: -1, meterStop: wh, timestamp: iso(tEnd), reason: 'Local', idTag: opt.idTag || '1234567890123456', transactionData: data };
	out.stop = await durable(state, 'StopTransaction', stop);
	await state.cli.close();
	state.cli = client();
	await state.cli.connect();
	out.again = await durable(state, 'StopTransaction', stop);
	await state.cli.call('StatusNotification', { connectorId: c, errorCode: 'NoError', status: 'Available', timestamp: iso(tEnd + 120000) });
	out.meterStop = wh;
	await state.cli.close();
	return out;
}

// opt.n Heartbeats sent at once on a raw socket: how many were answered and
// how many refused with GenericError (the per-connection rate limit).
async function burst() {
	const ws = new WebSocket(url + '/' + pile, ['ocpp1.6']);
	await new Promise((r, j) => { ws.on('open', r); ws.on('error', j); });
	const out = { ok: 0, genericError: 0, other: 0 };
	ws.on('message', (m) => {
		const a = JSON.parse(String(m));
		if (a[0] === 3) out.ok++;
		else if (a[0] === 4 && a[2] === 'GenericError') out.genericError++;
		else out.other++;
	});
	for (let i = 0; i < opt.n; i++) ws.send(JSON.stringify([2, 'h' + i, 'Heartbeat', {}]));
	const deadline = Date.now() + 5000;
	while (out.ok + out.genericError + out.other < opt.n && Date.now() < deadline) await sleep(20);
	ws.close();
	return out;
}

// opt.n StatusNotifications sent at once on a raw socket to a bridge with a
// small queue_max and a long flush_ms: how many were answered after
// opt.peekMs (before the writer's first flush) and when all were.
async function flood() {
	const ws = new WebSocket(url + '/' + pile, ['ocpp1.6']);
	await new Promise((r, j) => { ws.on('open', r); ws.on('error', j); });
	let answered = 0;
	ws.on('message', () => { answered++; });
	const t0 = Date.now();
	const base = Date.parse(opt.start);
	for (let i = 0; i < opt.n; i++) {
		ws.send(JSON.stringify([2, 'f' + i, 'StatusNotification',
			{ connectorId: 1, errorCode: 'NoError', status: 'Available', timestamp: iso(base + i * 1000) }]));
	}
	await sleep(opt.peekMs);
	const out = { atPeek: answered };
	while (answered < opt.n && Date.now() - t0 < 15000) await sleep(20);
	out.all = answered;
	out.allMs = Date.now() - t0;
	ws.close();
	return out;
}

// The same traffic as another pile's (bridge_ykc.sh: a YKC pile's session):
// opt.samples [[ISO time, Wh], ...] (the first is the start), opt.stop
// {ts, wh}, opt.unplug (ISO), opt.connector, opt.idTag.
async function samples() {
	const state = { cli: client() };
	await state.cli.connect();
	const c = opt.connector || 1;
	const s = opt.samples;
	await state.cli.call('BootNotification', { chargePointVendor: 'evcharge-test', chargePointModel: 'DC', firmwareVersion: 'OCPP-1.0' });
	await state.cli.call('StatusNotification', { connectorId: c, errorCode: 'NoError', status: 'Preparing', timestamp: iso(Date.parse(s[0][0]) - 1000) });
	const start = await durable(state, 'StartTransaction', { connectorId: c, idTag: opt.idTag || '1234567890123456', meterStart: s[0][1], timestamp: s[0][0] });
	await state.cli.call('StatusNotification', { connectorId: c, errorCode: 'NoError', status: 'Charging', timestamp: s[0][0] });
	for (const [ts, wh] of s.slice(1))
		await durable(state, 'MeterValues', { connectorId: c, transactionId: start.transactionId, meterValue: [meter(Date.parse(ts), wh, false)] });
	await durable(state, 'StopTransaction', { transactionId: start.transactionId, meterStop: opt.stop.wh, timestamp: opt.stop.ts, reason: 'EVDisconnected', idTag: opt.idTag || '1234567890123456' });
	await state.cli.call('StatusNotification', { connectorId: c, errorCode: 'NoError', status: 'Finishing', timestamp: opt.stop.ts });
	await state.cli.call('StatusNotification', { connectorId: c, errorCode: 'NoError', status: 'Available', timestamp: opt.unplug });
	await state.cli.close();
	return { transactionId: start.transactionId };
}

const scenarios = { samples, charge, resend, refused, badFrames, waitClose, remote, boot, authorize, stopUnknown, burst, flood };
scenarios[scenario]().then((r) => {
	r.validationFailures = failures;
	console.log(JSON.stringify(r));
	process.exit(0);
}, (e) => {
	console.log(JSON.stringify({ error: String(e && e.stack || e), validationFailures: failures }));
	process.exit(1);
});
