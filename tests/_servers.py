"""Small real HTTP servers on loopback for the tests (started and stopped by them)."""

import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@contextlib.contextmanager
def serve(handler_fn):
    """Run ``handler_fn(method, path, body) -> (status, bytes, delay_s[, trickle_s])`` on 127.0.0.1.

    With ``trickle_s``, the body is sent one byte at a time, ``trickle_s`` apart. A handler with a
    fourth parameter also gets the request headers (a dict); a dict last in its answer adds response headers.
    """
    import inspect
    import time

    wants_headers = len(inspect.signature(handler_fn).parameters) == 4

    class Handler(BaseHTTPRequestHandler):
        def _handle(self, method):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            args = (method, self.path, body, dict(self.headers)) if wants_headers else (method, self.path, body)
            status, payload, delay, *rest = handler_fn(*args)
            extra = rest.pop() if rest and isinstance(rest[-1], dict) else {}
            trickle = rest[0] if rest else 0
            if delay:
                time.sleep(delay)
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                for name, value in extra.items():
                    self.send_header(name, value)
                self.end_headers()
                if not trickle:
                    self.wfile.write(payload)
                for i in range(len(payload) if trickle else 0):
                    self.wfile.write(payload[i : i + 1])
                    self.wfile.flush()
                    time.sleep(trickle)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_GET(self):
            self._handle("GET")

        def do_POST(self):
            self._handle("POST")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def json_bytes(obj):
    return json.dumps(obj).encode("utf-8")
