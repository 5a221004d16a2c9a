"""What every Firestore adapter shares: one client per adapter, made on first use."""

from __future__ import annotations

from google.cloud import firestore

# Per call: long enough for a loaded emulator, short enough that a stalled Firestore
# surfaces as a TransientError (redelivery) before Pub/Sub's ack deadline.
TIMEOUT = 10.0


class FirestoreAdapter:
    def __init__(self, project: str, database: str = "(default)") -> None:
        self._project = project
        self._database = database
        self._db: firestore.Client | None = None

    def _client(self) -> firestore.Client:
        # Lazy: a cold start that never reaches Firestore pays nothing for the channel.
        if self._db is None:
            self._db = firestore.Client(project=self._project, database=self._database)
        return self._db
