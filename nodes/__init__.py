"""Camera and adversary nodes, event sources, detection and tracking."""
