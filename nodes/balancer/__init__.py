"""The load balancer node: routes each statement to a server (`node`,
`session`), keeps the backends' health (`backends`, `backend_pool`, `prober`,
`health`), classifies statements (`classifier`), picks owners and readers
(`routing`, `freshness`, `fault_avoidance`). `python -m nodes.balancer`."""
