"""A payment provider's and a partner's statement server for the tests.

HTTPS on 127.0.0.1 with the certificate given.  Every request must be signed
as evcharge signs it (X-Evcharge-Timestamp, X-Evcharge-Signature =
hex(HMAC-SHA256(secret, "GET\\n" + path + "\\n" + timestamp))), else 401.
Every statement is signed as docs/money.md ("Signatures") says:
X-Signature = hex(HMAC-SHA256(secret, "evcharge-statement-v1\\n" + source +
"\\n" + day + "\\n" + hex(SHA-256(body)))), source and day taken from the path:

  /<source>/provider/<day>.csv     the provider's statement (PROVIDER_CSV)
  /<source>/partner/<day>.csv      the partner's statement (PARTNER_CSV)
  /<source>/tampered/<day>.csv     the provider's, altered after signing
  /<source>/replay/<day>.csv       the provider's, signed for the day before
                                   (yesterday's statement replayed as today's)
  /<source>/othersource/<day>.csv  the provider's, signed for another source
  /<source>/bodyonly/<day>.csv     the provider's, signed as release 0.1.0 did
                                   (HMAC-SHA256 of the body alone)
  /<source>/slow/<day>.csv         answers after 30 s
  /<source>/redirect/<day>.csv     302 to the plain-http listener's statement
  /<source>/big/<day>.csv          a 2 MB statement, correctly signed
  anything else                    404

Besides HTTPS it listens with the same handler over plain http (so a test can
show that evcharge never sends it a request), and on a port that accepts
connections and never answers (a TLS handshake that never ends).  Each
request is logged to stderr as "<https|http> <path>".

usage: statement_server.py PORT CERT KEY SECRET PROVIDER_CSV PARTNER_CSV
(PORT 0: any free port).  Prints three lines: the https port, the plain http
port and the silent port.
"""
import datetime
import hashlib
import hmac
import http.server
import socket
import ssl
import sys
import threading
import time

port, cert, key, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4].encode()
files = {"provider": sys.argv[5], "partner": sys.argv[6]}
plain_port = None


def mac(data):
    return hmac.new(secret, data, hashlib.sha256).hexdigest()


def sign(source, day, body):
    """The statement signature of evcharge 0.2.0: source, day and body."""
    covered = "evcharge-statement-v1\n%s\n%s\n%s" % (source, day, hashlib.sha256(body).hexdigest())
    return mac(covered.encode())


def read(kind):
    with open(files[kind], "rb") as f:
        return f.read()


class Handler(http.server.BaseHTTPRequestHandler):
    scheme = "https"

    def reply(self, status, body, signature=None, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", "text/csv; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if signature is not None:
            self.send_header("X-Signature", signature)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        sys.stderr.write("%s %s\n" % (self.scheme, self.path))
        sys.stderr.flush()
        ts = self.headers.get("X-Evcharge-Timestamp", "")
        want = mac(("GET\n%s\n%s" % (self.path, ts)).encode())
        if not hmac.compare_digest(want, self.headers.get("X-Evcharge-Signature", "")) or \
                not ts.isdigit() or abs(time.time() - int(ts)) > 300:
            self.reply(401, b"bad signature\n")
            return
        parts = self.path.strip("/").split("/")
        if len(parts) != 3 or not parts[2].endswith(".csv"):
            self.reply(404, b"not found\n")
            return
        source, route, day = parts[0], parts[1], parts[2][:-4]
        try:
            yesterday = (datetime.date.fromisoformat(day) - datetime.timedelta(days=1)).isoformat()
        except ValueError:
            self.reply(404, b"not found\n")
            return
        if route in files:
            body = read(route)
            self.reply(200, body, sign(source, day, body))
        elif route == "tampered":
            body = read("provider")
            self.reply(200, body.replace(b"100.00", b"900.00"), sign(source, day, body))
        elif route == "replay":
            body = read("provider")
            self.reply(200, body, sign(source, yesterday, body))
        elif route == "othersource":
            body = read("provider")
            self.reply(200, body, sign("someone-else", day, body))
        elif route == "bodyonly":
            body = read("provider")
            self.reply(200, body, mac(body))
        elif route == "slow":
            time.sleep(30)
            body = b"provider_txn,account_id,amount,paid_at\n"
            self.reply(200, body, sign(source, day, body))
        elif route == "redirect":
            self.reply(302, b"moved\n", None,
                       [("Location", "http://127.0.0.1:%d/%s/provider/%s.csv" % (plain_port, source, day))])
        elif route == "big":
            body = b"provider_txn,account_id,amount,paid_at\n" + b"#" * (2 * 1024 * 1024) + b"\n"
            self.reply(200, body, sign(source, day, body))
        else:
            self.reply(404, b"not found\n")

    def log_message(self, *args):
        pass


class PlainHandler(Handler):
    scheme = "http"


def serve(server):
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()


def silent():
    """Accepts connections and never answers: a handshake that never ends."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    held = []

    def loop():
        while True:
            conn, _ = s.accept()
            held.append(conn)
    threading.Thread(target=loop, daemon=True).start()
    return s.getsockname()[1]


tls = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
tls.socket = context.wrap_socket(tls.socket, server_side=True)
plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), PlainHandler)
plain_port = plain.server_address[1]
serve(plain)
hold_port = silent()
print(tls.server_address[1], plain_port, hold_port, sep="\n", flush=True)
tls.daemon_threads = True
tls.serve_forever()
