"""What every node process runs on: arguments and logging (`node_process`),
the per-connection request loop (`serving`) and a pipelined connection to an
upstream node (`upstream`)."""
