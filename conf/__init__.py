"""pot-zk's Hydra config tree (shipped in the wheel; composed with ``pkg://pot_zk.conf``)."""
