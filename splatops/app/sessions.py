"""Per-browser-session work folders and cancellation flags."""

from __future__ import annotations

import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(tempfile.gettempdir()) / "splatops-app"


@dataclass
class Session:
    """What one browser session owns: a work folder and a cancel flag.

    Attributes:
        folder: a private temporary folder for this session's uploads and results.
        cancel: set by the Cancel button; long jobs poll it between steps.
    """

    folder: Path
    cancel: threading.Event = field(default_factory=threading.Event)

    def new_job_dir(self, kind: str) -> Path:
        """A fresh sub-folder for one job (``fit-1``, ``sim-2``, ...)."""
        n = sum(1 for _ in self.folder.glob(f"{kind}-*")) + 1
        path = self.folder / f"{kind}-{n}"
        path.mkdir(parents=True, exist_ok=False)
        return path


_sessions: dict[str, Session] = {}
_lock = threading.Lock()


def get_session(session_hash: str | None) -> Session:
    """Returns the session for a Gradio ``request.session_hash``, creating it once."""
    key = session_hash or "anonymous"
    with _lock:
        if key not in _sessions:
            ROOT.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix=f"{key[:12]}-", dir=ROOT))
            _sessions[key] = Session(folder)
        return _sessions[key]


def close_session(session_hash: str | None) -> None:
    """Cancels the session's jobs and deletes its folder (called on page unload)."""
    key = session_hash or "anonymous"
    with _lock:
        session = _sessions.pop(key, None)
    if session is not None:
        session.cancel.set()
        shutil.rmtree(session.folder, ignore_errors=True)
