#!/usr/bin/env python3
"""Test double of QFS's webui/qfsstatus.py: qfsstatus.py server.conf (answers 200 on every path)."""
import configparser
import http.server
import os
import sys

config = configparser.ConfigParser()
config.read(sys.argv[1])
port = config.getint("webserver", "webServer.port")
assert os.path.isdir(config.get("webserver", "webServer.docRoot"))


class Status(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"QFS status (test double)\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


http.server.ThreadingHTTPServer(("", port), Status).serve_forever()
