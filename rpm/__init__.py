"""rpm: R-EMI / R-EMID for role-playing models (Li et al., "Understanding Generalization in
Role-Playing Models via Information Theory"). Each stage of the workflow is one `rpm` verb."""

__version__ = "0.1.0"
