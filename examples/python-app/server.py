"""A tiny app that reports what Grove gave it: the build's output and the runtime variables."""

import base64
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VARIABLES = [
    "PLATFORM_APPLICATION_NAME", "PLATFORM_BRANCH", "PLATFORM_ENVIRONMENT",
    "PLATFORM_ENVIRONMENT_TYPE", "PLATFORM_PROJECT", "PLATFORM_TREE_ID", "PLATFORM_APP_DIR",
    "PLATFORM_DOCUMENT_ROOT", "PLATFORM_PROJECT_ENTROPY", "MAGENTO_CLOUD_BRANCH", "GREETING", "PORT",
]


def decoded(name):
    value = os.environ.get(name)
    return json.loads(base64.b64decode(value)) if value else None


def app_dir_writable():
    try:
        with open(os.path.join(os.environ.get("PLATFORM_APP_DIR", "/app"), "probe"), "w"):
            return "writable"
    except OSError as error:
        return error.strerror


def mount_files():
    return sorted(os.listdir("var"))


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/write/"):
            # Writes a file into the `var` mount: it survives redeploys.
            with open(os.path.join("var", os.path.basename(self.path)), "w") as f:
                f.write("written by the app\n")
        with open("build-info.txt") as f:
            build = f.read().strip()
        body = json.dumps({
            "build": build,
            "variables": {name: os.environ.get(name) for name in VARIABLES},
            "routes": decoded("PLATFORM_ROUTES"),
            "relationships": decoded("PLATFORM_RELATIONSHIPS"),
            "app_dir": app_dir_writable(),
            "mount_files": mount_files(),
            "pid": os.getpid(),
        }, indent=2).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        print(self.address_string(), format % args, flush=True)


if __name__ == "__main__":
    port = int(os.environ["PORT"])
    print(f"listening on 127.0.0.1:{port}", flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
