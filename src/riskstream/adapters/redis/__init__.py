"""Redis adapters: detector state, routing flags and approvals, incidents, parked
predictions and the change log.

:mod:`.keys` owns every key name, the hash-tag and namespace rules and the ACL each
process needs; :mod:`.client` builds clients and turns redis-py's errors into
:class:`~riskstream.errors.StateStoreError` with a hint of what to check.
"""
