"""An in-process LRU cache with TTL for online feature entries, invalidated by key.

Entries carry the store's per-key version. An invalidation names the key and the
version that replaced it, and the cache remembers that version as a floor for the
key: a read that started before the write and finishes after the invalidation brings
back the older version, and is not cached.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from forgeml.features.online_store import Change, Entry

CacheKey = tuple[str, str]  # (view, entity key)


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int
    invalidations: int
    evictions: int
    size: int

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class FeatureCache:
    def __init__(self, max_entries: int = 100_000, ttl_seconds: float = 60.0) -> None:
        self.max_entries = max_entries
        self.ttl_seconds = ttl_seconds
        self._entries: OrderedDict[CacheKey, tuple[float, Entry | None]] = OrderedDict()
        self._floors: OrderedDict[CacheKey, int] = OrderedDict()
        self._lock = threading.Lock()
        self._hits = self._misses = self._invalidations = self._evictions = 0

    def get_many(self, view: str, keys: Sequence[str]) -> list[tuple[bool, Entry | None]]:
        """(found, entry) per key; an entry of None is a cached "not in the store"."""
        now = time.monotonic()
        found: list[tuple[bool, Entry | None]] = []
        with self._lock:
            for key in keys:
                item = self._entries.get((view, key))
                if item is None or item[0] < now:
                    if item is not None:
                        del self._entries[(view, key)]
                    self._misses += 1
                    found.append((False, None))
                else:
                    self._entries.move_to_end((view, key))
                    self._hits += 1
                    found.append((True, item[1]))
        return found

    def put_many(self, view: str, keys: Sequence[str], entries: Sequence[Entry | None]) -> None:
        expires = time.monotonic() + self.ttl_seconds
        with self._lock:
            for key, entry in zip(keys, entries, strict=True):
                floor = self._floors.get((view, key))
                if floor is not None and (entry is None or entry[0] < floor):
                    continue  # read before a write we already heard about: stale
                self._entries[(view, key)] = (expires, entry)
                self._entries.move_to_end((view, key))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
                self._evictions += 1

    def invalidate(self, changes: list[Change] | None) -> None:
        """Drop the changed keys (None: everything, when changes may have been missed)."""
        with self._lock:
            if changes is None:
                self._invalidations += len(self._entries)
                self._entries.clear()
                self._floors.clear()
                return
            for view, key, version in changes:
                if self._entries.pop((view, key), None) is not None:
                    self._invalidations += 1
                if version > self._floors.get((view, key), -1):
                    self._floors[(view, key)] = version
                    self._floors.move_to_end((view, key))
            while len(self._floors) > self.max_entries:
                self._floors.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._floors.clear()

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(
                self._hits, self._misses, self._invalidations, self._evictions, len(self._entries)
            )
