"""Headless Chromium, driven by Playwright, on a page served from a local cross-origin-isolated server.

The server (127.0.0.1, a free port) serves a fixed set of routes only: named files under `/`, one
directory (the model) under `/model/`; every response carries COOP/COEP/CORP so the page is
cross-origin isolated (SharedArrayBuffer for wasm threads, 5 µs `performance.now()`). Nothing is
fetched from the network. One Playwright driver is shared by all pages of this process (its sync API
allows one per thread); each `ChromiumPage` has its own browser process and server.
"""

from __future__ import annotations

import mimetypes
import os
import shutil
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from pipeline.core.errors import RuntimeUnavailableError

# The real binary first: Debian's /usr/bin/chromium is a shell wrapper that also reads /etc/chromium.d.
CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")
CHROMIUM_MISSING = "Chromium not found: apt-get install chromium (or run `make setup`), or set CHROMIUM_PATH."
PLAYWRIGHT_MISSING = ("Playwright is not installed: pip install playwright (or run `make setup`); it drives the "
                      "system Chromium, so no `playwright install` is needed.")
# Quiet and offline (no host but 127.0.0.1 resolves); SwiftShader (software WebGL/WebGPU) allowed without a GPU.
FLAGS = ("--no-sandbox", "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--disable-quic", "--enable-unsafe-swiftshader",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
                     "Cross-Origin-Resource-Policy": "same-origin", "Cache-Control": "no-store"}
TYPES = {".js": "text/javascript", ".wasm": "application/wasm", ".json": "application/json", ".html": "text/html",
         ".bin": "application/octet-stream"}


def find_chromium() -> Path | None:
    """`$CHROMIUM_PATH`, else the first Chromium/Chrome binary found."""
    for candidate in filter(None, (os.environ.get("CHROMIUM_PATH"), *CHROMIUM_CANDIDATES)):
        found = candidate if Path(candidate).is_absolute() else shutil.which(candidate)
        if found and os.access(found, os.X_OK) and Path(found).is_file():
            return Path(found)
    return None


def playwright_installed() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


class IsolatedHandler(BaseHTTPRequestHandler):
    """A quiet request handler whose every response (error pages included) carries `headers`: cross-origin
    isolation by default, so pages get SharedArrayBuffer (wasm threads) and a fine `performance.now()`."""

    headers_sent: dict[str, str] = ISOLATION_HEADERS

    def end_headers(self) -> None:
        for name, value in self.headers_sent.items():
            self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def _handler(files: dict[str, Path], model_dir: Path | None) -> type[BaseHTTPRequestHandler]:
    class Handler(IsolatedHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = unquote(self.path.split("?", 1)[0])
            target = files.get(path)
            if target is None and model_dir is not None and path.startswith("/model/"):
                candidate = (model_dir / path[len("/model/"):]).resolve()
                target = candidate if candidate.is_relative_to(model_dir) else None
            if target is None or not target.is_file():
                self.send_error(404, f"not served: {path}")
                return
            body = target.read_bytes()
            self.send_response(200)
            kind = TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@dataclass
class LocalServer:
    """Serves `files` (URL path -> file) and `model_dir` under /model/ on 127.0.0.1, in a daemon thread."""

    files: dict[str, Path]
    model_dir: Path | None = None
    _server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        model_dir = self.model_dir.resolve() if self.model_dir else None
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.files, model_dir))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="tfjs-browser-http", daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


_driver: dict[str, Any] = {"playwright": None, "users": 0}


def _acquire_playwright() -> Any:
    if _driver["playwright"] is None:
        from playwright.sync_api import sync_playwright

        _driver["playwright"] = sync_playwright().start()
    _driver["users"] += 1
    return _driver["playwright"]


def _release_playwright() -> None:
    _driver["users"] -= 1
    if _driver["users"] <= 0 and _driver["playwright"] is not None:
        _driver["playwright"].stop()
        _driver["playwright"], _driver["users"] = None, 0


