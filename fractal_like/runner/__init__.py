"""Everything that executes jobs. Never imports the web API."""
