#!/usr/bin/env python3
# test/integration/lib/ykc_pile.py: a YKC (云快充 1.5/1.6) pile for the
# bridge's integration test (bridge_ykc.sh).  No public YKC pile exists as a
# package, so this is our own, written from the protocol's public
# transcriptions: binary frames over TCP (0x68, length, sequence, encryption
# flag, type, body, CRC-16/MODBUS), BCD numbers, CP56Time2a times.
# Usage: ykc_pile.py SCENARIO HOST:PORT PILE_NO [JSON options]; prints one
# JSON object with what it saw.
import json
import socket
import struct
import sys
import time
from datetime import datetime, timedelta, timezone

TZ = timezone(timedelta(hours=8))		# the piles' clock: Beijing time


def crc16(data):
	crc = 0xFFFF
	for b in data:
		crc ^= b
		for _ in range(8):
			crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
	return crc


def frame(seq, ftype, body, enc=0, bad_crc=False, length=None):
	inner = struct.pack('<HBB', seq, enc, ftype) + body
	crc = crc16(inner) ^ (0xFFFF if bad_crc else 0)
	return bytes([0x68, length if length is not None else len(inner)]) + inner + struct.pack('<H', crc)


def bcd(digits, nbytes):
	digits = digits.rjust(2 * nbytes, '0')
	return bytes(int(digits[i:i + 2], 16) for i in range(0, 2 * nbytes, 2))


def unbcd(b):
	return b.hex()


def cp56(dt):
	dt = dt.astimezone(TZ)
	ms = dt.second * 1000 + dt.microsecond // 1000
	return struct.pack('<H', ms) + bytes([dt.minute, dt.hour, dt.day | (dt.isoweekday() << 5), dt.month, dt.year - 2000])


def uncp56(b):
	ms = b[0] | (b[1] << 8)
	return datetime(2000 + (b[6] & 0x7F), b[5] & 0x0F, b[4] & 0x1F, b[3] & 0x1F, b[2] & 0x3F, ms // 1000,
					(ms % 1000) * 1000, tzinfo=TZ)


class Pile:
	def __init__(self, addr, no, opt):
		host, port = addr.rsplit(':', 1)
		self.addr = (host, int(port))
		self.no = no
		self.opt = opt
		self.seq = 1
		self.sock = None
		self.buf = b''
		self.seen = []			# every frame the platform sent: (type, body)

	def connect(self):
		self.sock = socket.create_connection(self.addr, timeout=5)
		self.buf = b''

	def close(self):
		if self.sock:
			self.sock.close()
			self.sock = None

	def send(self, ftype, body, **kw):
		self.sock.sendall(frame(self.seq, ftype, body, **kw))
		self.seq = (self.seq + 1) & 0xFFFF
		return (self.seq - 1) & 0xFFFF

	def read(self, timeout):
		"""The next frame of the platform (type, seq, body), None on a timeout, 'closed' when closed."""
		end = time.time() + timeout
		while True:
			if len(self.buf) >= 2 and len(self.buf) >= 4 + self.buf[1]:
				n = 4 + self.buf[1]
				f, self.buf = self.buf[:n], self.buf[n:]
				assert f[0] == 0x68, 'platform frame without 0x68'
				assert struct.unpack('<H', f[-2:])[0] == crc16(f[2:-2]), 'platform frame with a wrong CRC'
				seq, enc, ftype = struct.unpack('<HBB', f[2:6])
				self.seen.append((ftype, f[6:-2]))
				return ftype, seq, f[6:-2]
			left = end - time.time()
			if left <= 0:
				return None
			self.sock.settimeout(left)
			try:
				d = self.sock.recv(4096)
			except socket.timeout:
				return None
			except ConnectionError:
				return 'closed'
			if not d:
				return 'closed'
			self.buf += d

	def expect(self, want, timeout=5.0):
		"""The body of the next frame of type want (others kept in seen), None if it does not come."""
		end = time.time() + timeout
		while time.time() < end:
			r = self.read(end - time.time())
			if r is None or r == 'closed':
				return r
			if r[0] == want:
				return r[2]
		return None

	def login(self, guns=2, ac=None, fw='YKC1.6.2'):
		if ac is None:
			ac = self.opt.get('ac', True)
		body = bcd(self.no, 7) + bytes([1 if ac else 0, guns, 0x10]) + fw.encode().ljust(8, b'\0')[:8] + \
			bytes([0]) + bcd('0' * 20, 10) + bytes([4])
		self.send(0x01, body)
		r = self.expect(0x02)
		if r in (None, 'closed'):
			return r
		if r[7] == 0:
			# The platform sets the clock after a login (0x56): answered 0x55.
			c = self.expect(0x56, 1.0)
			if c not in (None, 'closed'):
				self.send(0x55, c[:14])
		return {'pile': unbcd(r[:7]), 'result': r[7]}

	def heartbeat(self, gun=1):
		self.send(0x03, bcd(self.no, 7) + bcd('%02d' % gun, 1) + bytes([0]))
		return self.expect(0x04) is not None

	def realtime(self, serial, gun, status, plugged, wh, volts=750.0, amps=100.0, soc=50, fault=0):
		body = bcd(serial, 16) + bcd(self.no, 7) + bcd('%02d' % gun, 1) + bytes([status, 0, 1 if plugged else 0]) + \
			struct.pack('<HH', int(volts * 10), int(amps * 10)) + bytes([75]) + bytes(8) + bytes([soc, 70]) + \
			struct.pack('<HH', 1, 30) + struct.pack('<III', int(wh * 10), int(wh * 10), 0) + struct.pack('<H', fault)
		assert len(body) == 60
		self.send(0x13, body)

	def record(self, serial, gun, start, end, class_wh, meter_start_wh, start_type=2, card='1234567890123456'):
		total = sum(class_wh)
		body = bcd(serial, 16) + bcd(self.no, 7) + bcd('%02d' % gun, 1) + cp56(start) + cp56(end)
		for wh in class_wh:
			body += struct.pack('<IIII', 0, wh * 10, wh * 10, 0)
		body += (meter_start_wh * 10).to_bytes(5, 'little') + ((meter_start_wh + total) * 10).to_bytes(5, 'little')
		body += struct.pack('<III', total * 10, total * 10, 0) + b'LSVAB4180E2000001'
		body += bytes([start_type]) + cp56(end) + bytes([0x40]) + bcd(card, 8)
		assert len(body) == 158, len(body)
		return self.send(0x3B, body)

	def record_ack(self, timeout=5.0):
		r = self.expect(0x40, timeout)
		if r in (None, 'closed'):
			return r
		return {'serial': unbcd(r[:16]), 'result': r[16]}

	def model(self):
		"""0x09 → 0x0A: the billing model, decoded."""
		self.send(0x09, bcd(self.no, 7))
		r = self.expect(0x0A)
		if r in (None, 'closed'):
			return r
		return decode_model(r[7:])


