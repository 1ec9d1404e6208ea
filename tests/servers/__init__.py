"""Local test servers: real localstripe, a recording Stripe stub, a fault-injecting proxy."""
