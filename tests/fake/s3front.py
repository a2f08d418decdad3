#!/usr/bin/env python3
"""s3front: a loopback S3 front for the tidemark tests (python3 stdlib only).

s3rver does not verify SigV4 signatures (TESTBED.md). This front sits
between the client and s3rver and:

* verifies every request's AWS Signature V4 from the spec (canonical request,
  string to sign, signing key; payload hash against the body), answering
  403 SignatureDoesNotMatch / AccessDenied / InvalidAccessKeyId, 400
  XAmzContentSHA256Mismatch, then forwards good requests to s3rver;
* injects faults on command: POST /__fault with a JSON body
  {"mode": "off"|"500"|"503"|"reset"|"stall"|"truncate"|"mix", "rate": 0.1,
   "stall_s": 10, "methods": ["GET", ...]}
  500 -> InternalError, 503 -> SlowDown, reset -> the connection is reset
  with no answer, stall -> nothing is sent for stall_s seconds, then the
  connection is closed, truncate -> the answer is forwarded with its full
  Content-Length but only half of the body (then the connection is reset),
  mix -> one of 500, 503, reset, truncate at random for each faulted request;
* counts: GET /__stats gives JSON counters.

Glacier semantics, like AWS: an object stored with x-amz-storage-class
GLACIER or DEEP_ARCHIVE (PUT, multipart upload) answers GET with 403
InvalidObjectState until POST ?restore (a RestoreRequest with Days and a
GlacierJobParameters Tier) was made and the restore delay passed
(--restore-delay seconds, default 2; Expedited takes a fifth of it); the
restore answers 202, then 409 RestoreAlreadyInProgress, then 200 once done;
403 InvalidObjectState for an object in another class. HEAD reports
x-amz-storage-class and x-amz-restore (ongoing-request="true"/"false").
POST /__glacier {"delay": S} changes the delay; GET /__stats counts
restores. Restore state lives in the front's memory only.

Admin paths (/__*) are not signed.

Usage: s3front.py --upstream http://127.0.0.1:PORT [--port 0] [--port-file F]
                  [--access-key S3RVER] [--secret-key S3RVER] [--region us-east-1]
       s3front.py --self-test   (the verifier against AWS's published examples)
"""
import argparse
import datetime
import hashlib
import hmac
import http.client
import http.server
import json
import random
import re
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse

AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request,\s*"
    r"SignedHeaders=([a-z0-9;\-]+),\s*Signature=([0-9a-f]{64})$")
MAX_BODY = 1 << 30
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-connection", "expect"}


def uri_encode(s, keep_slash):
    return urllib.parse.quote(s, safe="-_.~" + ("/" if keep_slash else ""))


def canonical_uri(raw_path):
    # S3: each segment URI-encoded once, no normalisation of the path
    return "/".join(uri_encode(urllib.parse.unquote(seg), False) for seg in raw_path.split("/"))


def canonical_query(raw_query):
    if not raw_query:
        return ""
    pairs = []
    for part in raw_query.split("&"):
        if part == "":
            continue
        k, _, v = part.partition("=")
        pairs.append((uri_encode(urllib.parse.unquote(k), False),
                      uri_encode(urllib.parse.unquote(v), False)))
    pairs.sort()
    return "&".join("%s=%s" % kv for kv in pairs)


def signing_key(secret, date, region, service):
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    k = hmac.new(k, region.encode(), hashlib.sha256).digest()
    k = hmac.new(k, service.encode(), hashlib.sha256).digest()
    return hmac.new(k, b"aws4_request", hashlib.sha256).digest()


def s3_error(code, message):
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>%s</Code><Message>%s</Message>'
            '</Error>' % (code, message)).encode()


