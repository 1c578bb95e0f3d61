"""Data: which datasets the lab offers (datasets, torch-free, for the first page), their arrays shared by
every session (arrays), getting the full sets (download) in MNIST's IDX format (idx), and a drawn or
uploaded digit made to look like an MNIST one (preprocess).

The package itself imports nothing, so the first page can list the datasets without numpy or torch.
"""
