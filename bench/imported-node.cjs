// Start-up variant (c) for Node: the greeter (b), after loading the package
// the way `require("socket-activate")` does and using none of it. (c) − (b) is
// what loading the package's code costs before any of it runs.
require("../dist/node.cjs");
require("./greeter-node.cjs");
