# A trace sink for benchmarks: accepts OTLP/HTTP (JSON) posts, counts spans, answers 200;
# with a file argument it also appends one line per span: trace id, name, start and end (ns).
import http.server, json, sys
DUMP = open(sys.argv[1], 'a') if len(sys.argv) > 1 else None
class H(http.server.BaseHTTPRequestHandler):
    spans = 0
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('content-length', 0)))
        try:
            d = json.loads(body)
            for r in d.get('resourceSpans', []):
                for s in r.get('scopeSpans', []):
                    for sp in s.get('spans', []):
                        H.spans += 1
                        if DUMP:
                            DUMP.write(f"{sp.get('traceId')}\t{sp.get('name')}\t{sp.get('startTimeUnixNano')}\t{sp.get('endTimeUnixNano')}\n")
        except Exception:
            pass
        self.send_response(200); self.send_header('content-length', '0'); self.end_headers()
        with open('/tmp/otlp-sink.count', 'w') as f: f.write(str(H.spans))
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(('127.0.0.1', 4318), H).serve_forever()
