"""RPGBench: the record schema, the one loader, the subsets, fetching and the mini benchmark."""
