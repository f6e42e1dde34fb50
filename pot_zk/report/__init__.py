"""Run and sweep reports: facts read from bundles, tables and plots."""