class Front:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.fault = {"mode": "off", "rate": 0.0, "stall_s": 10, "methods": None}
        self.stats = {"requests": 0, "forwarded": 0, "rejected": 0, "faults": 0}
        self.rng = random.Random(args.seed)
        up = urllib.parse.urlsplit(args.upstream)
        self.up_host, self.up_port = up.hostname, up.port or 80
        self.local = threading.local()
        self.classes = {}     # key -> storage class
        self.pending_mp = {}  # key -> class of its multipart upload in progress
        self.restores = {}    # key -> time the restore is done
        self.restore_delay = float(getattr(args, "restore_delay", 2.0))
        self.stats["restores"] = 0
        self.stats["frozen_gets"] = 0

    def count(self, key):
        with self.lock:
            self.stats[key] += 1

    def pick_fault(self, method):
        with self.lock:
            f = dict(self.fault)
            if f["mode"] == "off" or (f["methods"] and method not in f["methods"]):
                return None
            if self.rng.random() >= f["rate"]:
                return None
            self.stats["faults"] += 1
            if f["mode"] == "mix":
                f["mode"] = self.rng.choice(["500", "503", "reset", "truncate"])
            return f

    def verify(self, method, raw_path, raw_query, headers, body):
        """Returns None if the signature is good, else (status, code, message)."""
        auth = headers.get("Authorization")
        if not auth:
            return (403, "AccessDenied", "unsigned request")
        m = AUTH_RE.match(auth.strip())
        if not m:
            return (400, "AuthorizationHeaderMalformed", "bad Authorization header")
        akid, date, region, service, signed, sig = m.groups()
        if akid != self.args.access_key:
            return (403, "InvalidAccessKeyId", "unknown access key")
        if region != self.args.region or service != "s3":
            return (400, "AuthorizationHeaderMalformed", "wrong region or service")
        amz_date = headers.get("x-amz-date", "")
        if not re.match(r"^\d{8}T\d{6}Z$", amz_date) or amz_date[:8] != date:
            return (403, "AccessDenied", "bad x-amz-date")
        if self.args.max_skew > 0:
            t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
                tzinfo=datetime.timezone.utc)
            if abs((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds()) > \
                    self.args.max_skew:
                return (403, "RequestTimeTooSkewed", "request time too skewed")
        names = signed.split(";")
        if names != sorted(names) or "host" not in names or "x-amz-content-sha256" not in names \
                or "x-amz-date" not in names:
            return (403, "AccessDenied", "host, x-amz-date and x-amz-content-sha256 must be signed")
        payload = headers.get("x-amz-content-sha256", "")
        if payload != "UNSIGNED-PAYLOAD":
            if payload != hashlib.sha256(body).hexdigest():
                return (400, "XAmzContentSHA256Mismatch", "payload hash does not match the body")
        canon_headers = ""
        for n in names:
            vals = headers.get_all(n)
            if vals is None:
                return (403, "AccessDenied", "signed header %s missing" % n)
            v = ",".join(" ".join(x.split()) for x in vals)
            canon_headers += "%s:%s\n" % (n, v)
        creq = "\n".join([method, canonical_uri(raw_path), canonical_query(raw_query),
                          canon_headers, signed, payload])
        scope = "%s/%s/%s/aws4_request" % (date, region, service)
        sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(creq.encode()).hexdigest()])
        want = hmac.new(signing_key(self.args.secret_key, date, region, service), sts.encode(),
                        hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig):
            if self.args.verbose:
                sys.stderr.write("s3front: signature mismatch\n--- canonical request\n%s\n"
                                 "--- string to sign\n%s\n" % (creq, sts))
            return (403, "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature you "
                    "provided.")
        return None

    ARCHIVED = ("GLACIER", "DEEP_ARCHIVE")

    def storage_class(self, key, raw_path):
        """The class of an object: remembered from its upload, else asked
        of s3rver (which keeps it and returns it on HEAD). None if absent."""
        with self.lock:
            if key in self.classes:
                return self.classes[key]
        try:
            c = self.upstream()
            c.request("HEAD", raw_path, headers={"Host": "%s:%d" % (self.up_host, self.up_port)})
            r = c.getresponse()
            r.read()
        except (http.client.HTTPException, OSError):
            self.upstream(fresh=True)
            return "STANDARD"
        if r.status == 404:
            return None
        sc = r.getheader("x-amz-storage-class") or "STANDARD"
        with self.lock:
            self.classes[key] = sc
        return sc

    def restore_state(self, key):
        """None (no restore asked), "ongoing" or "done"."""
        with self.lock:
            st = self.restores.get(key)
        if st is None:
            return None
        return "done" if time.time() >= st else "ongoing"

    def object_state_hook(self, method, raw_path, raw_query, headers, body):
        """Answer for the object instead of s3rver (GLACIER semantics).
        Returns None to forward, (status, code, message) for an error, or
        (status, headers, body) for a success answered here."""
        key = urllib.parse.unquote(raw_path)
        q = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
        if method == "POST" and "restore" in q:
            sc = self.storage_class(key, raw_path)
            if sc is None:
                return (404, "NoSuchKey", "The specified key does not exist.")
            if sc not in self.ARCHIVED:
                return (403, "InvalidObjectState",
                        "Restore is not allowed for the object's current storage class")
            st = self.restore_state(key)
            if st == "ongoing":
                return (409, "RestoreAlreadyInProgress", "Object restore is already in progress")
            if st == "done":
                return (200, [], b"")
            m = re.search(rb"<Tier>(\w+)</Tier>", body)
            tier = m.group(1).decode() if m else "Standard"
            if tier not in ("Expedited", "Standard", "Bulk"):
                return (400, "MalformedXML", "bad Tier")
            delay = self.restore_delay / 5.0 if tier == "Expedited" else self.restore_delay
            with self.lock:
                self.restores[key] = time.time() + delay
                self.stats["restores"] += 1
            return (202, [], b"")
        if method == "GET" and not any(k in q for k in ("uploads", "uploadId", "list-type")) \
                and key.count("/") >= 2:
            sc = self.storage_class(key, raw_path)
            if sc in self.ARCHIVED and self.restore_state(key) != "done":
                with self.lock:
                    self.stats["frozen_gets"] += 1
                return (403, "InvalidObjectState",
                        "The operation is not valid for the object's storage class")
        return None

    def note_write(self, method, raw_path, raw_query, headers, status):
        """Remember the class of what was written (after s3rver said yes)."""
        if status >= 300:
            return
        key = urllib.parse.unquote(raw_path)
        q = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
        sc = headers.get("x-amz-storage-class") or "STANDARD"
        with self.lock:
            if method == "PUT" and "partNumber" not in q:
                self.classes[key] = sc
                self.restores.pop(key, None)
            elif method == "POST" and "uploads" in q:
                self.pending_mp[key] = sc
            elif method == "POST" and "uploadId" in q:
                self.classes[key] = self.pending_mp.pop(key, "STANDARD")
                self.restores.pop(key, None)
            elif method == "DELETE":
                self.classes.pop(key, None)
                self.restores.pop(key, None)

    def restore_header(self, raw_path):
        key = urllib.parse.unquote(raw_path)
        st = self.restore_state(key)
        if st == "ongoing":
            return 'ongoing-request="true"'
        if st == "done":
            return 'ongoing-request="false", expiry-date="Fri, 31 Dec 2100 00:00:00 GMT"'
        return None

    def upstream(self, fresh=False):
        c = getattr(self.local, "conn", None)
        if c is None or fresh:
            if c is not None:
                c.close()
            c = http.client.HTTPConnection(self.up_host, self.up_port, timeout=120)
            self.local.conn = c
        return c

    def forward(self, method, target, headers, body):
        out = {}
        for k, v in headers.items():
            if k.lower() in HOP_BY_HOP:
                continue
            out[k] = v
        out["Content-Length"] = str(len(body))
        for attempt in range(2):
            try:
                c = self.upstream(fresh=attempt > 0)
                c.request(method, target, body=body if body or method in ("PUT", "POST") else None,
                          headers=out)
                r = c.getresponse()
                data = r.read()
                return r.status, r.reason, r.getheaders(), data
            except (http.client.HTTPException, OSError):
                if attempt:
                    raise
        raise RuntimeError("unreachable")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "s3front/1"
    front = None  # set in main

    def log_message(self, fmt, *a):
        if self.front.args.verbose:
            sys.stderr.write("s3front: " + (fmt % a) + "\n")

    def send_xml(self, status, code, message, head=False):
        body = s3_error(code, message)
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length", "0") or "0")
        if n < 0 or n > MAX_BODY:
            raise ValueError("bad Content-Length")
        if self.headers.get("Transfer-Encoding"):
            raise ValueError("chunked request bodies are not supported")
        data = b""
        while len(data) < n:
            chunk = self.rfile.read(n - len(data))
            if not chunk:
                raise ValueError("short body")
            data += chunk
        return data

    def reset(self):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def admin(self, method, path, body):
        f = self.front
        if path == "/__fault" and method == "POST":
            cmd = json.loads(body or b"{}")
            mode = cmd.get("mode", "off")
            if mode not in ("off", "500", "503", "reset", "stall", "truncate", "mix"):
                return self.send_xml(400, "InvalidArgument", "unknown mode")
            with f.lock:
                f.fault = {"mode": mode, "rate": float(cmd.get("rate", 1.0)),
                           "stall_s": float(cmd.get("stall_s", 10)),
                           "methods": cmd.get("methods")}
            out = b"{}"
        elif path == "/__glacier" and method == "POST":
            cmd = json.loads(body or b"{}")
            with f.lock:
                f.restore_delay = float(cmd.get("delay", f.restore_delay))
            out = b"{}"
        elif path == "/__stats":
            with f.lock:
                out = json.dumps(dict(f.stats, fault=f.fault)).encode()
        else:
            return self.send_xml(404, "NoSuchAdminPath", path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def handle_any(self):
        f = self.front
        method = self.command
        raw_path, _, raw_query = self.path.partition("?")
        head = method == "HEAD"
        try:
            body = self.read_body()
        except ValueError as e:
            self.close_connection = True
            return self.send_xml(400, "IncompleteBody", str(e), head)
        if raw_path.startswith("/__"):
            return self.admin(method, raw_path, body)
        f.count("requests")
        bad = f.verify(method, raw_path, raw_query, self.headers, body)
        if bad:
            f.count("rejected")
            return self.send_xml(*bad, head=head)
        fault = f.pick_fault(method)
        if fault and fault["mode"] == "500":
            return self.send_xml(500, "InternalError", "injected", head)
        if fault and fault["mode"] == "503":
            return self.send_xml(503, "SlowDown", "injected", head)
        if fault and fault["mode"] == "reset":
            return self.reset()
        if fault and fault["mode"] == "stall":
            time.sleep(fault["stall_s"])
            self.close_connection = True
            return None
        hooked = f.object_state_hook(method, raw_path, raw_query, self.headers, body)
        if hooked and isinstance(hooked[1], str):
            return self.send_xml(*hooked, head=head)
        if hooked:
            status, hdrs, data = hooked
            self.send_response(status)
            for k, v in hdrs:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if not head:
                self.wfile.write(data)
            return None
        try:
            status, reason, headers, data = f.forward(method, self.path, self.headers, body)
        except Exception as e:  # upstream down: what a gateway says
            return self.send_xml(502, "BadGateway", str(e), head)
        f.count("forwarded")
        f.note_write(method, raw_path, raw_query, self.headers, status)
        self.send_response(status, reason)
        if head and status == 200:
            rh = f.restore_header(raw_path)
            if rh:
                self.send_header("x-amz-restore", rh)
        clen = None
        for k, v in headers:
            if k.lower() in HOP_BY_HOP:
                continue
            if k.lower() == "content-length":
                clen = v
                continue
            self.send_header(k, v)
        if head:
            self.send_header("Content-Length", clen if clen is not None else "0")
            self.end_headers()
            return None
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if fault and fault["mode"] == "truncate" and len(data) > 1:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            return self.reset()
        self.wfile.write(data)
        return None

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def self_test():
    """Check the verifier against AWS's published SigV4 examples for S3 (S3
    API reference, "Signature Calculations for the Authorization Header"),
    and that a changed byte anywhere is refused. Returns 0 or 1."""
    import email.message

    class A:
        access_key = "AKIAIOSFODNN7EXAMPLE"
        secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        region = "us-east-1"
        max_skew = 0
        seed = 1
        verbose = False
        upstream = "http://127.0.0.1:1"

    empty = hashlib.sha256(b"").hexdigest()
    cred = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"
    examples = [
        ("GET", "/test.txt", "", b"",
         [("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9"),
          ("x-amz-content-sha256", empty), ("x-amz-date", "20130524T000000Z")],
         "host;range;x-amz-content-sha256;x-amz-date",
         "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
        ("PUT", "/test%24file.text", "", b"Welcome to Amazon S3.",
         [("Host", "examplebucket.s3.amazonaws.com"), ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
          ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
          ("x-amz-content-sha256",
           "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"),
          ("x-amz-date", "20130524T000000Z")],
         "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
         "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"),
        ("GET", "/", "lifecycle", b"",
         [("Host", "examplebucket.s3.amazonaws.com"), ("x-amz-content-sha256", empty),
          ("x-amz-date", "20130524T000000Z")],
         "host;x-amz-content-sha256;x-amz-date",
         "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"),
        ("GET", "/", "max-keys=2&prefix=J", b"",
         [("Host", "examplebucket.s3.amazonaws.com"), ("x-amz-content-sha256", empty),
          ("x-amz-date", "20130524T000000Z")],
         "host;x-amz-content-sha256;x-amz-date",
         "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
    ]
    front = Front(A())
    bad = 0

    def headers_of(pairs, auth):
        m = email.message.Message()
        for k, v in pairs:
            m[k] = v
        m["Authorization"] = auth
        return m

    for method, path, query, body, pairs, signed, sig in examples:
        auth = "%s SignedHeaders=%s,Signature=%s" % (cred, signed, sig)
        r = front.verify(method, path, query, headers_of(pairs, auth), body)
        if r is not None:
            print("self-test: %s %s?%s refused: %s" % (method, path, query, r))
            bad += 1
        wrong = sig[:-1] + ("0" if sig[-1] != "0" else "1")
        r = front.verify(method, path, query,
                         headers_of(pairs, "%s SignedHeaders=%s,Signature=%s" % (cred, signed, wrong)),
                         body)
        if r is None or r[1] != "SignatureDoesNotMatch":
            print("self-test: a wrong signature for %s %s was accepted" % (method, path))
            bad += 1
        if body:
            r = front.verify(method, path, query, headers_of(pairs, auth), body + b"!")
            if r is None or r[1] != "XAmzContentSHA256Mismatch":
                print("self-test: a changed body for %s %s was accepted" % (method, path))
                bad += 1
    print("self-test: %s" % ("ok" if not bad else "%d failures" % bad))
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream")
    ap.add_argument("--self-test", action="store_true",
                    help="check the verifier against AWS's published examples and exit")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--access-key", default="S3RVER")
    ap.add_argument("--secret-key", default="S3RVER")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--max-skew", type=int, default=900, help="seconds; 0 = no check")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--restore-delay", type=float, default=2.0,
                    help="seconds a GLACIER/DEEP_ARCHIVE restore takes (Expedited: a fifth)")
    args = ap.parse_args()
    if args.self_test:
        sys.exit(self_test())
    if not args.upstream:
        ap.error("--upstream is required")
    Handler.front = Front(args)
    srv = Server((args.host, args.port), Handler)
    port = srv.server_address[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as fh:
            fh.write("%d\n" % port)
        import os
        os.rename(args.port_file + ".tmp", args.port_file)
    sys.stdout.write("s3front listening on %s:%d\n" % (args.host, port))
    sys.stdout.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
