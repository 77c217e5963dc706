// Start-up baseline (c): the runtime starts, loads this empty module and exits.
