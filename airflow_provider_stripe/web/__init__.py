"""Code that runs inside Airflow's API server: the webhook endpoint and the Test-button fix."""
