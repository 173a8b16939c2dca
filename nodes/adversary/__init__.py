"""The adversary node: the attacker the system keeps running against its own anonymized output."""
