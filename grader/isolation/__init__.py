"""Where student code runs: sandboxed worker processes, the wire, proxies, rank groups,
the three ways student code can fail (errors.py) and the strike rule."""
