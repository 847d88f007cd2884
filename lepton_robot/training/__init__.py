"""Model training and export (PyTorch is imported only inside these modules' functions)."""
