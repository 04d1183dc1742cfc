# Score your own RPM: R-EMI, R-EMID and the bound for a responses folder named in the config.
