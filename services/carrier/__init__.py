"""The carrier's side: SIM inventory (ICCID <-> MSISDN), reservations, card counts (R2)."""
