"""Apache Airflow provider for Stripe.

Importing this package is cheap: it loads neither the Stripe SDK nor Airflow. Hooks,
operators, sensors and triggers live in their own sub-modules.
"""

from __future__ import annotations

__version__ = "1.0.0"
