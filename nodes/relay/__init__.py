"""The one-relay node: a proxy cache running the load balancer in its own process."""
