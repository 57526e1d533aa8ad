"""Judge replies on disk, so that a rerun or a resumed run never asks the same question twice."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path


class JudgeCache:
    """Judge replies on disk: one sqlite row per (judge model, prompt), committed as it is written."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit (isolation_level=None): every INSERT is durable on its own, so a killed run
        # loses at most the replies still in flight.
        self._connection = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock:
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute(
                "CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
                "prompt TEXT NOT NULL, reply TEXT NOT NULL, created REAL NOT NULL)"
            )

    @staticmethod
    def key(model: str, prompt: str) -> str:
        return hashlib.sha256(json.dumps([model, prompt], ensure_ascii=False).encode("utf-8")).hexdigest()

    def get(self, model: str, prompt: str) -> str | None:
        with self._lock:
            row = self._connection.execute(
                "SELECT reply FROM replies WHERE key = ?", (self.key(model, prompt),)
            ).fetchone()
        return None if row is None else row[0]

    def put(self, model: str, prompt: str, reply: str) -> None:
        with self._lock:
            self._connection.execute(
                "INSERT OR REPLACE INTO replies (key, model, prompt, reply, created) VALUES (?, ?, ?, ?, ?)",
                (self.key(model, prompt), model, prompt, reply, time.time()),
            )

    def keys(self) -> set[str]:
        with self._lock:
            return {row[0] for row in self._connection.execute("SELECT key FROM replies")}

    def close(self) -> None:
        with self._lock:
            self._connection.close()
