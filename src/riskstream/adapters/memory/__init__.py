"""In-memory adapters: the bus and the stores in one process, for the embedded mode,
``riskstream demo``, replay and the tests.

Each implements the same port in :mod:`riskstream.ports` as its Redis or Kafka
counterpart, and the contract suites in ``tests/contract/`` run over both.
"""
