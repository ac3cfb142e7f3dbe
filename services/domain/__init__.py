"""Pure rules: order and SIM states, reason codes, the decision policy. No I/O."""
