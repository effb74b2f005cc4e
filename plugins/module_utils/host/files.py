"""Files the daemons write on their host."""

from __future__ import annotations

import os
import tempfile


def atomic_write(path: str, text: str, mode: int) -> None:
    """Replace ``path`` with ``text`` (mode ``mode``) at once: a temporary file in the same folder, synced,
    then renamed over it, so a reader sees the old content or the new, never a part."""
    handle, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                                         dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