def decode_model(m):
	prices = [struct.unpack('<I', m[2 + 4 * i:6 + 4 * i])[0] for i in range(8)]
	return {'id': unbcd(m[:2]), 'energy': [prices[2 * k] for k in range(4)], 'service': [prices[2 * k + 1] for k in range(4)],
			'classes': ''.join(str(c) for c in m[35:83])}


def serial_of(no, gun, n):
	return no + '%02d' % gun + datetime.now(TZ).strftime('%y%m%d%H%M%S') + '%04d' % n


# A session over a tariff boundary.  opt: gun, seconds (samples, one a
# second), whPerS, cross (unix time of the boundary, for the record's split),
# silentBeforeRecord (close the socket after charging, come back, log in and
# send the record then), resend (send the record again on the same
# connection), classes (the pile's own per-class energy, else split at cross).
def charge(p, opt):
	gun = opt.get('gun', 1)
	out = {}
	p.connect()
	out['login'] = p.login(guns=opt.get('guns', 2))
	out['heartbeat'] = p.heartbeat(gun)
	out['model'] = p.model() if opt.get('model', True) else None
	if 'waitUntil' in opt:
		while time.time() < opt['waitUntil']:
			p.heartbeat(gun)
			time.sleep(min(1.0, max(0.0, opt['waitUntil'] - time.time())))
	serial = opt.get('serial') or serial_of(p.no, gun, opt.get('n', 1))
	out['serial'] = serial
	p.realtime('0' * 32, gun, 2, True, 0)
	time.sleep(0.3)
	start = datetime.now(TZ)
	wh = 0
	before = 0
	for i in range(opt.get('seconds', 10) + 1):
		if i > 0:
			time.sleep(1.0)
			wh += opt.get('whPerS', 100)
		if opt.get('cross') and time.time() < opt['cross']:
			before = wh
		p.realtime(serial, gun, 3, True, wh)
	end = datetime.now(TZ)
	time.sleep(0.3)
	p.realtime(serial, gun, 2, True, wh)		# charging ended, still plugged
	time.sleep(0.3)
	classes = opt.get('classes') or ([0, 0, wh - before, before] if opt.get('cross') else [0, 0, wh, 0])
	if opt.get('silentBeforeRecord'):
		p.close()
		time.sleep(opt.get('silentSeconds', 2))
		p.connect()
		out['relogin'] = p.login(guns=opt.get('guns', 2))
	p.record(serial, gun, start, end, classes, 1000000)
	out['ack'] = p.record_ack()
	if opt.get('resend'):
		p.record(serial, gun, start, end, classes, 1000000)
		out['resendAck'] = p.record_ack()
	time.sleep(0.3)
	p.realtime('0' * 32, gun, 2, False, 0)		# unplugged
	time.sleep(0.5)
	out['energy'] = wh
	out['classes'] = classes
	out['clockSync'] = any(t == 0x56 for t, _ in p.seen)
	p.close()
	return out


