"""Hidden suite of assignment 5 (moe): properties of the gate, the loss, the router, the layer."""
