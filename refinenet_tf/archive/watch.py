"""The progress line of a local run: Beam's workers are other processes, so the launcher counts the index masks
that appear in the (local) output folder; a worker publishes an image's index mask after its other files."""

from __future__ import annotations

import os
import threading
from collections.abc import Collection
from typing import TextIO

from refinenet_tf.progress import Progress


class MaskWatcher:
    """Polls ``folder`` every ``interval`` seconds for the index mask file names ``masks`` not there at the start,
    and shows how many have appeared on one :class:`~refinenet_tf.progress.Progress` line. Use it as a context
    manager around the run."""

    def __init__(self, folder: str, masks: Collection[str], interval: float = 1.0, stream: TextIO | None = None):
        self.folder, self.interval = folder, interval
        self.masks = set(masks)
        self.awaited = self.masks - self._present()
        self.progress = Progress(len(self.awaited), "segmented", stream=stream)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="archive-progress", daemon=True)

    def _present(self) -> set[str]:
        try:
            return self.masks.intersection(os.listdir(self.folder))
        except FileNotFoundError:
            return set()

    def poll(self) -> None:
        """Count the awaited masks present now."""
        appeared = len(self.awaited & self._present())
        if appeared > self.progress.count:
            self.progress.update(appeared - self.progress.count)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def __enter__(self) -> MaskWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self.poll()
        self.progress.close()
