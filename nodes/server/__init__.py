"""The database server node: the engine behind the wire protocol (`node`),
its peers (`membership`) and the objects it could not read or write
(`storage_faults`). `python -m nodes.server`."""
