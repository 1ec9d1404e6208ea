"""Local test servers: localstripe (behind the package's front), a recording Stripe stub, a fault-injecting proxy."""
