"""The Stripe connection: its form fields, the config parsed from it, the contract both follow, Connect OAuth."""
