"""The supervisor: runs a cluster described by topology.yaml (supervisor/DESIGN.md).

`python -m supervisor up|down|status|restart|logs|reload|check` (`cli`):
starts the nodes as child processes in dependency order and keeps them
alive (`cluster`, `process`, `keeper`), applies topology edits (`topology`,
`reload`), answers the control port (`control`, `app`), guards data
directory ownership (`ownership`, `leftovers`) and replicates every
server's objects to the others (`replication*`, `objectfiles`,
`replicalink`). Depends on `nodes` (the wire protocol) and `engine.storage`
(the object files), never the other way round.
"""
