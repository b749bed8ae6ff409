"""A payment provider's and a partner's statement server for the tests.

HTTPS on 127.0.0.1 with the certificate given; every response body is signed
with X-Signature = hex(HMAC-SHA256(secret, body)), and every request must be
signed as evcharge signs it (X-Evcharge-Timestamp, X-Evcharge-Signature =
hex(HMAC-SHA256(secret, "GET\\n" + path + "\\n" + timestamp))), else 401.

  /provider/<day>.csv   the provider's statement (PROVIDER_CSV)
  /partner/<day>.csv    the partner's statement (PARTNER_CSV)
  /tampered/<day>.csv   a statement whose signature does not match its body
  /slow/<day>.csv       answers after 30 s
  anything else         404

usage: statement_server.py PORT CERT KEY SECRET PROVIDER_CSV PARTNER_CSV
(PORT 0: any free port; the port is printed on the first line)
"""
import hashlib
import hmac
import http.server
import ssl
import sys
import time

port, cert, key, secret = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4].encode()
files = {"provider": sys.argv[5], "partner": sys.argv[6]}


def sign(data):
    return hmac.new(secret, data, hashlib.sha256).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    def reply(self, status, body, signature=None):
        self.send_response(status)
        self.send_header("Content-Type", "text/csv; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Signature", signature if signature is not None else sign(body))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        ts = self.headers.get("X-Evcharge-Timestamp", "")
        want = sign(("GET\n%s\n%s" % (self.path, ts)).encode())
        if not hmac.compare_digest(want, self.headers.get("X-Evcharge-Signature", "")) or \
                not ts.isdigit() or abs(time.time() - int(ts)) > 300:
            self.reply(401, b"bad signature\n")
            return
        parts = self.path.strip("/").split("/")
        if len(parts) != 2 or not parts[1].endswith(".csv"):
            self.reply(404, b"not found\n")
            return
        kind = parts[0]
        if kind in files:
            with open(files[kind], "rb") as f:
                self.reply(200, f.read())
        elif kind == "tampered":
            with open(files["provider"], "rb") as f:
                body = f.read()
            self.reply(200, body.replace(b"100.00", b"900.00"), sign(body))
        elif kind == "slow":
            time.sleep(30)
            self.reply(200, b"provider_txn,account_id,amount,paid_at\n")
        else:
            self.reply(404, b"not found\n")

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
server.daemon_threads = True
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
