"""pot-zk: verifiable neural-network training with zero-knowledge proofs of each SGD step."""

from pot_zk.compat import ZkIntegration, create_zk_integration
from pot_zk.errors import PotZkError
from pot_zk.pipeline import ProofResult, ProvingPipeline
from pot_zk.strategies import ProofJob

__version__ = "0.1.0"
