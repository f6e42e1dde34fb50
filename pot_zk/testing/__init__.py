"""Development-only tooling for the test and campaign suites (tampered bundles); not used by pot-zk itself."""