@dataclass
class ChromiumPage:
    """A headless Chromium with one page open on `LocalServer`'s `page_path`; `close()` ends both."""

    server: LocalServer
    page_path: str = "/"
    extra_flags: tuple[str, ...] = ()
    timeout_s: float = 60.0
    console: list[str] = field(default_factory=list)
    page: Any = None
    version: str = ""
    _browser: Any = None
    _devtools: Any = None
    _driver_held: bool = False

    def open(self) -> ChromiumPage:
        """Start the server and the browser and load the page; RuntimeUnavailableError names what failed."""
        executable = find_chromium()
        if executable is None:
            raise RuntimeUnavailableError(CHROMIUM_MISSING)
        if not playwright_installed():
            raise RuntimeUnavailableError(PLAYWRIGHT_MISSING)
        from playwright.sync_api import Error

        url = self.server.start() + self.page_path
        try:
            playwright = _acquire_playwright()
            self._driver_held = True
            self._browser = playwright.chromium.launch(executable_path=str(executable), headless=True,
                                                       args=[*FLAGS, *self.extra_flags], timeout=self.timeout_s * 1000)
            self.version = self._browser.version
            self.page = self._browser.new_page()
            self.page.on("console", lambda message: self.console.append(f"{message.type}: {message.text}"))
            self.page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))
            self.page.goto(url, wait_until="load", timeout=self.timeout_s * 1000)
        except Error as exc:
            self.close()
            raise RuntimeUnavailableError(
                f"Chromium ({executable}) could not start or open {url}: {_first_line(exc)}. Check that `chromium "
                "--headless --no-sandbox --dump-dom about:blank` runs, or reinstall it (apt-get install chromium)."
            ) from None
        except BaseException:
            self.close()
            raise
        return self

    def devtools(self) -> Any:
        """The page's DevTools (CDP) session, opened once: emulations set through it last while it is open."""
        if self._devtools is None:
            self._devtools = self.page.context.new_cdp_session(self.page)
        return self._devtools

    def emulate_cores(self, count: int) -> bool:
        """Make `navigator.hardwareConcurrency` report `count` (DevTools emulation); False if unsupported."""
        from playwright.sync_api import Error

        try:
            self.devtools().send("Emulation.setHardwareConcurrencyOverride", {"hardwareConcurrency": count})
        except Error:
            return False
        return True

    def throttle_cpu(self, rate: float) -> None:
        """Slow the page's CPU `rate` times (`Emulation.setCPUThrottlingRate`; 1 is no throttle).

        RuntimeUnavailableError when the browser refuses it: a device emulation that cannot be applied is never
        measured as if it were."""
        from playwright.sync_api import Error

        try:
            self.devtools().send("Emulation.setCPUThrottlingRate", {"rate": rate})
        except Error as exc:
            raise RuntimeUnavailableError(
                f"Chromium {self.version} refused Emulation.setCPUThrottlingRate({rate:g}) ({_first_line(exc)}), so "
                "the device's CPU speed cannot be emulated in the page; bench on the host profile or update Chromium."
            ) from None

    def call(self, expression: str, argument: Any = None) -> Any:
        """`page.evaluate(expression, argument)`; a crashed or closed page is RuntimeUnavailableError."""
        from playwright.sync_api import Error

        try:
            return self.page.evaluate(expression, argument)
        except Error as exc:
            tail = f"; console: {' | '.join(self.console[-3:])}" if self.console else ""
            raise RuntimeUnavailableError(
                f"the Chromium page failed ({_first_line(exc)}){tail}. It may have run out of memory or crashed; "
                "retry with fewer samples."
            ) from None

    def close(self) -> None:
        try:
            if self._browser is not None:
                self._browser.close()
        finally:
            self._browser = self.page = self._devtools = None
            if self._driver_held:
                self._driver_held = False
                _release_playwright()
            self.server.stop()
