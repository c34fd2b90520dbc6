"""A sample webhook receiver for docker-compose.yml's notifier: prints what it gets.

It stands in for Alertmanager, PagerDuty or Slack so that ``docker compose --profile
app up`` shows the notifier working end to end; swap the notifier's receiver for a
real one in ``deploy/notifier.yaml``.  Standard library only.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            shown = json.dumps(json.loads(body), indent=2)
        except ValueError:
            shown = body.decode(errors="replace")
        print(f"POST {self.path}\n{shown}", flush=True)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    print(f"sample receiver listening on :{port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Receiver).serve_forever()