# Log in and wait: for a remote start (0x34), answered, charged, then a
# remote stop (0x36), answered, and the record.
def remote(p, opt):
	gun = opt.get('gun', 1)
	out = {}
	p.connect()
	out['login'] = p.login(guns=opt.get('guns', 2))
	open(opt['readyFile'], 'w').write('ready')
	b = p.expect(0x34, opt.get('timeout', 15))
	if b in (None, 'closed'):
		out['start'] = b
		return out
	serial = unbcd(b[:16])
	out['start'] = {'serial': serial, 'pile': unbcd(b[16:23]), 'gun': unbcd(b[23:24]),
					'balance': struct.unpack('<I', b[40:44])[0]}
	p.send(0x33, bcd(serial, 16) + bcd(p.no, 7) + bcd('%02d' % gun, 1) + bytes([1, 0]))
	start = datetime.now(TZ)
	wh = 0
	stop = None
	p.realtime(serial, gun, 3, True, wh)
	for _ in range(opt.get('timeout', 15) * 2):
		wh += 10
		p.realtime(serial, gun, 3, True, wh)
		r = p.expect(0x36, 0.5)
		if r not in (None, 'closed'):
			stop = r
			break
	out['stop'] = {'pile': unbcd(stop[:7]), 'gun': unbcd(stop[7:8])} if stop else None
	if stop:
		p.send(0x35, bcd(p.no, 7) + bcd('%02d' % gun, 1) + bytes([1, 0]))
	end = datetime.now(TZ)
	p.realtime(serial, gun, 2, True, wh)
	p.record(serial, gun, start, end, [0, 0, wh, 0], 500000, start_type=1, card='0')
	out['ack'] = p.record_ack()
	p.realtime('0' * 32, gun, 2, False, 0)
	time.sleep(0.5)
	out['energy'] = wh
	p.close()
	return out


# Log in (opt: guns, ac): the answer, or how the connection ended.
def login(p, opt):
	p.connect()
	r = p.login(guns=opt.get('guns', 2), fw=opt.get('fw', 'YKC1.6.2'))
	after = p.read(1.0) if r not in (None, 'closed') else None
	p.close()
	return {'login': r, 'after': 'closed' if after == 'closed' else 'open'}


# Wait for a 0x58 (billing model set) after logging in.
def waitModel(p, opt):
	p.connect()
	out = {'login': p.login(guns=opt.get('guns', 2))}
	out['first'] = p.model()
	open(opt['readyFile'], 'w').write('ready')
	b = p.expect(0x58, opt.get('timeout', 20))
	out['pushed'] = decode_model(b[7:]) if b not in (None, 'closed') else b
	if out['pushed'] not in (None, 'closed'):
		p.send(0x57, bcd(p.no, 7) + bytes([1]))
	time.sleep(0.3)
	p.close()
	return out


# Bad frames; each case on its own connection, what came back.
def bad(p, opt):
	out = {}
	hb = bcd(p.no, 7) + bcd('01', 1) + bytes([0])

	def case(name, logged, send):
		p.connect()
		if logged:
			p.login(guns=opt.get('guns', 2))
		send()
		r = p.read(1.5)
		if r is None:
			out[name] = 'nothing'
		elif r == 'closed':
			out[name] = 'closed'
		else:
			out[name] = '0x%02X' % r[0]
		if logged and r != 'closed':
			# still alive? a good heartbeat must be answered
			p.send(0x03, hb)
			out[name + 'Alive'] = p.expect(0x04, 2) not in (None, 'closed')
		p.close()

	case('beforeLogin', False, lambda: p.send(0x03, hb))
	case('crc', True, lambda: p.send(0x03, hb, bad_crc=True))
	case('shortBody', True, lambda: p.send(0x03, hb[:5]))
	case('unknownType', True, lambda: p.send(0x7F, hb))
	case('encrypted', True, lambda: p.send(0x03, hb, enc=1))
	case('startByte', True, lambda: p.sock.sendall(b'\x69\x0d' + bytes(15)))
	case('recordBeforeLogin', False, lambda: p.record('1' * 32, 1, datetime.now(TZ), datetime.now(TZ), [0, 0, 100, 0], 0))
	return out


SCENARIOS = {'charge': charge, 'remote': remote, 'login': login, 'waitModel': waitModel, 'bad': bad}

if __name__ == '__main__':
	scenario, addr, no = sys.argv[1:4]
	opt = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
	try:
		res = SCENARIOS[scenario](Pile(addr, no, opt), opt)
	except Exception as e:		# the test reads the error
		res = {'error': repr(e)}
	print(json.dumps(res, default=str))
