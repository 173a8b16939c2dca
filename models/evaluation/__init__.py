"""Evaluation: ReId and privacy-attack metrics (pure numpy), evaluators and the paper's tables."""
