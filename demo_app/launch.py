"""`pipeline app`: start the Streamlit comparison app on a workspace."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

APP = Path(__file__).with_name("app.py")


def app_command(workspace: Path, port: int, address: str | None = None) -> list[str]:
    """The `streamlit run` command line for the app (headless: no browser is opened, no usage statistics sent)."""
    bind = ["--server.address", address] if address else []
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false", *bind,
            "--", "--workspace", str(Path(workspace).resolve())]


def launch(workspace: Path, port: int, address: str = "127.0.0.1") -> int:
    """Run the app in the foreground until it is stopped (listening on `address` only); returns Streamlit's exit code."""
    process = subprocess.Popen(app_command(workspace, port, address))
    try:
        return process.wait()
    except KeyboardInterrupt:  # Streamlit got the same SIGINT and is shutting down
        try:
            return process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.terminate()
            return process.wait()
