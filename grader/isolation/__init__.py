"""Where student code runs: sandboxed worker processes, the wire, proxies, rank groups."""
