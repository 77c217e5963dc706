// Start-up baseline (c) for Node: the runtime starts, loads this empty
// CommonJS module and exits (the bin and the greeter are CommonJS too).
