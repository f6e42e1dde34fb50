"""The pot-zk command-line front end."""
