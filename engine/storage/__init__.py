"""The storage: object files in a data directory, durable and replicated.

`store.Store` is the one interface the evaluation uses (docs/STORAGE.md):
snapshots and journals (`journal`, `object_format`, `object_state`), the
group commit (`group_commit`), checkpoints and recovery (`checkpoints`,
`maintenance`), the one atomic write and directory lock (`atomic_files`,
`peers`), copies between data directories (`object_copy`, used by the
replicator), pull on write and the fence against peers (`peer_pull`,
`peer_sync`) and the data directory's owner (`data_owner`). Depends on
nothing else of the engine but the shared leaves `engine.errors`,
`engine.lru` and `engine.vocabulary` (the object kinds' words in its
messages).
"""
