"""Services: the processor loop and containment, built on ports and the core only."""
