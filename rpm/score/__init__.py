"""`rpm score`: bring your own RPM's responses and get R-EMI, R-EMID and the bound, computed by the same
functions as the workflow's rules."""
