"""The Redis :class:`~riskstream.ports.FlagEpoch`: the containment worker's generation key.

``rs:{flags|<ns>}:epoch`` holds a random id the worker wrote.  Redis loses it only
with everything else (a restart without persistence, a ``FLUSHALL``, a failover to
an empty replica), so a missing epoch is how the worker and every router client
tell "no flag set" from "Redis forgot the flags".  The worker writes its decisions
back and the epoch with them in one script (:meth:`RedisFlagEpoch.restore`), so a
router never sees a new epoch over a half-written hash.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

import orjson

from riskstream.adapters.redis.client import RedisClient
from riskstream.adapters.redis.flags import RedisNamespaceStore
from riskstream.ports import FlagEpoch

__all__ = ["RedisFlagEpoch"]

# KEYS: epoch, flags.  ARGV: new epoch, channel, then (model, flag JSON,
# message) triples.  Does nothing if an epoch exists (another worker restored first);
# a flag written since the loss (newer than the worker's copy) is kept.
_RESTORE_LUA: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return -1
end
local n = 0
for i = 3, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('PUBLISH', ARGV[2], ARGV[i + 2])
    n = n + 1
  end
end
redis.call('SET', KEYS[1], ARGV[1])
return n
"""


class RedisFlagEpoch(RedisNamespaceStore):
    """Reads and restores a namespace's epoch and flags (see the module docstring)."""

    _noun = "Redis flag epoch"

    def __init__(
        self, client: RedisClient, namespace: str = "default", *, owns_client: bool = False
    ) -> None:
        super().__init__(client, namespace, owns_client=owns_client)
        self._restore = client.register_script(_RESTORE_LUA)

    def read(self) -> tuple[str | None, dict[str, bytes]]:
        with self._translate("read the epoch and flags"):
            pipe = self._client.pipeline(transaction=True)
            pipe.get(self._keys.epoch)
            pipe.hgetall(self._keys.flags)
            epoch, flags = pipe.execute()
        return (
            None if epoch is None else epoch.decode(),
            {k.decode(): v for k, v in flags.items()},
        )

    def restore(self, epoch: str, flags: Mapping[str, bytes]) -> int | None:
        args: list[str | bytes] = [epoch, self._keys.changed]
        for model_id, raw in flags.items():
            revision = int(orjson.loads(raw).get("revision", 0))
            message = orjson.dumps({"model_id": model_id, "revision": revision})
            args += (model_id, raw, message)
        with self._translate("restore the flags", unknown="Read the epoch to see."):
            written = int(self._restore(keys=[self._keys.epoch, self._keys.flags], args=args))
        return None if written < 0 else written

    def probe_write(self) -> None:
        with self._translate("write (a health probe)"):
            self._client.set(self._keys.health, b"1", px=60_000)


if TYPE_CHECKING:  # mypy proves the class implements the port

    def _implements_port(store: RedisFlagEpoch) -> FlagEpoch:
        return store
