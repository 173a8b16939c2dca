"""Networks (anonymizer, ReId backbone, reconstruction and inversion attackers), training and evaluation."""
